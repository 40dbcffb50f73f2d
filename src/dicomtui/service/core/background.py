"""A daemon thread that follows the receiver: start() and stop() may be called any
number of times, and at most one thread ever runs.

Each start gets its own stop flag, so a thread that outlived its stop (stuck in a
network call) can never be revived by the next start: that start waits for it first.
"""

from __future__ import annotations

import logging
import threading

LOG = logging.getLogger("dicomtui.service")


class Background:
    """Subclasses implement _run(stopping) (looping until that event is set) and may
    wake it (_wake) or cut what it waits on (_interrupt)."""

    NAME = "dicomtui-background"
    STOP_WAIT = 2.0  # seconds stop() waits for the thread before it lets it go on alone

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        old = self._thread
        if old is not None and old.is_alive():
            if not self._stopping.is_set():
                return  # running: nothing to do
            old.join()  # still finishing after a stop: never two at once
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(
            target=lambda: self._run(stopping), name=self.NAME, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait a little; a thread still busy ends on its own
        (the next start() waits for it)."""
        self._stopping.set()
        self._wake()
        self._interrupt()
        thread = self._thread
        if thread is not None:
            thread.join(self.STOP_WAIT if timeout is None else timeout)
            if thread.is_alive():
                LOG.warning("%s is still finishing; it stops on its own", self.NAME)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _wake(self) -> None:
        """Interrupt a wait in _run (the default loop waits on _stopping itself)."""

    def _interrupt(self) -> None:
        """Cut a blocking call in progress (a network request), if any."""

    def _run(self, stopping: threading.Event) -> None:
        raise NotImplementedError
