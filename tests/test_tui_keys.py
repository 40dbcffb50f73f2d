"""The console's keys and flows through Pilot, on the deterministic FakeBackend."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from console import (
    console,
    console_from,
    drive,
    handled,
    notified,
    polls,
    wait_for,
    wait_for_text,
)
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.backend.base import BackendError
from dicomtui.models import Listener
from dicomtui.tui.dialogs import Confirm, HelpScreen, RecordScreen
from dicomtui.tui.screens.log import LogScreen
from dicomtui.tui.screens.settings import EditSetting, SettingsScreen
from dicomtui.settings import SPECS
from dicomtui.tui.screens.status import StatusScreen
from dicomtui.tui.widgets import SCREEN_TABS


def test_number_keys_switch_screens_and_the_header_shows_local_mode():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", "local, up 3 h 12 m")
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))
        await pilot.press("9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))

    drive(console(fake), scenario)
    assert fake.calls[0] == "start"  # autostart in local mode


def test_attached_header_names_the_service_pid_and_uptime_and_never_autostarts():
    fake = FakeBackend(mode="service")

    async def scenario(pilot):
        return await wait_for_text(pilot, "attached to service pid 4242, up 3 h 12 m")

    drive(console(fake), scenario, size=(120, 30))
    assert "start" not in fake.calls


def test_the_attached_header_fits_80_columns_on_every_screen():
    """Narrow, the uptime goes first (Status shows it), then "to service"; every tab
    keeps its number."""
    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        headers = {}
        for key, mode in zip("123456789", pilot.app.MODES):
            await pilot.press(key)
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, pilot.app.MODES[mode])
                           and "RUNNING" in screen_text(pilot.app).splitlines()[0],
                           what=f"screen {key}'s header")
            headers[key] = screen_text(pilot.app).splitlines()[0]
        return headers

    headers = drive(console(FakeBackend(mode="service")), scenario)
    assert "attached pid 4242  RUNNING" in headers["8"]  # the longest tab name
    for key, header in headers.items():
        assert header.rstrip().endswith(("9Set", "9 Set", "9 Settings")), header
        for number, _mode, _title, short in SCREEN_TABS:  # every screen named, at least
            assert f"{number}{short}" in header or f" {number} " in header, header


def test_no_start_and_autostart_false_leave_a_local_receiver_stopped():
    for fake, options in ((FakeBackend(state="stopped"), {"no_start": True}),
                          (FakeBackend(state="stopped"), {})):
        if not options:
            fake.stored["autostart"] = False

        async def scenario(pilot):
            await wait_for_text(pilot, "STOPPED")

        drive(console(fake, **options), scenario)
        assert "start" not in fake.calls


def test_status_screen_shows_listener_counters_association_storage_and_errors():
    expected = ("DICOMTUI @ 0.0.0.0:11112 listening", "18,342", "4,120", "9.7 GB",
                "412.0 GB of 500.0 GB", "82%", "111.7 MB", "storage quota reached",
                "0xA700", "calling AE title not r")

    async def scenario(pilot):
        await wait_for(pilot, lambda: all(e in screen_text(pilot.app) for e in expected),
                       what="every part of the status screen")

    drive(console(FakeBackend()), scenario)


def test_status_screen_shows_the_tls_listener():
    class WithTLS(FakeBackend):
        def status(self):
            snap = super().status()
            tls = Listener("DICOMTUI", "0.0.0.0", 2762, "listening", tls=True)
            return replace(snap, listeners=[*snap.listeners, tls])

    async def scenario(pilot):
        await wait_for_text(pilot, "DICOMTUI @ 0.0.0.0:2762 listening TLS")

    drive(console(WithTLS()), scenario)


def test_s_stops_after_confirming_while_associations_are_active():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        assert "1 association(s) active (CT_SCANNER1)" in screen_text(pilot.app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await polls(pilot, fake, 2)
        assert "stop" not in fake.calls
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        await pilot.press("y")
        await wait_for_text(pilot, "STOPPED")
        assert fake.calls.count("stop") == 1
        await pilot.press("s")  # stopped: starts without asking
        await wait_for(pilot, lambda: fake.calls.count("start") == 2, what="start")
        await wait_for_text(pilot, "RUNNING")

    drive(console(fake), scenario)


def test_r_restarts_and_a_failed_start_is_shown_not_raised():
    fake = FakeBackend(state="stopped")
    fake.fail_start = "port 11112 is already in use; stop the other program or set --port"

    async def scenario(pilot):
        await wait_for_text(pilot, "port 11112 is already in use")
        fake.fail_start = ""
        fake.snap.associations = []
        await pilot.press("r")
        await wait_for(pilot, lambda: "restart" in fake.calls, what="restart")
        await wait_for_text(pilot, "RUNNING")

    drive(console(fake, poll_interval=0.1), scenario)


def test_a_connect_failure_is_explained_on_screen_and_s_tries_again():
    attempts = []
    fake = FakeBackend()

    def connector():
        attempts.append(1)
        if len(attempts) == 1:
            raise BackendError("data dir /srv/d is in use by pid 77 (another dicomtui)")
        return fake

    async def scenario(pilot):
        await wait_for_text(pilot, "in use by pid 77", "try again")
        await pilot.press("s")
        await wait_for_text(pilot, "RUNNING")

    drive(console_from(connector, poll_interval=0.1), scenario)
    assert len(attempts) == 2


def test_a_service_that_goes_away_shows_unreachable_and_recovers():
    fake = FakeBackend(mode="service")
    original = fake.status

    def flaky():
        if fake.down:
            raise BackendError("cannot reach the dicomtui service at /x.sock: refused")
        return original()

    fake.down = False
    fake.status = flaky

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        fake.down = True
        await wait_for_text(pilot, "UNREACHABLE", "cannot reach the dicomtui service")
        fake.down = False
        await wait_for_text(pilot, "RUNNING")

    drive(console(fake, poll_interval=0.1), scenario)


def test_the_ui_answers_keys_while_the_backend_hangs():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        fake.gate = threading.Event()  # every status() now blocks until released
        await wait_for(pilot, lambda: fake.held, what="a poll held by the backend")
        started = time.monotonic()
        await pilot.press("9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        elapsed = time.monotonic() - started
        fake.gate.set()
        return elapsed

    assert drive(console(fake, poll_interval=0.1), scenario) < 2.0


def test_log_filter_chips_query_clear_and_bad_words():
    fake = FakeBackend()

    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, "40 rows")
        await pilot.press("slash")
        await pilot.press(*"status:failed ae:ct_scanner1 quota")
        await pilot.press("enter")
        await wait_for_text(pilot, "1 row ", " status:failed ", " ae:ct_scanner1 ",
                            '"quota"')
        last = fake.queries[-1]
        assert (last.outcomes, last.ae, last.text) == (["failed"], "ct_scanner1", "quota")
        await pilot.press("c")
        await wait_for_text(pilot, "40 rows", "no filter")
        await pilot.press("slash")
        await pilot.press(*"type:bogus")
        await pilot.press("enter")
        await wait_for_text(pilot, "use one of association, echo, store")
        assert pilot.app.screen.query_one("#log-filter").has_class("open")

    drive(console(fake), scenario, size=(120, 30))


def test_follow_tails_new_records_and_f_pauses():
    fake = FakeBackend()
    from fake_backend import record

    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, "40 rows")
        fake.records.append(record(41, calling_ae="NEW_ARRIVAL"))
        await wait_for_text(pilot, "NEW_ARRIVAL")
        await pilot.press("f")
        await wait_for_text(pilot, "PAUSED")
        fake.records.append(record(42, calling_ae="WHILE_PAUSED"))
        await polls(pilot, fake, 3)
        assert "WHILE_PAUSED" not in screen_text(pilot.app)
        await pilot.press("f")
        await wait_for_text(pilot, "WHILE_PAUSED", "LIVE")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_paging_up_past_the_top_reads_older_rows_from_the_backend():
    from dicomtui.tui.screens import log as log_screen
    fake = FakeBackend()
    from fake_backend import record
    fake.records = [record(n) for n in range(1, 1201)]

    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, f"{log_screen.MAX_ROWS:,} rows")
        screen = pilot.app.screen
        assert screen.tx_rows[0]["id"] == 1200 - log_screen.MAX_ROWS + 1
        screen.query_one("#log-table").move_cursor(row=0)
        await pilot.press("up")
        first = 1200 - log_screen.MAX_ROWS + 1
        await wait_for(pilot, lambda: screen.tx_rows[0]["id"] == first - log_screen.PAGE,
                       what="older page")
        assert len(screen.tx_rows) == log_screen.MAX_ROWS  # bounded: the newest fell off
        await wait_for_text(pilot, "PAUSED")
        assert fake.queries[-1].before_id == first

    drive(console(fake), scenario, size=(120, 30))


def test_enter_opens_the_full_record():
    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, "40 rows")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RecordScreen))
        await wait_for_text(pilot, "Transaction 40", "1.2.840.10008.5.1.4.1.1.2")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_application_log_tab_and_level_filter():
    async def scenario(pilot):
        await pilot.press("2", "t")
        await wait_for_text(pilot, "listening on 0.0.0.0:11112", "refused (0xA700)")
        await pilot.press("l", "l")  # INFO -> WARNING -> ERROR

        def errors_only() -> bool:
            text = screen_text(pilot.app)
            return ("level ERROR" in text and "refused (0xA700)" in text
                    and "listening on" not in text and "UNKNOWN_MOD" not in text)

        await wait_for(pilot, errors_only, what="only the ERROR line")

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_settings_edit_validates_with_the_cli_wording_and_offers_a_restart():
    fake = FakeBackend()
    fake.snap.associations = []

    async def scenario(pilot):
        await pilot.press("9")
        await wait_for_text(pilot, "max_associations")
        table = pilot.app.screen.query_one("#settings-table")
        table.move_cursor(row=2)  # port
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditSetting))
        await pilot.press("end", "ctrl+u", *"99999", "enter")
        await wait_for_text(pilot, "port: must be an integer from 1 to 65535, or 0 for no "
                                   "plain listener")  # then, wrapped: (got '99999')
        await pilot.press("end", "ctrl+u", *"11200", "enter")
        await wait_for(pilot, lambda: notified(pilot.app, "press r to restart now"),
                       what="the restart offered without a dialog")
        assert isinstance(pilot.app.screen, SettingsScreen)  # nothing to catch a key
        await wait_for_text(pilot, "restart pending")
        await pilot.press("enter", "escape")  # keys meant for the screen restart nothing
        await handled(pilot)
        assert "restart" not in fake.calls
        await pilot.press("r")  # the app's restart: asks at once, while senders are busy
        await wait_for(pilot, lambda: "restart" in fake.calls
                       or isinstance(pilot.app.screen, Confirm), what="restart or its question")
        if isinstance(pilot.app.screen, Confirm):
            await pilot.press("y")
        await wait_for(pilot, lambda: "restart" in fake.calls, what="restart")
        assert fake.stored["port"] == 11200

    drive(console(fake), scenario)


def test_settings_u_resets_a_stored_value_to_its_default():
    fake = FakeBackend()
    fake.stored["layout"] = "flat"

    async def scenario(pilot):
        await pilot.press("9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen)
                       and pilot.app.screen.setting_values, what="settings")
        row = [spec.name for spec in SPECS].index("layout")
        pilot.app.screen.query_one("#settings-table").move_cursor(row=row)  # scrolls to it
        await wait_for_text(pilot, "flat")
        await pilot.press("u")
        await wait_for(pilot, lambda: "layout" not in fake.stored, what="unset")
        await wait_for_text(pilot, "series")

    drive(console(fake), scenario)


def test_help_lists_every_binding_of_the_screen_and_the_app():
    async def scenario(pilot):
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        rows = pilot.app.screen.key_rows
        await pilot.press("escape")
        return rows

    rows = drive(console(FakeBackend()), scenario, size=(120, 40))
    keys = {key for key, _, _ in rows}
    assert {"/", "f", "c", "t", "l", "enter", "s", "r", "1", "2", "9", "?", "q"} <= keys


def test_every_key_is_a_command_in_the_palette():
    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        return [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]

    titles = drive(console(FakeBackend()), scenario)
    for title in ("Start/stop (s)", "Restart (r)", "Status (1)", "Log (2)", "Settings (9)",
                  "Help (?)", "Quit (q)"):
        assert title in titles


def test_a_palette_command_runs_its_action_with_the_same_confirmation():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        command = next(c for c in pilot.app.get_system_commands(pilot.app.screen)
                       if c.title == "Restart (r)")
        await command.callback()
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: "restart" in fake.calls, what="restart")

    drive(console(fake), scenario)


def test_q_closes_the_backend_then_exits():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("q")
        await wait_for(pilot, lambda: fake.closed.is_set(), what="close")

    drive(console(fake), scenario)
    assert fake.calls[-1] == "close" and fake.calls.count("close") == 1


def test_the_log_is_not_polled_while_another_screen_shows_and_catches_up_on_return():
    from fake_backend import record
    fake = FakeBackend()

    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, "40 rows")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await polls(pilot, fake, 1)  # a poll that began on the Log screen is done
        asked = len(fake.queries)
        fake.records.append(record(41, calling_ae="WHILE_AWAY"))
        await polls(pilot, fake, 3)
        assert len(fake.queries) == asked  # polls go on, the log is not read
        await pilot.press("2")
        await wait_for_text(pilot, "WHILE_AWAY")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_quitting_while_connecting_closes_what_opens_then_exits():
    fake = FakeBackend()
    connecting, release = threading.Event(), threading.Event()

    def slow_connector():
        connecting.set()
        release.wait(10)
        return fake

    async def scenario(pilot):
        await wait_for(pilot, connecting.is_set, what="the connector to be called")
        await pilot.press("q")
        release.set()
        await wait_for(pilot, lambda: fake.closed.is_set(), what="close")

    drive(console_from(slow_connector), scenario)
    assert fake.calls[-1] == "close"


def test_a_surprise_while_connecting_is_shown_not_swallowed():
    def broken():
        raise PermissionError(13, "Permission denied", "/srv/dicom/dicomtui.json")

    async def scenario(pilot):
        await wait_for_text(pilot, "PermissionError")

    drive(console_from(broken), scenario, size=(120, 30))


def test_the_tail_catches_up_with_the_newest_rows_after_a_long_absence():
    from fake_backend import record
    from dicomtui.tui.screens.log import fetch_tail
    from dicomtui.tui.filters import LogFilter
    fake = FakeBackend()
    fake.records = [record(n) for n in range(1, 3001)]
    rows, cursor, replace = fetch_tail(fake, LogFilter(), 100, 1000)
    assert replace and cursor == 3000
    assert [r["id"] for r in rows] == list(range(2001, 3001))
    rows, cursor, replace = fetch_tail(fake, LogFilter(), 2500, 1000)
    assert not replace and cursor == 3000
    assert [r["id"] for r in rows] == list(range(2501, 3001))
