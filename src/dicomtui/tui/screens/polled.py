"""A screen that reads its own data afresh on every poll tick while it is shown.

The app calls `refresh_view` only on the screens of the current mode, so a screen
built on this costs the Backend nothing while another screen shows. One read at a
time: ticks that come while a read is out are skipped, a change asks for one more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.screen import Screen

from dicomtui.backend.base import BackendError
from dicomtui.tui import messages as msg
from dicomtui.tui.forms import Call, backend_change
from dicomtui.tui.widgets import ModeBar


class PolledScreen(Screen):
    """Subclasses implement `read(backend)` as a thread worker posting one message,
    and call `loaded(error)` first thing when that message arrives."""

    READ_EVERY = 0.0  # seconds between reads on poll ticks (0: every tick)

    def __init__(self) -> None:
        super().__init__()
        self.is_loaded = False
        self._reading = self._read_again = False
        self._read_error = ""
        self._read_at = float("-inf")

    def on_screen_resume(self) -> None:
        self.load()

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(ModeBar).refresh()
        if time.monotonic() - self._read_at >= self.READ_EVERY:
            self.load()

    def load(self, after_change: bool = False) -> None:
        if self.app.backend is None:
            return
        if self._reading:
            self._read_again = self._read_again or after_change
            return
        self._reading, self._read_at = True, time.monotonic()
        self.read(self.app.backend)

    def read(self, backend) -> None:
        raise NotImplementedError

    def loaded(self, error: str) -> bool:
        """Bookkeeping for a read that came back; False when it failed (said once)."""
        self._reading = False
        if self._read_again:
            self._read_again = False
            self.call_later(self.load)
        if error:
            if error != self._read_error:
                self.notify(error, title="cannot read from the receiver", severity="error",
                            timeout=10)
            self._read_error = error
            return False
        self._read_error, self.is_loaded = "", True
        return True

    # -- changes made from the screen itself (toggle, remove, a setting) -------------
    def change(self, call: Call, said: Callable[[Any], str]) -> None:
        if self.app.backend is None:
            self.notify("not connected to a receiver", severity="error")
            return
        self._change(self.app.backend, call, said)

    @work(thread=True, group="screen-change", exit_on_error=False)
    def _change(self, backend, call: Call, said: Callable[[Any], str]) -> None:
        self.post_message(backend_change(backend, call, said))

    @on(msg.ChangeDone)
    def _change_done(self, message: msg.ChangeDone) -> None:
        message.stop()
        if message.error:
            self.notify(message.error, title="not changed", severity="error", timeout=10)
            self.load(after_change=True)
            return
        self.changed(message)

    def changed(self, message: msg.ChangeDone | None) -> None:
        """A change went through (here or in a dialog): say so, read afresh."""
        if message is None:
            return
        self.notify(message.said, timeout=6)
        self.load(after_change=True)


def reason(exc: Exception) -> str:
    """An error as people read it (our BackendErrors say it; a surprise says its type)."""
    return str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
