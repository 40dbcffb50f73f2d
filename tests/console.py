"""Running the console under Textual's Pilot from plain (sync) tests."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from dicomtui.tui.app import make_app
from screen_text import screen_text

FROZEN = datetime(2026, 11, 23, 8, 15, tzinfo=timezone.utc)


def console(backend, **options):
    """The console on a given Backend, with the clock frozen at 08:15 UTC."""
    return console_from(lambda: backend, **options)


def console_from(connector, **options):
    """The console with its own connector (which may raise BackendError)."""
    options.setdefault("clock", lambda: FROZEN)
    return make_app(connector, **options)


def drive(app, scenario, size=(80, 24)):
    """Run `scenario(pilot)` against the app; returns what the scenario returned."""
    async def main():
        async with app.run_test(size=size) as pilot:
            return await scenario(pilot)
    return asyncio.run(main())


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition"):
    """Let the app run until `condition()` is true; fail with the screen text if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen_text(pilot.app)}")


async def wait_for_text(pilot, *texts: str, timeout: float = 10.0) -> str:
    """Wait until every one of `texts` is on screen at once; that screen's text.

    Parts of a screen are painted by different widgets, often from different reads:
    wait for everything a test then looks at, not for one part and hope for the rest."""
    shown = {"text": ""}

    def all_shown() -> bool:
        shown["text"] = screen_text(pilot.app)
        return all(text in shown["text"] for text in texts)

    what = " and ".join(repr(text) for text in texts)
    await wait_for(pilot, all_shown, timeout, what)
    return shown["text"]


async def handled(pilot) -> None:
    """Every key pressed and message posted so far has been handled.

    Not a time: Pilot's pause(0) first waits until the message queues of the app and of
    every widget on screen are drained (then sleeps 0 s: yields once). A key goes to the
    app first, which forwards it to the focused widget's queue, so drain twice."""
    await pilot.pause(0)
    await pilot.pause(0)


async def polls(pilot, fake, count: int = 1, seconds: float = 0.0,
                timeout: float = 30.0) -> None:
    """Let at least `seconds` pass (for what the console does only every so many
    seconds), then `count` more polls of the FakeBackend `fake` come back and be shown.

    The app asks for the next poll only after it has shown the last one, so poll n+1
    having begun means poll n is on screen."""
    started = time.monotonic()
    await handled(pilot)
    if seconds:
        await wait_for(pilot, lambda: time.monotonic() - started >= seconds,
                       seconds + timeout, f"{seconds} s")
    target = fake.polls + count + 1
    await wait_for(pilot, lambda: fake.polls >= target, timeout, f"{count} polls")


async def reads_done(pilot, screen, timeout: float = 10.0) -> None:
    """No worker of `screen` (a read of the backend, say) is still running."""
    await wait_for(pilot, lambda: all(w.is_finished for w in pilot.app.workers
                                      if w.node is screen), timeout,
                   f"{type(screen).__name__}'s workers to finish")


async def snapshot_ready(pilot, *texts: str, timeout: float = 10.0) -> None:
    """The end of a snapshot's run_before: `texts` are on screen, no toast is up, and
    text cursors are steady (a blinking cursor is the one part of a screen that
    changes with time alone: shown or not, by the half second)."""
    from textual.widgets import Input
    from textual.widgets._toast import Toast
    await wait_for_text(pilot, *texts, timeout=timeout)
    await wait_for(pilot, lambda: not pilot.app._notifications
                   and not list(pilot.app.screen.query(Toast)), timeout, "no toast")
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False  # shown steadily: how the stored snapshots have it
    await handled(pilot)


def notified(app, text: str) -> bool:
    """True when a notification (toast) currently shown holds `text`."""
    return any(text in n.message for n in app._notifications)


async def opened(pilot, dialog_class):
    """Wait until the dialog is drawn (its keys line); its text."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, dialog_class)
                   and "Esc" in screen_text(pilot.app), what=dialog_class.__name__)
    return screen_text(pilot.app)
