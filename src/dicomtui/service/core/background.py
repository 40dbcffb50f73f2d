"""A daemon thread that follows the receiver: start() and stop() may be called twice."""

from __future__ import annotations

import threading


class Background:
    """Subclasses implement _run() (looping until `_stopping` is set) and may wake it."""

    NAME = "dicomtui-background"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _wake(self) -> None:
        """Interrupt a wait in _run (the default loop waits on _stopping itself)."""

    def _run(self) -> None:
        raise NotImplementedError
