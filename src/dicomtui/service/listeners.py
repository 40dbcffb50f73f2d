"""The set of SCP listeners: the main one and one per facility, each changed alone.

Adding, moving or removing a facility touches only its own listener. A listener that
stops accepting keeps serving the associations it already has (they finish on their
own); it is kept as "retired" until they end, so a full stop can still abort them.
"""

from __future__ import annotations

import threading
from typing import Callable

from dicomtui.service.scp import Listener, ListenerError

MakeListener = Callable[[str | None, str, int], Listener]  # facility, AE title, port


class ListenerSet:
    """Facility listeners by facility name, with each one's last start error."""

    def __init__(self, make: MakeListener) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._running: dict[str, Listener] = {}
        self._errors: dict[str, str] = {}
        self._retired: list[Listener] = []

    def start(self, name: str, ae_title: str, port: int) -> str:
        """Start `name`'s listener; "" on success, else why not (also remembered)."""
        listener = self._make(name, ae_title, port)
        try:
            listener.start()
        except ListenerError as exc:
            with self._lock:
                self._errors[name] = str(exc)
            return str(exc)
        with self._lock:
            self._running[name] = listener
            self._errors.pop(name, None)
        return ""

    def retire(self, name: str) -> None:
        """Stop accepting on `name`'s port; its associations go on until they end."""
        with self._lock:
            listener = self._running.pop(name, None)
            self._errors.pop(name, None)
        if listener is not None:
            listener.stop_accepting()
            with self._lock:
                self._retired.append(listener)
                self._retired = [r for r in self._retired if r.associations()]

    def state(self, name: str) -> tuple[str, str]:
        """("listening" | "error" | "stopped", error text)."""
        with self._lock:
            if name in self._running:
                return "listening", ""
            if name in self._errors:
                return "error", self._errors[name]
        return "stopped", ""

    def stop_accepting_all(self) -> list[Listener]:
        """Close every listening socket; the listeners whose associations may remain."""
        with self._lock:
            listeners = list(self._running.values()) + self._retired
            self._running, self._errors, self._retired = {}, {}, []
        for listener in listeners:
            listener.stop_accepting()
        return listeners
