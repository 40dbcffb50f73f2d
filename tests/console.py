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


async def wait_for_text(pilot, text: str, timeout: float = 10.0) -> str:
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout, repr(text))
    return screen_text(pilot.app)


def notified(app, text: str) -> bool:
    """True when a notification (toast) currently shown holds `text`."""
    return any(text in n.message for n in app._notifications)


async def opened(pilot, dialog_class):
    """Wait until the dialog is drawn (its keys line); its text."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, dialog_class)
                   and "Esc" in screen_text(pilot.app), what=dialog_class.__name__)
    return screen_text(pilot.app)
