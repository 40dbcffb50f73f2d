"""Screen 5, Access, through Pilot on the FakeBackend (which applies the engine's AE
title, address and setting rules): callers, refusals, and the policy switches."""

from __future__ import annotations

from console import console, drive, notified, opened, polls, wait_for, wait_for_text
from fake_backend import FakeBackend, record, refused
from screen_text import screen_text

from dicomtui.backend.base import BackendError
from dicomtui.models import AllowedCaller
from dicomtui.tui.dialogs import Confirm, HelpScreen, RecordScreen
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.access import AccessScreen
from dicomtui.tui.screens.settings import EditSetting


async def on_access(pilot):
    await pilot.press("5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen)
                   and pilot.app.screen.is_loaded, what="the access screen")
    await wait_for_text(pilot, "ANGIO_LAB")
    return pilot.app.screen


async def back(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen),
                   what="the dialog to close")


def field(pilot, name: str) -> str:
    return pilot.app.screen.query_one(f"#form-{name}").value


def test_the_screen_shows_the_policy_callers_and_refusals():
    async def scenario(pilot):
        await on_access(pilot)
        text = await wait_for_text(pilot, "require_calling_ae off (p)", "check_called_ae off",
                                   "auto_create_facilities off", "allowed_ips any (i)",
                                   "CT_SCANNER1", "allowed", "10.1.2.3 ", "CT room 1",
                                   "OLD_US", "denied", "ANGIO_LAB", "STMARYSCLINIC",
                                   "10.4.0.12:40400", "require_calling_ae", "08:00:38")
        assert "10.1.2.3/32" not in text  # one host reads as an address

    drive(console(FakeBackend()), scenario, size=(160, 30))


def test_add_a_caller_with_an_address_and_a_description():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("a")
        await opened(pilot, FormDialog)
        await pilot.press(*"US_ROOM3", "tab", *"10.1.5.0/24", "tab", *"Ultrasound 3",
                          "enter")
        await back(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "US_ROOM3 allowed from "
                                               "10.1.5.0/24"), what="the toast")
        await wait_for_text(pilot, "US_ROOM3")

    drive(console(fake), scenario)
    assert fake.allowed["US_ROOM3"] == AllowedCaller("US_ROOM3", "Ultrasound 3",
                                                     "10.1.5.0/24", True)


def test_a_bad_address_is_explained_in_the_dialog_and_nothing_is_added():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("a")
        await opened(pilot, FormDialog)
        await pilot.press(*"US_ROOM3", "tab", *"10.1.5.999", "enter")
        await wait_for_text(pilot, "'10.1.5.999' is not an IP address or CIDR network")
        assert isinstance(pilot.app.screen, FormDialog)
        await pilot.press("escape")
        await back(pilot)

    drive(console(fake), scenario)
    assert "US_ROOM3" not in fake.allowed


def test_edit_changes_the_address_and_keeps_the_description():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("down", "e")
        text = await opened(pilot, FormDialog)
        assert "Edit allowed caller MR_ROOM2" in text
        assert field(pilot, "description") == "MR, second floor"
        await pilot.press(*"10.1.2.7", "enter")
        await back(pilot)
        await wait_for_text(pilot, "10.1.2.7 ")

    drive(console(fake), scenario)
    assert fake.allowed["MR_ROOM2"] == AllowedCaller("MR_ROOM2", "MR, second floor",
                                                     "10.1.2.7/32", True)


def test_editing_a_denied_caller_keeps_it_denied():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("down", "down", "e")
        text = await opened(pilot, FormDialog)
        assert "Edit allowed caller OLD_US" in text and "stays denied" in text
        await pilot.press(*"10.9.9.9", "enter")
        await back(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "OLD_US (denied) saved"))

    drive(console(fake), scenario)
    assert fake.allowed["OLD_US"] == AllowedCaller("OLD_US", "retired ultrasound",
                                                   "10.9.9.9/32", False)


def test_space_denies_and_allows_again():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("space")
        await wait_for(pilot, lambda: not fake.allowed["CT_SCANNER1"].active, what="deny")
        await wait_for(pilot, lambda: notified(pilot.app, "CT_SCANNER1 denied"))
        await wait_for(pilot, lambda: screen_text(pilot.app).count("denied") >= 2,
                       what="the row to say denied")
        await pilot.press("space")
        await wait_for(pilot, lambda: fake.allowed["CT_SCANNER1"].active, what="allow")

    drive(console(fake), scenario)
    assert fake.allowed["CT_SCANNER1"].ip == "10.1.2.3/32"  # kept across the toggle


def test_remove_asks_first_and_cancel_keeps_the_caller():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("d")
        text = await opened(pilot, Confirm)
        assert "Remove allowed caller CT_SCANNER1?" in text
        assert "deny it (space) instead" in text  # require_calling_ae is off
        await pilot.press("n")
        await back(pilot)
        assert "CT_SCANNER1" in fake.allowed
        await pilot.press("d")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: "CT_SCANNER1" not in fake.allowed, what="removal")
        await wait_for(pilot, lambda: "CT room 1" not in screen_text(pilot.app),
                       what="the row to go")

    drive(console(fake), scenario)


def test_a_on_a_refused_row_prefills_the_caller_and_saving_allows_it():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("tab", "a")
        text = await opened(pilot, FormDialog)
        assert "ANGIO_LAB was refused at 08:00:38 by require_calling_ae" in text
        assert field(pilot, "ae_title") == "ANGIO_LAB"
        assert field(pilot, "ip") == "10.4.0.12"
        assert field(pilot, "description") == "allowed from refused association 08:00:38"
        assert "ANGIO_LAB" not in fake.allowed  # opening the form changed nothing
        await pilot.press("enter")
        await back(pilot)

    drive(console(fake), scenario)
    assert fake.allowed["ANGIO_LAB"] == AllowedCaller(
        "ANGIO_LAB", "allowed from refused association 08:00:38", "10.4.0.12/32", True)


def test_enter_on_a_refused_row_shows_the_whole_record():
    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("tab", "enter")
        text = await opened(pilot, RecordScreen)
        assert "Transaction 38" in text and "St. Mary's Clinic" in text
        assert "require_calling_ae" in text and "diagnostic 3" not in text
        assert "(Rejected Permanent" in text  # dcmtk's words, not codes, and whole
        assert "by DICOM UL service-user: Calling AE Title Not Recognized)" in text

    drive(console(FakeBackend()), scenario, size=(120, 30))


def test_i_shows_the_setting_rule_word_for_word_then_saves():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("i")
        await opened(pilot, EditSetting)
        await pilot.press(*"10.0.0.0/8, bogus", "enter")
        await wait_for_text(pilot, "allowed_ips: must be IP addresses or CIDR networks")
        assert "allowed_ips" not in fake.stored
        await pilot.press("end", "ctrl+u", *"10.0.0.0/8", "enter")
        await back(pilot)
        await wait_for_text(pilot, "allowed_ips 10.0.0.0/8")

    drive(console(fake), scenario)
    assert fake.stored["allowed_ips"] == "10.0.0.0/8"


def test_p_warns_that_everything_would_be_refused_without_an_active_caller():
    fake = FakeBackend()
    fake.allowed = {"OLD_US": AllowedCaller("OLD_US", "", "", False)}

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("p")
        text = await opened(pilot, Confirm)
        assert "Turn require_calling_ae on?" in text
        assert "every association would be refused" in text
        await pilot.press("n")
        await back(pilot)
        assert "require_calling_ae" not in fake.stored
        await pilot.press("p")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: fake.stored.get("require_calling_ae") is True,
                       what="the setting")
        await wait_for_text(pilot, "only allowed callers may associate")
        await pilot.press("p")
        text = await opened(pilot, Confirm)
        assert "Turn require_calling_ae off?" in text

    drive(console(fake), scenario)


def test_p_names_the_callers_that_would_still_be_let_in():
    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("p")
        text = await opened(pilot, Confirm)
        assert "Only the 2 allowed caller(s) may associate (CT_SCANNER1, MR_ROOM2)" in text
        assert "would be refused" not in text

    drive(console(FakeBackend()), scenario)


def test_a_failed_change_is_an_error_toast():
    fake = FakeBackend()

    def broken(ae_title):
        raise BackendError("cannot reach the dicomtui service at /x.sock: refused")

    fake.deny_caller = broken

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("space")
        await wait_for(pilot, lambda: notified(pilot.app, "cannot reach the dicomtui"),
                       what="the error toast")

    drive(console(fake), scenario)


def test_new_refusals_appear_while_shown_reading_only_what_is_new():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_access(pilot)
        assert screen.selected_refusal()["id"] == 38
        fake.records.append(record(41))
        fake.records.append(refused(42, "NEW_MODALITY", "10.7.7.7:1234", "allowed_ips",
                                    "address 10.7.7.7 is not in allowed_ips"))
        text = await wait_for_text(pilot, "NEW_MODALITY")
        assert text.index("NEW_MODALITY") < text.index("ANGIO_LAB")  # newest first
        assert screen.selected_refusal()["id"] == 38  # the cursor stays on its row
        reads = [q for q in fake.queries if q.outcomes == ["refused"]]
        assert reads[0].after_id is None and reads[-1].after_id == 40
        await polls(pilot, fake, 5)  # read again: nothing new, nothing twice
        assert screen_text(pilot.app).count("NEW_MODALITY") == 1

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_help_and_palette_list_the_new_screens_and_keys():
    async def scenario(pilot):
        await on_access(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        return titles, {key for key, _, _ in pilot.app.screen.key_rows}

    titles, keys = drive(console(FakeBackend()), scenario, size=(120, 40))
    assert {"a", "e", "d", "space", "i", "p", "Tab", "4", "5"} <= keys
    for title in ("Facilities (4)", "Access (5)", "Allow/deny (space)",
                  "Require calling AE (p)"):
        assert title in titles


def test_a_prefills_the_selected_refusal_without_tab_first():
    """The 3 a.m. fix: Access, a, Enter; the focus on the callers table is no trap."""
    fake = FakeBackend()
    fake.stored["require_calling_ae"] = True  # ANGIO_LAB is still refused

    async def scenario(pilot):
        await on_access(pilot)
        await pilot.press("a")
        await opened(pilot, FormDialog)
        assert field(pilot, "ae_title") == "ANGIO_LAB"
        assert field(pilot, "ip") == "10.4.0.12"
        await pilot.press("enter")
        await back(pilot)

    drive(console(fake), scenario)
    assert fake.allowed["ANGIO_LAB"].ip == "10.4.0.12/32"


def test_refusals_of_a_caller_now_allowed_are_marked():
    fake = FakeBackend()
    fake.stored["require_calling_ae"] = True

    def marked(pilot) -> str:
        return "\n".join(line for line in screen_text(pilot.app).splitlines()
                         if "now allowed" in line)

    async def scenario(pilot):
        await on_access(pilot)
        await wait_for_text(pilot, "ANGIO_LAB", "OLD_US")
        assert "now allowed" not in screen_text(pilot.app)
        await pilot.press("a")
        await opened(pilot, FormDialog)
        await pilot.press("enter")  # allow ANGIO_LAB from 10.4.0.12
        await back(pilot)
        await wait_for(pilot, lambda: "ANGIO_LAB" in marked(pilot),
                       what="ANGIO_LAB's refusal marked now allowed")
        assert "OLD_US" not in marked(pilot)  # still denied

    drive(console(fake), scenario, size=(160, 40))
