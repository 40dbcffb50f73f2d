"""The conventions people bring from htop, k9s and lazygit, and the console at any
width: screen names, [ and ], clicks on tabs and key hints, j/k/g/G, sorting, copying
a row, saving the log view, asking before a stop, a theme that persists."""

from __future__ import annotations

import os
import stat

from console import (
    console,
    drive,
    handled,
    notified,
    opened,
    polls,
    wait_for,
    wait_for_text,
)
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.tui.dialogs import Confirm, HelpScreen, RecordScreen
from dicomtui.tui.preferences import preferences_path
from dicomtui.tui.screens.access import AccessScreen
from dicomtui.tui.screens.log import LogScreen
from dicomtui.tui.screens.settings import SettingsScreen
from dicomtui.tui.screens.status import StatusScreen
from dicomtui.tui.widgets import SCREEN_TABS, KeyBar, ModeBar


def test_every_screen_is_named_in_the_header_at_80_120_and_200_columns():
    for width in (80, 120, 200):
        async def scenario(pilot):
            await wait_for_text(pilot, "RUNNING")
            headers = []
            for key, mode, _title, _short in SCREEN_TABS:
                await pilot.press(key)
                await wait_for(pilot, lambda m=mode: pilot.app.current_mode == m)
                await handled(pilot)
                headers.append(screen_text(pilot.app).splitlines()[0])
            return headers

        for header in drive(console(FakeBackend(mode="service")), scenario, (width, 24)):
            for key, _mode, title, short in SCREEN_TABS:
                assert (f"{key} {title}" in header or f"{key} {short}" in header
                        or f"{key}{short}" in header), (width, header)


def test_brackets_cycle_the_screens_both_ways():
    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))
        await pilot.press("left_square_bracket", "left_square_bracket")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))

    drive(console(FakeBackend()), scenario)


def test_a_click_on_a_tab_shows_that_screen_and_on_a_key_hint_runs_the_key():
    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        bar = pilot.app.screen.query_one(ModeBar)
        start, _end, _mode = next(s for s in bar.tab_spans if s[2] == "access")
        await pilot.click(ModeBar, offset=(start + 1, 0))
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen))
        keys = pilot.app.screen.query_one(KeyBar)
        await wait_for(pilot, lambda: bool(getattr(keys, "hints", None)))
        start, _end, _node, action = next(h for h in keys.hints if h[3] == "help")
        await pilot.click(KeyBar, offset=(start, 0))
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

    drive(console(FakeBackend()), scenario)


def test_s_asks_before_stopping_even_with_no_association():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING")
        fake.snap.associations = []
        await polls(pilot, fake, 1)
        await pilot.press("s")
        text = await opened(pilot, Confirm)
        assert "No association is active" in text, text
        await pilot.press("n")
        await polls(pilot, fake, 2)
        assert "stop" not in fake.calls
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        await pilot.press("y")
        await wait_for_text(pilot, "STOPPED")

    drive(console(fake), scenario)


def callers(pilot) -> list[str]:
    table = pilot.app.screen.query_one("#access-callers")
    return [table.get_row_at(i)[0] for i in range(table.row_count)]


def test_tables_move_with_jkgG_sort_with_o_or_a_header_click_and_copy_with_y():
    async def scenario(pilot):
        await pilot.press("5")
        await wait_for_text(pilot, "OLD_US", "MR_ROOM2")
        given = callers(pilot)
        table = pilot.app.screen.query_one("#access-callers")
        table.focus()
        await pilot.press("G")
        await wait_for(pilot, lambda: table.cursor_row == table.row_count - 1)
        await pilot.press("g")
        await wait_for(pilot, lambda: table.cursor_row == 0)
        await pilot.press("j")
        await wait_for(pilot, lambda: table.cursor_row == 1)
        await pilot.press("k")
        await wait_for(pilot, lambda: table.cursor_row == 0)
        await pilot.press("o", "o", "o", "o")  # the fourth column: description
        await wait_for_text(pilot, "description ▲")
        await pilot.press("O")
        await wait_for(pilot, lambda: callers(pilot) == ["OLD_US", "MR_ROOM2",
                                                         "CT_SCANNER1"], what="reversed")
        assert "description ▼" in screen_text(pilot.app)
        await pilot.click("#access-callers", offset=(3, 0))  # the AE title header
        await wait_for(pilot, lambda: callers(pilot) == sorted(given), what="by AE title")
        await pilot.press("g", "y")
        await wait_for(pilot, lambda: notified(pilot.app, "copied: CT_SCANNER1"))
        assert pilot.app.clipboard.startswith("CT_SCANNER1  allowed  10.1.2.3")

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_w_saves_the_filtered_log_view_to_a_private_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def scenario(pilot):
        await pilot.press("2")
        await wait_for_text(pilot, "40 rows")
        await pilot.press("slash", *"type:association", "enter")
        await wait_for(pilot, lambda: "40 rows" not in screen_text(pilot.app)
                       and pilot.app.screen.is_loaded, what="the filtered rows")
        shown = len(pilot.app.screen.tx_rows)
        await pilot.press("w")
        await wait_for(pilot, lambda: notified(pilot.app, str(tmp_path)), what="the toast")
        return shown

    shown = drive(console(FakeBackend()), scenario)
    (saved,) = tmp_path.glob("dicomtui-log-*.tsv")
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    lines = saved.read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["time", "type", "status", "calling AE", "reason"]
    assert len(lines) == shown + 1 and all("\tassociation\t" in line for line in lines[1:])
    assert any("Calling AE Title Not Recognized" in line for line in lines)  # whole


def test_the_reason_of_a_refusal_is_on_screen_at_80_columns():
    async def scenario(pilot):
        await pilot.press("2")
        text = await wait_for_text(pilot, "ANGIO_LAB", "calling AE title ANGIO")
        row = next(line for line in text.splitlines() if "ANGIO_LAB" in line)
        assert row.index("calling AE title") < 80 and "refused" in row

    drive(console(FakeBackend()), scenario)


def test_a_chosen_theme_is_there_next_time_and_the_environment_still_wins(monkeypatch):
    async def choose(pilot):
        await wait_for_text(pilot, "RUNNING")
        pilot.app.theme = "dracula"
        await wait_for(pilot, lambda: preferences_path().exists(), what="saved")

    async def theme(pilot):
        await wait_for_text(pilot, "RUNNING")
        return pilot.app.theme

    drive(console(FakeBackend()), choose)
    assert stat.S_IMODE(os.stat(preferences_path()).st_mode) == 0o600
    assert drive(console(FakeBackend()), theme) == "dracula"
    monkeypatch.setenv("DICOMTUI_THEME", "nord")
    assert drive(console(FakeBackend()), theme) == "nord"


def test_enter_on_a_last_error_shows_it_whole_at_80_columns():
    async def scenario(pilot):
        await wait_for_text(pilot, "UNKNOWN_MOD 10.9.9.9:5000")
        pilot.app.screen.query_one("#status-errors").focus()
        await pilot.press("G", "enter")
        text = await opened(pilot, RecordScreen)
        assert "Error 31" in text and "rejected: calling AE title not recognised" in text

    drive(console(FakeBackend()), scenario)
