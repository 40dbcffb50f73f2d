"""Quitting the console: a receiver a console started is left running unless the operator
says stop; a service started otherwise (systemd) is never stopped from the console; a
service that has gone is said in words, and s starts one again."""

from __future__ import annotations

from console import (
    console,
    console_from,
    drive,
    handled,
    opened,
    polls,
    snapshot_ready,
    wait_for,
    wait_for_text,
)
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.backend.base import BackendError
from dicomtui.tui.quit_dialog import QuitChoice


def service_fake(started_by: str = "console") -> FakeBackend:
    fake = FakeBackend(mode="service")
    fake.snap.started_by = started_by
    return fake


def test_quitting_asks_and_leaving_running_is_the_default():
    fake = service_fake()

    async def scenario(pilot):
        await polls(pilot, fake)
        await pilot.press("q")
        text = await opened(pilot, QuitChoice)
        assert "Stop the receiver or leave it running?" in text
        assert "service pid 4242" in text
        assert "1 association(s) active (CT_SCANNER1): stopping aborts" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.closed.is_set(), what="the client closed")

    drive(console(fake), scenario)
    assert "shutdown" not in fake.calls and "stop" not in fake.calls


def test_cancel_stays_and_stop_stops_the_service():
    fake = service_fake()

    async def scenario(pilot):
        await polls(pilot, fake)
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("escape")
        await handled(pilot)
        assert not isinstance(pilot.app.screen, QuitChoice) and not pilot.app._quitting
        await polls(pilot, fake)  # still polling: the console stays
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("s")
        await wait_for(pilot, lambda: fake.closed.is_set(), what="the client closed")

    drive(console(fake), scenario)
    assert fake.calls.index("shutdown") < fake.calls.index("close")


def test_a_service_started_otherwise_is_never_stopped_by_quitting():
    fake = service_fake(started_by="")

    async def scenario(pilot):
        await polls(pilot, fake)
        await pilot.press("q")
        await wait_for(pilot, lambda: fake.closed.is_set(), what="the client closed")
        assert not isinstance(pilot.app.screen, QuitChoice)

    drive(console(fake), scenario)
    assert "shutdown" not in fake.calls


def test_a_service_that_has_gone_is_said_in_words_and_s_starts_one():
    gone, fresh = service_fake(), service_fake()
    connects = []

    def connector():
        connects.append(1)
        return gone if len(connects) == 1 else fresh

    def dead(*_args, **_kwargs):
        raise BackendError("cannot reach the dicomtui service at /d/dicomtui.sock: "
                           "[Errno 111] Connection refused")

    async def scenario(pilot):
        await polls(pilot, gone)
        gone.status = dead  # the service process exits
        text = await wait_for_text(pilot, "not running any more", "press s to start it")
        assert "Errno" not in text and "UNREACHABLE" in text
        await pilot.press("s")  # not "stop failed": look for a service, else start one
        await wait_for(pilot, lambda: pilot.app.backend is fresh, what="a new service")
        await wait_for_text(pilot, "RUNNING")
        assert "stop" not in gone.calls and "start" not in gone.calls
        assert "not running any more" not in screen_text(pilot.app)

    drive(console_from(connector, poll_interval=0.1), scenario, size=(120, 30))
    assert gone.closed.is_set()


def test_the_quit_question_at_80x24(snap_compare):
    fake = service_fake()

    async def ready(pilot):
        await polls(pilot, fake)
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await snapshot_ready(pilot, "Stop the receiver or leave it running?",
                             "Enter Leave running")

    assert snap_compare(console(fake), terminal_size=(80, 24), run_before=ready)
