"""Screen 3, Studies, through Pilot on the FakeBackend (which applies the index's
matching rules): rows and states, the search, refresh, series, and sending a study."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from console import (console, drive, handled, notified, opened, polls, reads_done,
                     wait_for, wait_for_text)
from fake_backend import STUDY_ROOT, FakeBackend
from screen_text import screen_text

from dicomtui.backend.base import BackendError
from dicomtui.models import StudyQuery
from dicomtui.tui.dialogs import Confirm, HelpScreen
from dicomtui.tui.screens.series import SeriesScreen
from dicomtui.tui.screens.status import StatusScreen
from dicomtui.tui.screens.studies import StudiesScreen
from dicomtui.tui.screens.study_dialogs import PickDestination
from dicomtui.tui.screens.study_rows import EMPTY
from dicomtui.tui.screens.study_search import SearchError, chips, study_query

DOE, ROE, MUSTERMANN = (STUDY_ROOT + tail for tail in ("7734102", "7734077", "7734051"))


async def on_studies(pilot):
    await pilot.press("3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StudiesScreen)
                   and pilot.app.screen.is_loaded, what="the studies screen")
    await wait_for_text(pilot, "BROWN^OLIVER")
    return pilot.app.screen


async def back(pilot, screen_class=StudiesScreen):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_class),
                   what="the dialog to close")


def select(pilot, uid: str) -> None:
    table = pilot.app.screen.query_one("#studies-table")
    table.move_cursor(row=table.get_row_index(uid))


def row_of(pilot, name: str) -> str:
    """The screen line of one study (by patient name)."""
    return next(line for line in screen_text(pilot.app).splitlines() if name in line)


def names(pilot) -> list[str]:
    return [s.patient_name for s in pilot.app.screen.page.studies]


async def search(pilot, **fields) -> None:
    """/ then fill the named fields (patient, accession, date_from, ...) and Enter."""
    await pilot.press("slash")
    screen = pilot.app.screen
    for name, value in fields.items():
        screen.query_one(f"#search-{name}").value = value
    await pilot.press("enter")


def test_rows_show_every_state_newest_first_with_counts_and_sizes():
    async def scenario(pilot):
        screen = await on_studies(pilot)
        await wait_for_text(pilot, "11 studies, newest received first")
        for name, state in (("DOE^JOHN", "receiving"), ("MUSTERMANN", "queued"),
                            ("SMITH^ALEX", "uploading"), ("ROE^JANE", "complete"),
                            ("NGUYEN", "zipped"), ("TANAKA", "failed"),
                            ("GARCIA", "uploaded")):
            assert row_of(pilot, name).split()[0] == state, name
        tanaka = row_of(pilot, "TANAKA")
        for cell in ("PID-0150", "2026-11-22", "A7733502", "CT", "Main Hospital", "2,382",
                     "1.2 GB", "07:35:00"):
            assert cell in tanaka, cell
        assert "CT/PT" in row_of(pilot, "MUSTERMANN")
        assert "10-02 14:20" in row_of(pilot, "BROWN^OLIVER")  # not today: with the day
        assert names(pilot)[0] == "DOE^JOHN" and names(pilot)[-1] == "BROWN^OLIVER"
        table = screen.query_one("#studies-table")
        styles = {table.get_row(uid)[0].plain.strip(): str(table.get_row(uid)[0].style)
                  for uid in (DOE, ROE, STUDY_ROOT + "7733502")}
        assert styles == {"receiving": "bold yellow", "complete": "green",
                          "failed": "bold red"}

    drive(console(FakeBackend()), scenario, size=(160, 30))


def test_the_80_column_screen_keeps_the_search_fields_and_keys():
    async def scenario(pilot):
        await on_studies(pilot)
        text = screen_text(pilot.app)
        assert " 3 Studies " in text.splitlines()[0]
        fields = text.splitlines()[1].split()
        assert fields == ["/", "patient", "name,", "ID", "accession", "from", "date", "to",
                          "date", "modality", "facility"]
        assert "/ Search  m Send" in text and "1-9 [] Screens" in text

    drive(console(FakeBackend()), scenario)


def test_search_by_patient_narrows_the_rows_and_esc_clears_it():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_studies(pilot)
        await search(pilot, patient="doe")
        await wait_for(pilot, lambda: names(pilot) == ["DOE^JOHN"], what="the search")
        assert fake.study_queries[-1] == StudyQuery(patient="doe")
        assert screen.focused is screen.query_one("#studies-table")
        text = await wait_for_text(pilot, 'matching patient "doe"')
        assert "1 study, newest received first" in text and "Esc: clear" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(names(pilot)) == 11, what="every study again")
        assert fake.study_queries[-1] == StudyQuery()
        assert screen.query_one("#search-patient").value == ""

    drive(console(fake), scenario, size=(120, 30))


def test_the_patient_id_modality_and_facility_match_any_part_in_any_case():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_studies(pilot)
        await search(pilot, patient="stm-")
        await wait_for(pilot, lambda: names(pilot) == ["MUSTERMANN^ERIKA", "OKAFOR^CHIDI"],
                       what="patient ID")
        await pilot.press("escape")
        await search(pilot, modality="pt")
        await wait_for(pilot, lambda: names(pilot) == ["MUSTERMANN^ERIKA"], what="PT")
        await pilot.press("escape")
        await search(pilot, facility="westside", accession="A7713*")
        await wait_for(pilot, lambda: names(pilot) == ["LEE^MIN"], what="facility")

    drive(console(fake), scenario, size=(120, 30))


def test_dates_in_either_form_become_a_range():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_studies(pilot)
        await search(pilot, date_from="2026-11-22", date_to="20261122")
        await wait_for(pilot, lambda: names(pilot) == ["NGUYEN^VAN AN", "TANAKA^HIROSHI"],
                       what="the day")
        assert (fake.study_queries[-1].date_from, fake.study_queries[-1].date_to) == \
            ("20261122", "20261122")
        assert screen.query_one("#search-date_to").value == "2026-11-22"  # read back
        await wait_for_text(pilot, "matching 2026-11-22")

    drive(console(fake), scenario, size=(120, 30))


@pytest.mark.parametrize("fields, words", [
    ({"date_from": "2026-13-01"}, "from date '2026-13-01' is not a day of the calendar"),
    ({"date_to": "23.11.2026"}, "to date '23.11.2026': use YYYYMMDD or YYYY-MM-DD"),
    ({"date_from": "20261123", "date_to": "20261101"},
     "from 2026-11-23 is after to 2026-11-01: swap them")])
def test_a_bad_date_says_what_would_do_and_sends_nothing(fields, words):
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_studies(pilot)
        asked = len(fake.study_queries)
        await search(pilot, **fields)
        await wait_for_text(pilot, words)
        assert isinstance(screen.focused, type(screen.query_one("#search-patient")))
        await reads_done(pilot, screen)
        assert all(q == StudyQuery() for q in fake.study_queries[asked:])
        await pilot.press("escape")  # clears the fields and the error
        await wait_for(pilot, lambda: words not in screen_text(pilot.app), what="cleared")
        assert screen.query_one("#search-date_from").value == ""

    drive(console(fake), scenario, size=(120, 30))


def test_search_words_are_checked_without_the_console():
    assert study_query({"patient": "  doe  ", "date_from": "2026-11-01"}) == StudyQuery(
        patient="doe", date_from="20261101")
    assert chips(StudyQuery(patient="doe", date_to="20261123", modality="CT")) == [
        'patient "doe"', "until 2026-11-23", "modality CT"]
    with pytest.raises(SearchError, match="use YYYYMMDD"):
        study_query({"date_from": "2026111"})


def test_a_page_cut_at_its_limit_says_n_of_total():
    fake = FakeBackend()
    study = fake.archive[-1]
    fake.archive = [replace(study, uid=f"{STUDY_ROOT}9{n:04d}", patient_name=f"P^{n:04d}",
                            last_received=f"2026-11-{1 + n % 20:02d}T10:00:00+00:00")
                    for n in range(620)]

    async def scenario(pilot):
        await pilot.press("3")
        await wait_for_text(pilot, "500 of 620 studies, newest received first",
                            "narrow the search")
        assert len(pilot.app.screen.page.studies) == 500

    drive(console(fake), scenario, size=(160, 30))


def test_the_list_refreshes_and_the_cursor_stays_on_its_study():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_studies(pilot)
        select(pilot, ROE)
        newest = replace(fake.archive[0], uid=STUDY_ROOT + "7734200", patient_name="NEW^ONE",
                         last_received="2026-11-23T08:15:00+00:00")
        fake.archive.insert(0, newest)
        fake.archive[1] = replace(fake.archive[1], instances=300)  # DOE grows
        await wait_for_text(pilot, "NEW^ONE")
        assert names(pilot)[0] == "NEW^ONE"
        assert screen.selected().uid == ROE
        await wait_for(pilot, lambda: "300" in row_of(pilot, "DOE^JOHN"), what="growth")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_enter_shows_the_series_and_esc_goes_back():
    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, ROE)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SeriesScreen)
                       and pilot.app.screen.is_loaded, what="the series")
        text = await wait_for_text(pilot, "Knee PD FS cor", "ROE^JANE · PID-0002",
                                   "complete · study 2026-11-23 07:42",
                                   "accession A7734077", "MR Knee left",
                                   "3 series · 100 instances · 62.3 MB",
                                   "Series, by number", "Esc Back  m Send", " 3 Studies ")
        lines = [line.split() for line in text.splitlines()]
        assert ["1", "MR", "Knee", "PD", "FS", "cor", "30", "12.3", "MB"] in lines
        await pilot.press("escape")
        await back(pilot)
        assert pilot.app.screen.selected().uid == ROE

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_the_series_of_a_study_removed_meanwhile_say_so():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, ROE)
        fake.archive = [s for s in fake.archive if s.uid != ROE]
        await pilot.press("enter")
        await wait_for_text(pilot, "This study is no longer indexed")
        await wait_for(pilot, lambda: notified(pilot.app, f"study {ROE} is not indexed"),
                       what="the toast")

    drive(console(fake), scenario, size=(120, 30))


async def pick_and_confirm(pilot, ae_row: int = 0) -> str:
    """From the picker: choose a destination, then say yes; the confirmation's text."""
    await opened(pilot, PickDestination)
    await wait_for_text(pilot, "PACS_MAIN", "10.1.2.50:104", "RESEARCH")  # read, then shown
    pilot.app.screen.query_one("#destinations-table").move_cursor(row=ae_row)
    await pilot.press("enter")
    text = await opened(pilot, Confirm)
    await pilot.press("y")
    await back(pilot)
    return text


def test_m_picks_a_destination_confirms_shows_progress_and_toasts_the_outcome():
    fake = FakeBackend()
    fake.job_hold = True

    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, DOE)
        await pilot.press("m")
        text = await pick_and_confirm(pilot)
        assert "Send DOE^JOHN (2026-11-23, CT) to PACS_MAIN?" in text
        assert "214 instances (112.8 MB)" in text and "10.1.2.50:104" in text
        assert "still being received" in text
        await wait_for_text(pilot, "send DOE^JOHN to PACS_MAIN", "0/214")
        fake.job_hold = False
        await wait_for(pilot, lambda: notified(pilot.app, "sent 214 instances to PACS_MAIN")
                       and notified(pilot.app, "214 completed · 0 failed · 0 with a warning"),
                       what="the outcome")
        await wait_for(pilot, lambda: "send DOE^JOHN" not in screen_text(pilot.app),
                       what="the progress line to go")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))
    assert fake.archive_calls == [f"send {DOE} PACS_MAIN"]


def test_n_at_the_confirmation_sends_nothing():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_studies(pilot)
        await pilot.press("m")
        await opened(pilot, PickDestination)
        await pilot.press("enter")
        await opened(pilot, Confirm)
        await pilot.press("n")
        await back(pilot)
        await polls(pilot, fake, 2)  # nothing sent meanwhile

    drive(console(fake), scenario)
    assert fake.archive_calls == []


def test_m_without_destinations_says_how_to_add_one():
    fake = FakeBackend()
    fake.dests = {}

    async def scenario(pilot):
        await on_studies(pilot)
        await pilot.press("m")
        await wait_for_text(pilot, "No destinations yet", "dicomtui dest add AE HOST PORT")
        await pilot.press("enter")  # nothing to pick
        await pilot.press("escape")
        await back(pilot)

    drive(console(fake), scenario)
    assert fake.archive_calls == []


def test_a_send_that_fails_is_an_error_toast():
    fake = FakeBackend()
    fake.job_failure = "failed: association rejected by PACS_MAIN (called AE not recognised)"

    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, ROE)
        await pilot.press("m")
        await pick_and_confirm(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "association rejected by PACS_"),
                       what="the failure")
        toast = next(n for n in pilot.app._notifications if "rejected" in n.message)
        assert toast.severity == "error" and toast.title.endswith(": failed")

    drive(console(fake, poll_interval=0.1), scenario)


def test_a_send_the_backend_refuses_is_said_and_nothing_is_followed():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, ROE)
        await pilot.press("m")
        await opened(pilot, PickDestination)
        fake.archive = [s for s in fake.archive if s.uid != ROE]  # cleaned up meanwhile
        await pilot.press("enter")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(pilot.app, f"study {ROE} is not indexed"),
                       what="the refusal")
        assert not pilot.app.screen.query_one("#studies-jobs").following

    drive(console(fake), scenario)


def test_m_on_the_series_goes_back_to_the_list_and_sends_that_study():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_studies(pilot)
        select(pilot, MUSTERMANN)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SeriesScreen))
        await pilot.press("m")
        await pick_and_confirm(pilot, ae_row=1)
        await wait_for(pilot, lambda: notified(pilot.app, "sent 340 instances to RESEARCH"),
                       what="the outcome")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))
    assert fake.archive_calls == [f"send {MUSTERMANN} RESEARCH"]


def test_an_empty_index_says_how_studies_get_there():
    fake = FakeBackend()
    fake.archive = []

    async def scenario(pilot):
        await pilot.press("3")
        await wait_for_text(pilot, "No studies indexed yet", "0 studies")
        await wait_for(pilot, lambda: EMPTY in " ".join(screen_text(pilot.app).split()),
                       what="the whole note")
        await pilot.press("m", "enter")  # nothing selected: nothing happens
        await handled(pilot)
        assert isinstance(pilot.app.screen, StudiesScreen)

    drive(console(fake), scenario, size=(160, 30))
    assert fake.archive_calls == []


def test_a_search_that_finds_nothing_says_how_to_clear_it():
    async def scenario(pilot):
        await on_studies(pilot)
        await search(pilot, patient="nobody")
        await wait_for_text(pilot, "No study matches this search. Esc clears it.")

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_a_backend_error_is_a_toast_and_the_screen_stays():
    fake = FakeBackend()

    def broken(query):
        raise BackendError("the study index is being rebuilt; try again in a moment")

    fake.studies = broken

    async def scenario(pilot):
        await pilot.press("3")
        await wait_for(pilot, lambda: notified(pilot.app, "the study index is being "
                                               "rebuilt"), what="the error")
        assert isinstance(pilot.app.screen, StudiesScreen)

    drive(console(fake), scenario)


def test_help_and_palette_list_the_screen_keys():
    async def scenario(pilot):
        await on_studies(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        return titles, pilot.app.screen.key_rows

    titles, rows = drive(console(FakeBackend()), scenario, size=(120, 40))
    assert {("/", "Search"), ("m", "Send"), ("enter", "Series"), ("3", "Studies"),
            ("6", "Storage"), ("r", "Restart")} <= {(k, d) for k, d, _ in rows}
    for title in ("Search (/)", "Send (m)", "Series (enter)", "Studies (3)", "Storage (6)"):
        assert title in titles


def test_the_index_is_read_every_few_seconds_and_not_while_away():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_studies(pilot)
        before, started = len(fake.study_queries), time.monotonic()
        await polls(pilot, fake, 10)
        elapsed = time.monotonic() - started  # a second, or more on a busy machine
        assert len(fake.study_queries) - before <= 1 + elapsed / StudiesScreen.READ_EVERY
        select(pilot, ROE)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SeriesScreen))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await reads_done(pilot, screen)
        away = len(fake.study_queries)
        # longer than the list waits between reads, polls going on all the while
        await polls(pilot, fake, 2, seconds=StudiesScreen.READ_EVERY + 0.5)
        assert len(fake.study_queries) == away
        await pilot.press("3")  # back where it was: the series of ROE^JANE
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SeriesScreen))

    drive(console(fake, poll_interval=0.1), scenario)
