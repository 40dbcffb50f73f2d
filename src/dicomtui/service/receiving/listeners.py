"""The SCP listeners: the main one and one per facility, each changed alone.

Adding, moving or removing a facility touches only its own listener. A listener that
stops accepting keeps serving the associations it already has (they finish on their
own); it is kept as "retired" until they end, so a full stop can still abort them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from dicomtui.service.receiving.gate import Gate
from dicomtui.service.receiving.scp import Listener, ListenerError, make_ae
from dicomtui.settings import Resolved

Bindings = Callable[[str | None], list]  # facility (None: main) -> pynetdicom handlers


class Listeners:
    """Owns every listening socket and the settings the receiver was started with.

    Every listener's connections pass the same gate (receiving/gate.py), so the limit
    per peer address holds across all ports."""

    def __init__(
        self, bindings: Bindings, settings: Callable[[], Resolved], gate: Gate
    ) -> None:
        self._bindings, self._settings, self.gate = bindings, settings, gate
        self._lock = threading.Lock()
        self._main: Listener | None = None
        self._running_settings: Resolved | None = None
        self._facilities: dict[str, Listener] = {}
        self._errors: dict[str, str] = {}
        self._retired: list[Listener] = []

    # -- the main listener -----------------------------------------------------------------
    def start_main(self) -> Listener:
        """Listen on the configured port with the current settings (ListenerError)."""
        s = self._settings()
        listener = Listener(make_ae(s), s.host, s.port, self._bindings(None), self.gate)
        listener.start()
        with self._lock:
            self._main, self._running_settings = listener, s
        return listener

    @property
    def running(self) -> bool:
        return self._main is not None

    @property
    def port(self) -> int | None:
        main = self._main
        return main.port if main else None

    def effective(self) -> Resolved:
        """The settings listeners run with: those of the start while running."""
        running = self._running_settings
        return (
            running if running is not None and self._main is not None else self._settings()
        )

    def running_settings(self) -> Resolved | None:
        return self._running_settings if self._main is not None else None

    # -- facility listeners ---------------------------------------------------------------
    def open_facility(self, name: str, ae_title: str, port: int) -> str:
        """Start `name`'s listener; "" on success, else why not (also remembered)."""
        s = self.effective()
        listener = Listener(
            make_ae(s, ae_title), s.host, port, self._bindings(name), self.gate
        )
        try:
            listener.start()
        except ListenerError as exc:
            with self._lock:
                self._errors[name] = str(exc)
            return str(exc)
        with self._lock:
            self._facilities[name] = listener
            self._errors.pop(name, None)
        return ""

    def retire_facility(self, name: str) -> None:
        """Stop accepting on `name`'s port; its associations go on until they end."""
        with self._lock:
            listener = self._facilities.pop(name, None)
            self._errors.pop(name, None)
        if listener is not None:
            listener.stop_accepting()
            with self._lock:
                self._retired.append(listener)
                self._retired = [r for r in self._retired if r.associations()]

    def facility_state(self, name: str) -> tuple[str, str]:
        """("listening" | "error" | "stopped", error text)."""
        with self._lock:
            if name in self._facilities:
                return "listening", ""
            if name in self._errors:
                return "error", self._errors[name]
        return "stopped", ""

    # -- stopping -----------------------------------------------------------------------
    def stop_accepting(self) -> list[Listener]:
        """Close every listening socket; the listeners whose associations may remain."""
        with self._lock:
            main = [self._main] if self._main is not None else []
            listeners = main + list(self._facilities.values()) + self._retired
            self._facilities, self._errors, self._retired = {}, {}, []
        for listener in listeners:
            listener.stop_accepting()
        return listeners

    def stopped(self) -> None:
        """Every association has ended: the receiver is no longer running."""
        with self._lock:
            self._main = None


__all__ = ["Bindings", "ListenerError", "Listeners"]
