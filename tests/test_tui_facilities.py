"""Screen 4, Facilities, through Pilot on the FakeBackend (which applies the engine's
AE title and port rules): add, edit, remove, and what a remote PACS must enter."""

from __future__ import annotations

from console import console, drive, notified, polls, reads_done, wait_for, wait_for_text
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.backend.base import NotFound
from dicomtui.tui.dialogs import Confirm
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.facilities import FacilitiesScreen
from dicomtui.tui.screens.status import StatusScreen


async def on_facilities(pilot):
    await pilot.press("4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, FacilitiesScreen)
                   and pilot.app.screen.is_loaded, what="the facilities")
    return pilot.app.screen


async def open_form(pilot, *keys, dialog_class=FormDialog):
    """Press `keys`, then wait until the dialog they open is drawn (its keys line)."""
    await pilot.press(*keys)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, dialog_class)
                   and "Esc" in screen_text(pilot.app), what=dialog_class.__name__)


async def closed(pilot, screen_class=FacilitiesScreen):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_class),
                   what="the dialog to close")


def test_the_table_shows_each_listener_and_the_panel_what_a_pacs_enters():
    async def scenario(pilot):
        await on_facilities(pilot)
        await wait_for_text(pilot, "calling AEs CT_SCANNER1",  # the panel's end
                            "Main Hospital", "MAINHOSPITAL", "11113", "listening", "3,120",
                            "STMARYSCLINIC", "11-22", "WESTSIDEIMAGING", "error",
                            "Configuration for remote PACS: Main Hospital", "10.1.2.10")
        await pilot.press("down", "down")
        await wait_for_text(pilot, "listener error: port 11115 is already in use",
                            "Configuration for remote PACS: Westside")

    drive(console(FakeBackend()), scenario)


def test_a_stopped_receiver_shows_stopped_listeners_as_a_word():
    async def scenario(pilot):
        await on_facilities(pilot)
        text = await wait_for_text(pilot, "it listens while the receiver runs (s)",
                                   "stopped")
        assert "listening" not in text

    drive(console(FakeBackend(state="stopped"), no_start=True), scenario)


def test_add_generates_the_ae_title_and_port_and_says_them():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_facilities(pilot)
        await open_form(pilot, "a")
        await pilot.press(*"Northgate Radiology", "enter")
        await closed(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "AE title NORTHGATERADIOLO, "
                                               "port 11116"), what="the toast")
        await wait_for_text(pilot, "Configuration for remote PACS: Northgate Radiology")

    drive(console(fake), scenario)
    added = fake.sites["Northgate Radiology"]
    assert (added.ae_title, added.port, added.anonymize) == ("NORTHGATERADIOLO", 11116,
                                                             "default")


def test_add_with_anonymize_on_sends_it_and_the_panel_says_it():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_facilities(pilot)
        await wait_for_text(pilot, "anonymize   default: off (the anonymize setting")
        await open_form(pilot, "a")
        await pilot.press(*"Northgate Radiology", "tab", "tab", "tab")
        assert "◂ default ▸" in screen_text(pilot.app)
        await pilot.press("right")
        await wait_for_text(pilot, "◂ on ▸")
        await pilot.press("enter")
        await closed(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "port 11116, anonymize on"),
                       what="the toast")
        await wait_for_text(pilot, "anonymize   on")

    drive(console(fake), scenario)
    assert fake.sites["Northgate Radiology"].anonymize == "on"


def test_edit_turns_anonymization_off_for_one_facility():
    fake = FakeBackend()
    fake.stored["anonymize"] = True

    async def scenario(pilot):
        await on_facilities(pilot)
        await wait_for_text(pilot, "anonymize   default: on")
        await pilot.press("down")
        await open_form(pilot, "enter")
        await pilot.press("tab", "tab", "tab", "left", "enter")
        await closed(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "anonymize off"), what="toast")
        await wait_for_text(pilot, "anonymize   off")

    drive(console(fake), scenario)
    edited = fake.sites["St. Mary's Clinic"]
    assert (edited.anonymize, edited.ae_title, edited.port) == ("off", "STMARYSCLINIC", 11114)


def test_add_shows_the_rule_it_broke_in_the_dialog_and_adds_nothing():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_facilities(pilot)
        await open_form(pilot, "a")
        await pilot.press(*"Eastside", "tab", *"EASTSIDE_IMAGING_2", "enter")
        await wait_for_text(pilot, "AE title 'EASTSIDE_IMAGING_2' must be at most 16 "
                            "characters")
        await pilot.press("end", "ctrl+u", *"EASTSIDE", "tab", *"11x", "enter")
        await wait_for_text(pilot, "port must be an integer from 1 to 65535 (got '11x')")
        await pilot.press("end", "ctrl+u", *"11114", "enter")
        await wait_for_text(pilot, "port 11114 is already in use")
        assert isinstance(pilot.app.screen, FormDialog)
        assert "Eastside" not in fake.sites
        await pilot.press("escape")
        await closed(pilot)

    drive(console(fake), scenario)
    assert len(fake.sites) == 3


def test_add_of_a_name_that_exists_is_refused_in_words():
    async def scenario(pilot):
        await on_facilities(pilot)
        await open_form(pilot, "a")
        await pilot.press(*"main hospital", "enter")
        await wait_for_text(pilot, "a facility named 'main hospital' already exists")

    drive(console(FakeBackend()), scenario)


def test_edit_changes_the_ae_title_port_and_calling_aes():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_facilities(pilot)
        await pilot.press("down")
        await open_form(pilot, "enter")
        text = screen_text(pilot.app)
        assert "Edit facility St. Mary's Clinic" in text and "STMARYSCLINIC" in text
        await pilot.press("end", "ctrl+u", *"STMARYS", "tab", "end", "ctrl+u", *"11120",
                          "tab", *"US_1, US_2", "enter")
        await closed(pilot)
        await wait_for_text(pilot, "11120")
        await wait_for(pilot, lambda: notified(pilot.app, "facility St. Mary's Clinic: AE "
                                               "title STMARYS, port 11120"), what="toast")

    drive(console(fake), scenario)
    edited = fake.sites["St. Mary's Clinic"]
    assert (edited.ae_title, edited.port, edited.calling_aes) == ("STMARYS", 11120,
                                                                 ["US_1", "US_2"])


def test_remove_asks_naming_the_facility_and_cancel_keeps_it():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_facilities(pilot)
        await open_form(pilot, "down", "d", dialog_class=Confirm)
        text = screen_text(pilot.app)
        assert "Remove facility St. Mary's Clinic?" in text
        assert "AE title STMARYSCLINIC, port 11114. Its listener stops" in text
        await pilot.press("n")
        await closed(pilot)
        assert "St. Mary's Clinic" in fake.sites
        await open_form(pilot, "d", dialog_class=Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: "St. Mary's Clinic" not in fake.sites, what="removal")
        await wait_for(pilot, lambda: "STMARYSCLINIC" not in screen_text(pilot.app),
                       what="the row to go")
        await wait_for(pilot, lambda: notified(pilot.app, "port 11114 no longer listens"),
                       what="the toast")

    drive(console(fake), scenario)


def test_a_facility_gone_meanwhile_is_an_error_toast():
    fake = FakeBackend()

    def gone(name):
        raise NotFound(f"no facility named {name!r} (see `dicomtui facility list`)")

    fake.remove_facility = gone

    async def scenario(pilot):
        await on_facilities(pilot)
        await open_form(pilot, "d", dialog_class=Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(pilot.app, "no facility named 'Main Hospital'"),
                       what="the error toast")

    drive(console(fake), scenario)


def test_no_facilities_says_how_to_add_one():
    fake = FakeBackend()
    fake.sites = {}

    async def scenario(pilot):
        await on_facilities(pilot)
        await wait_for_text(pilot, "Press a to add one, or run `dicomtui facility add NAME`",
                            "No facilities yet")

    drive(console(fake), scenario)


def test_facilities_are_read_while_shown_and_not_while_away():
    fake = FakeBackend()
    reads = []
    original = fake.facilities
    fake.facilities = lambda: reads.append(1) or original()

    async def scenario(pilot):
        screen = await on_facilities(pilot)
        fake.sites["Main Hospital"].instances_today = 3_999
        await wait_for_text(pilot, "3,999")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await reads_done(pilot, screen)  # a read begun on screen 4 is done
        before = len(reads)
        await polls(pilot, fake, 5)
        assert len(reads) == before

    drive(console(fake, poll_interval=0.1), scenario)
