"""The SCP listeners: the main ones (plain DICOM and DICOM TLS) and one per facility,
each changed alone.

Adding, moving or removing a facility touches only its own listener. A listener that
stops accepting keeps serving the associations it already has (they finish on their
own); it is kept as "retired" until they end, so a full stop can still abort them.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

from dicomtui.service.receiving.gate import Gate
from dicomtui.service.receiving.scp import Listener, ListenerError, make_ae
from dicomtui.service.receiving.tls import TLSConfigError, key_file_warning, server_context
from dicomtui.settings import Resolved

Bindings = Callable[[str | None], list]  # facility (None: main) -> pynetdicom handlers
PLAIN_OFF = (
    "plain DICOM is off (port 0): send over TLS to tls_port with this facility's AE title"
)


class Listeners:
    """Owns every listening socket and the settings the receiver was started with.

    Every listener's connections pass the same gate (receiving/gate.py), so the limit
    per peer address holds across all ports."""

    def __init__(
        self, bindings: Bindings, settings: Callable[[], Resolved], gate: Gate
    ) -> None:
        self._bindings, self._settings, self.gate = bindings, settings, gate
        self._lock = threading.Lock()
        self._main: list[Listener] = []  # plain and/or TLS; empty: not running
        self._running_settings: Resolved | None = None
        self._warnings: list[str] = []
        self._facilities: dict[str, Listener] = {}
        self._errors: dict[str, str] = {}
        self._retired: list[Listener] = []

    # -- the main listeners -----------------------------------------------------------------
    def start_main(self) -> list[Listener]:
        """Listen on `port` (plain DICOM) and `tls_port` (DICOM TLS), either 0 = not;
        both start or neither does (ListenerError says why)."""
        s = self._settings()
        if not s.port and not s.tls_port:
            raise ListenerError(
                "port and tls_port are both 0, so nothing would listen: set one of them"
            )
        context = _tls_context(s) if s.tls_port else None
        ae = make_ae(s)  # one AE: max_associations counts both doors together
        started: list[Listener] = []
        try:
            for port, tls in ((s.port, None), (s.tls_port, context)):
                if port:
                    listener = Listener(
                        ae, s.host, port, self._bindings(None), self.gate, tls
                    )
                    listener.start()
                    started.append(listener)
        except ListenerError:
            for listener in started:
                listener.stop_accepting()
            raise
        warning = key_file_warning(s.tls_key_file) if context is not None else None
        with self._lock:
            self._main, self._running_settings = started, s
            self._warnings = [warning] if warning else []
        return started

    @property
    def running(self) -> bool:
        return bool(self._main)

    @property
    def port(self) -> int | None:
        """The plain listener's port (None: not running, or no plain listener)."""
        return next((lst.port for lst in self._main if lst.tls is None), None)

    @property
    def tls_port(self) -> int | None:
        return next((lst.port for lst in self._main if lst.tls is not None), None)

    def warnings(self) -> list[str]:
        """What the running listeners want the operator to fix (a key file's mode)."""
        with self._lock:
            return list(self._warnings)

    def effective(self) -> Resolved:
        """The settings listeners run with: those of the start while running."""
        running = self._running_settings
        return running if running is not None and self._main else self._settings()

    def running_settings(self) -> Resolved | None:
        return self._running_settings if self._main else None

    # -- facility listeners ---------------------------------------------------------------
    def open_facility(self, name: str, ae_title: str, port: int) -> str:
        """Start `name`'s listener; "" on success, else why not (also remembered).

        Facility listeners speak plain DICOM: with `port` 0 (no plain DICOM) they stay
        closed, and TLS peers reach a facility on tls_port by its AE title."""
        s = self.effective()
        if not s.port:
            with self._lock:
                self._errors[name] = PLAIN_OFF
            return PLAIN_OFF
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
            listeners = self._main + list(self._facilities.values()) + self._retired
            self._facilities, self._errors, self._retired = {}, {}, []
        for listener in listeners:
            listener.stop_accepting()
        return listeners

    def stopped(self) -> None:
        """Every association has ended: the receiver is no longer running."""
        with self._lock:
            self._main, self._warnings = [], []


def _tls_context(s: Resolved) -> ssl.SSLContext:
    try:
        return server_context(s.tls_cert_file, s.tls_key_file, s.tls_ca_file)
    except TLSConfigError as exc:
        raise ListenerError(f"TLS listener not started: {exc}") from None


__all__ = ["Bindings", "ListenerError", "Listeners"]
