"""Screen 8, Anonymization, through Pilot on the FakeBackend: identities stay masked
unless revealed after a question, a reveal never outlives the screen, search, export."""

from __future__ import annotations

import json
import threading
import time

from console import console, drive, notified, opened, polls, wait_for, wait_for_text
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.models import MASK
from dicomtui.tui.dialogs import Confirm, HelpScreen
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.anonymization import AnonymizationScreen
from dicomtui.tui.screens.status import StatusScreen

ORIGINALS = ("DOE^JOHN", "PID-0001", "ROE^JANE", "PID-0002", "MUSTERMANN", "STM-77031",
             "NGUYEN", "WS-000417", "MAINHOSP")


async def on_anonymization(pilot):
    await pilot.press("8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen)
                   and pilot.app.screen.is_loaded, what="the anonymization screen")
    await wait_for_text(pilot, "sub-010")
    return pilot.app.screen


async def back(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen),
                   what="the dialog to close")


async def reveal(pilot):
    await pilot.press("v")
    await opened(pilot, Confirm)
    await pilot.press("y")
    await back(pilot)
    return await wait_for_text(pilot, "DOE^JOHN")


def masked(text: str) -> bool:
    return MASK in text and not any(original in text for original in ORIGINALS)


def test_identities_are_masked_by_default_and_the_policy_is_said():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_anonymization(pilot)
        text = await wait_for_text(pilot, "Anonymization off (facilities may turn it on)",
                                   "UIDs kept", "map not encrypted", "4 subjects",
                                   "originals masked", "sub-001", "sub-002", "sub-003",
                                   "1,208", "11-02 09:12", "08:14:58")
        assert masked(text)

    drive(console(fake), scenario, size=(120, 30))
    assert fake.reveals == []


def test_the_policy_line_follows_the_settings():
    fake = FakeBackend()
    fake.stored.update(anonymize=True, anonymize_uids=True,
                       anonymization_key_file="/etc/dicomtui/map.key")

    async def scenario(pilot):
        await on_anonymization(pilot)
        await wait_for_text(pilot, "Anonymization on · UIDs replaced · map encrypted")

    drive(console(fake), scenario)


def test_reveal_asks_first_and_no_keeps_the_masks():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_anonymization(pilot)
        await pilot.press("v")
        text = await opened(pilot, Confirm)
        assert "Show original patient identities? This is logged." in text
        assert fake.reveals == []  # asking reveals nothing
        await pilot.press("n")
        await back(pilot)
        await polls(pilot, fake, 2)
        assert masked(screen_text(pilot.app))

    drive(console(fake), scenario)
    assert fake.reveals == []


def test_yes_shows_the_originals_with_one_audited_read():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_anonymization(pilot)
        await reveal(pilot)
        text = await wait_for_text(pilot, "DOE^JOHN", "PID-0001", "MUSTERMANN^ERIKA",
                                   "WS-000417", "ORIGINAL IDENTITIES SHOWN")
        assert MASK not in text
        # polls go on and the map is read again (masked): the originals still shown
        await polls(pilot, fake, 3, seconds=AnonymizationScreen.READ_EVERY)
        assert screen.revealed and "DOE^JOHN" in screen_text(pilot.app)

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))
    assert fake.reveals == [""]  # once, not on every poll


def test_v_again_masks():
    async def scenario(pilot):
        screen = await on_anonymization(pilot)
        await reveal(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: masked(screen_text(pilot.app)), what="masks")
        assert screen.originals == {}
        assert notified(pilot.app, "masked again")

    drive(console(FakeBackend()), scenario)


def test_leaving_the_screen_masks_and_coming_back_shows_masks():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_anonymization(pilot)
        await reveal(pilot)
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await wait_for(pilot, lambda: not screen.revealed, what="the originals forgotten")
        await pilot.press("8")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        await polls(pilot, fake, 2)  # read again on coming back
        assert masked(screen_text(pilot.app))

    drive(console(fake), scenario)
    assert fake.reveals == [""]


def test_a_dialog_over_the_screen_masks_too():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_anonymization(pilot)
        await reveal(pilot)
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        await pilot.press("escape")
        await back(pilot)
        await polls(pilot, fake, 2)
        assert not screen.revealed and masked(screen_text(pilot.app))

    drive(console(fake), scenario)


def test_a_reveal_answered_after_leaving_is_dropped():
    fake = FakeBackend()
    fake.reveal_gate = threading.Event()

    async def scenario(pilot):
        screen = await on_anonymization(pilot)
        await pilot.press("v")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await back(pilot)
        await wait_for(pilot, lambda: fake.reveals == [""], what="the reveal to be asked")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        fake.reveal_gate.set()
        await wait_for(pilot, lambda: all(w.is_finished for w in pilot.app.workers
                                          if w.group == "anon-reveal"),
                       what="the reveal's answer")
        await pilot.press("8")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        await polls(pilot, fake, 2)  # the answer was queued before coming back
        assert not screen.revealed
        assert masked(screen_text(pilot.app))

    drive(console(fake), scenario)


def test_search_filters_by_code_and_escape_clears():
    fake = FakeBackend()
    searches = []
    original = fake.anon_subjects
    fake.anon_subjects = lambda search="", reveal=False: (
        searches.append(search) or original(search, reveal))

    async def scenario(pilot):
        await on_anonymization(pilot)
        await pilot.press("slash", *"01", "enter")
        await wait_for(pilot, lambda: "sub-002" not in screen_text(pilot.app),
                       what="the filtered rows")
        text = await wait_for_text(pilot, "sub-001", "sub-010", 'code contains "01"',
                                   "2 subjects")
        assert "sub-003" not in text and "sub-002" not in text
        assert "01" in searches
        await pilot.press("escape")
        await wait_for_text(pilot, "sub-003", "4 subjects")
        await pilot.press("slash", *"zzz", "enter")
        await wait_for_text(pilot, 'No subject code contains "zzz".')

    drive(console(fake), scenario)


def test_no_subjects_says_nothing_has_been_anonymized():
    fake = FakeBackend()
    fake.subjects = []

    async def scenario(pilot):
        await pilot.press("8")
        await wait_for_text(pilot, "No subjects yet: nothing has been anonymized.",
                            "0 subjects")

    drive(console(fake), scenario)


def test_export_writes_the_file_and_says_so(tmp_path):
    fake = FakeBackend()
    target = tmp_path / "map.json"

    async def scenario(pilot):
        await on_anonymization(pilot)
        await pilot.press("x")
        text = await opened(pilot, FormDialog)
        assert "Export the anonymization map" in text
        field = pilot.app.screen.query_one("#form-path")
        assert field.value == "~/dicomtui-anonymization-map.json"
        await pilot.press("end", "ctrl+u", *str(target), "enter")
        await back(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, f"Exported 4 subjects to {target}"),
                       what="the toast")

    drive(console(fake), scenario, size=(120, 30))
    assert fake.exports == [str(target)]
    rows = json.loads(target.read_text())["subjects"]
    assert rows[0]["patient_name"] == "DOE^JOHN"


def test_export_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    fake = FakeBackend()

    async def scenario(pilot):
        await on_anonymization(pilot)
        await pilot.press("x")
        await opened(pilot, FormDialog)
        await pilot.press("enter")
        await back(pilot)

    drive(console(fake), scenario)
    assert fake.exports == [str(tmp_path / "dicomtui-anonymization-map.json")]


def test_export_onto_an_existing_file_says_why_in_the_dialog_and_writes_nothing(tmp_path):
    fake = FakeBackend()
    target = tmp_path / "map.json"
    target.write_text("keep me")

    async def scenario(pilot):
        await on_anonymization(pilot)
        await pilot.press("x")
        await opened(pilot, FormDialog)
        await pilot.press("end", "ctrl+u", *str(target), "enter")
        await wait_for_text(pilot, "already exists")
        assert isinstance(pilot.app.screen, FormDialog)  # open: one edit away
        await pilot.press("escape")
        await back(pilot)

    drive(console(fake), scenario, size=(120, 30))
    assert target.read_text() == "keep me" and fake.exports == []


def test_the_map_is_read_every_two_seconds_not_every_poll():
    fake = FakeBackend()
    reads = []
    original = fake.anon_subjects
    fake.anon_subjects = lambda search="", reveal=False: (
        reads.append(1) or original(search, reveal))

    async def scenario(pilot):
        await on_anonymization(pilot)
        before, started = len(reads), time.monotonic()
        await polls(pilot, fake, 10)
        elapsed = time.monotonic() - started  # a second, or more on a busy machine
        assert len(reads) - before <= 1 + elapsed / AnonymizationScreen.READ_EVERY

    drive(console(fake, poll_interval=0.1), scenario)


def test_help_and_palette_list_the_screen_and_its_keys():
    async def scenario(pilot):
        await on_anonymization(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        return titles, {key for key, _, _ in pilot.app.screen.key_rows}

    titles, keys = drive(console(FakeBackend()), scenario, size=(120, 40))
    assert {"/", "v", "x", "8"} <= keys
    for title in ("Anonymization (8)", "Reveal (v)", "Export (x)", "Search (/)"):
        assert title in titles
