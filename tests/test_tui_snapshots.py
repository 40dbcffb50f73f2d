"""Snapshots of every console screen at 80x24 and 160x48, on deterministic data.

The FakeBackend's data is fixed and the clock frozen at 08:15 UTC, so a changed SVG
means the console's look changed: review it, then `pytest --snapshot-update`.
"""

from __future__ import annotations

import pytest
from console import FROZEN, console, snapshot_ready, wait_for
from fake_backend import FakeBackend

from dicomtui.tui.dialogs import Confirm, HelpScreen, RecordScreen
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.access import AccessScreen
from dicomtui.tui.screens.anonymization import AnonymizationScreen
from dicomtui.tui.screens.facilities import FacilitiesScreen
from dicomtui.tui.screens.log import LogScreen
from dicomtui.tui.screens.series import SeriesScreen
from dicomtui.tui.screens.settings import SettingsScreen
from dicomtui.tui.screens.storage import StorageScreen
from dicomtui.tui.screens.storage_dialogs import CleanupPreview
from dicomtui.tui.screens.studies import StudiesScreen
from dicomtui.tui.screens.study_dialogs import PickDestination
from dicomtui.tui.screens.uploads import UploadsScreen

SIZES = [(80, 24), (160, 48)]


def seeded_rates() -> list[list[int]]:
    """Five minutes of a receive rate that climbs, pauses, and climbs again, as the
    service counts it: [second, images] (the frozen clock's last five minutes)."""
    end, seconds = int(FROZEN.timestamp()), []
    for step in range(60):
        per_second = (step % 20) * 3 if step < 50 else 0
        seconds += [[end - 300 + step * 5 + i, per_second] for i in range(5) if per_second]
    return seconds


def status_app():
    fake = FakeBackend()
    fake.rate_seconds = seeded_rates()
    return console(fake)


async def status_ready(pilot):
    await wait_for(pilot, lambda: pilot.app.snapshot is not None, what="first poll")
    await snapshot_ready(pilot, "peak 57.0/s", "DICOMTUI @ 0.0.0.0:11112 listening",
                         "UNKNOWN_MOD 10.9.9.9:5000")


async def log_ready(pilot):
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen)
                   and pilot.app.screen.is_loaded, what="log rows")
    # newest at the bottom: the table scrolls to its last row after a refresh
    await snapshot_ready(pilot, "40 rows", "08:00:40")


async def settings_ready(pilot):
    await pilot.press("9")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen)
                   and pilot.app.screen.setting_values, what="settings")
    await snapshot_ready(pilot, "waiting for a restart: port, layout", "max_associations",
                         "ae_title: AE title this receiver answers to")


async def facilities_ready(pilot):
    await pilot.press("4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, FacilitiesScreen)
                   and pilot.app.screen.is_loaded and pilot.app.screen.config is not None,
                   what="facilities")
    await snapshot_ready(pilot, "WESTSIDEIMAGING", "calling AEs CT_SCANNER1")


async def access_ready(pilot):
    await pilot.press("5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen)
                   and pilot.app.screen.is_loaded, what="access")
    await snapshot_ready(pilot, "require_calling_ae off (p)", "UNKNOWN_MOD")


async def anonymization_ready(pilot):
    await pilot.press("8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen)
                   and pilot.app.screen.is_loaded, what="subjects")
    await snapshot_ready(pilot, "4 subjects", "sub-010")


async def uploads_ready(pilot):
    await pilot.press("7")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UploadsScreen)
                   and pilot.app.screen.is_loaded, what="uploads")
    await snapshot_ready(pilot, "2 queued · 1 uploading", "in 12 s", "mr-brain")


async def studies_ready(pilot, *texts):
    await pilot.press("3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StudiesScreen)
                   and pilot.app.screen.is_loaded, what="studies")
    await snapshot_ready(pilot, *texts or ("11 studies, newest received first",
                                           "BROWN^OLIVER"))


async def storage_ready(pilot):
    await pilot.press("6")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StorageScreen)
                   and pilot.app.screen.is_loaded, what="storage")
    await snapshot_ready(pilot, "Used ", "By facility", "By day received, newest first",
                         "2026-10-09")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_status_screen(snap_compare, size):
    assert snap_compare(status_app(), terminal_size=size, run_before=status_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_log_screen(snap_compare, size):
    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=log_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings_screen(snap_compare, size):
    fake = FakeBackend()
    fake.stored.update({"port": 11200, "layout": "study"})  # one waits for a restart
    assert snap_compare(console(fake), terminal_size=size, run_before=settings_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_facilities_screen(snap_compare, size):
    assert snap_compare(console(FakeBackend()), terminal_size=size,
                        run_before=facilities_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_access_screen(snap_compare, size):
    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=access_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_anonymization_screen(snap_compare, size):
    """Masked: the originals never show without a confirmed reveal."""
    assert snap_compare(console(FakeBackend()), terminal_size=size,
                        run_before=anonymization_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_uploads_screen(snap_compare, size):
    """One upload in each state: a progress bar, a retry countdown, a cut error."""
    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=uploads_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_studies_screen(snap_compare, size):
    """One study in each state, newest received first."""
    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=studies_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_storage_screen(snap_compare, size):
    """70% of the quota; the usage tables stacked at 80 columns, side by side at 160."""
    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=storage_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_application_log_tab(snap_compare, size):
    async def ready(pilot):
        await log_ready(pilot)
        await pilot.press("t")
        await snapshot_ready(pilot, "level INFO and up", "05:00:00 INFO")

    assert snap_compare(console(FakeBackend()), terminal_size=size, run_before=ready)


def test_log_with_filter_chips(snap_compare):
    async def ready(pilot):
        await log_ready(pilot)
        await pilot.press("slash", *"status:failed quota", "enter")
        await wait_for(pilot, lambda: pilot.app.screen.is_loaded
                       and len(pilot.app.screen.tx_rows) == 1, what="filtered rows")
        await snapshot_ready(pilot, "1 row ", " status:failed ", "08:00:10")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def dialog(first, key: str, dialog_class, text: str):
    """run_before: get the screen ready, press `key`, wait for the dialog it opens to
    show `text` and its keys line."""
    async def ready(pilot):
        await first(pilot)
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, dialog_class))
        await snapshot_ready(pilot, text, "Esc")
    return ready


def test_record_details(snap_compare):
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(log_ready, "enter", RecordScreen,
                                          "Transaction 40"))


def test_help_screen(snap_compare):
    assert snap_compare(status_app(), terminal_size=(80, 24),
                        run_before=dialog(status_ready, "question_mark", HelpScreen,
                                          "Keys  (Ctrl+P: the same as commands)"))


def test_stop_confirmation(snap_compare):
    assert snap_compare(status_app(), terminal_size=(80, 24),
                        run_before=dialog(status_ready, "s", Confirm,
                                          "1 association(s) active (CT_SCANNER1)"))


def test_facility_with_a_listener_error(snap_compare):
    async def ready(pilot):
        await facilities_ready(pilot)
        await pilot.press("down", "down")
        await snapshot_ready(pilot, "Configuration for remote PACS: Westside Imaging",
                             "listener error: port 11115")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def test_add_facility_dialog(snap_compare):
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(facilities_ready, "a", FormDialog,
                                          "Add a facility"))


def test_allow_a_refused_caller_dialog(snap_compare):
    async def ready(pilot):
        await access_ready(pilot)
        await pilot.press("tab")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(ready, "a", FormDialog,
                                          "ANGIO_LAB was refused at 08:00:38"))


def test_reveal_confirmation(snap_compare):
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(anonymization_ready, "v", Confirm,
                                          "Show original patient identities?"))


def test_cancel_upload_confirmation(snap_compare):
    async def ready(pilot):
        await uploads_ready(pilot)
        await pilot.press("down", "down")  # upload 4, uploading

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(ready, "c", Confirm, "Cancel upload 4?"))


def test_require_calling_ae_warning(snap_compare):
    fake = FakeBackend()
    fake.allowed = {}
    assert snap_compare(console(fake), terminal_size=(80, 24),
                        run_before=dialog(access_ready, "p", Confirm,
                                          "There is no allowed caller"))


def test_access_screen_without_colour(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=access_ready)


def test_status_screen_without_colour(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(status_app(), terminal_size=(80, 24), run_before=status_ready)


def test_attached_and_unreachable_header(snap_compare):
    fake = FakeBackend(mode="service")
    fake.rate_seconds = seeded_rates()

    async def ready(pilot):
        await status_ready(pilot)
        pilot.app.unreachable = True
        pilot.app.problem = "cannot reach the dicomtui service at /var/lib/dicomtui/" \
                            "dicomtui.sock: [Errno 111] Connection refused"
        pilot.app.screen.refresh_view()
        await snapshot_ready(pilot, "UNREACHABLE", "cannot reach the dicomtui service")

    assert snap_compare(console(fake, poll_interval=3600), terminal_size=(80, 24),
                        run_before=ready)


def test_series_of_a_study(snap_compare):
    async def ready(pilot):
        await studies_ready(pilot)
        await pilot.press("down", "down")  # SMITH^ALEX, uploading
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SeriesScreen)
                       and pilot.app.screen.is_loaded, what="series")
        await snapshot_ready(pilot, "3 series · 227 instances", "t2_flair_tra")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def test_studies_search_with_a_bad_date(snap_compare):
    async def ready(pilot):
        await studies_ready(pilot)
        await pilot.press("slash", *"doe", "tab", "tab", *"2026-13-01", "enter")
        await wait_for(pilot, lambda: pilot.app.screen.query_one(
            "#studies-search-error").display, what="the error")
        await snapshot_ready(pilot, "from date '2026-13-01' is not a day of the calendar")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def test_empty_study_index(snap_compare):
    fake = FakeBackend()
    fake.archive = []
    assert snap_compare(console(fake), terminal_size=(80, 24),
                        run_before=lambda pilot: studies_ready(pilot, "0 studies",
                                                               "No studies indexed yet"))


def test_send_destination_picker(snap_compare):
    async def ready(pilot):
        await studies_ready(pilot)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickDestination)
                       and pilot.app.screen.destination_list, what="destinations")
        await snapshot_ready(pilot, "PACS_MAIN", "RESEARCH", "Enter send to the selected")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def test_send_without_destinations(snap_compare):
    fake = FakeBackend()
    fake.dests = {}

    async def ready(pilot):
        await studies_ready(pilot)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickDestination)
                       and pilot.app.screen.query_one("#destinations-note").display
                       and "dest add" in str(pilot.app.screen.query_one(
                           "#destinations-note").render()), what="the note")
        await snapshot_ready(pilot, "No destinations yet", "dest add PACS_MAIN")

    assert snap_compare(console(fake), terminal_size=(80, 24), run_before=ready)


def test_send_confirmation(snap_compare):
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(snap_picker, "enter", Confirm,
                                          "Send ROE^JANE (2026-11-23, MR) to PACS_MAIN?"))


async def snap_picker(pilot):
    await studies_ready(pilot)
    await pilot.press("down", "down", "down")  # ROE^JANE, complete
    await pilot.press("m")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickDestination)
                   and pilot.app.screen.destination_list, what="destinations")


async def job_held(pilot, fake, done: int, message: str):
    """The job the keys started, held at `done` with `message`, the toasts gone."""
    await wait_for(pilot, lambda: 1 in fake.job_list, what="the job")
    job = fake.job_list[1]
    job.done, job.message = done, message
    await wait_for(pilot, lambda: f" {done}/{job.total} " in str(
        pilot.app.screen.query_one("JobProgress").render()), what="the progress")
    pilot.app.clear_notifications()
    await snapshot_ready(pilot, f" {done}/{job.total} ")


def test_send_progress(snap_compare):
    fake = FakeBackend()
    fake.job_hold = True

    async def ready(pilot):
        await snap_picker(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        await pilot.press("y")
        await job_held(pilot, fake, 64, "sent 64 of 100 instances")

    assert snap_compare(console(fake, poll_interval=0.1), terminal_size=(80, 24),
                        run_before=ready)


def test_cleanup_age_dialog(snap_compare):
    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24),
                        run_before=dialog(storage_ready, "c", FormDialog,
                                          "Clean up old studies"))


def test_cleanup_preview(snap_compare):
    async def ready(pilot):
        await storage_ready(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FormDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CleanupPreview))
        await snapshot_ready(pilot, "Remove 3 studies", "y remove them")

    assert snap_compare(console(FakeBackend()), terminal_size=(80, 24), run_before=ready)


def test_cleanup_progress(snap_compare):
    fake = FakeBackend()
    fake.job_hold = True

    async def ready(pilot):
        await storage_ready(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FormDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CleanupPreview))
        await pilot.press("y")
        await job_held(pilot, fake, 2, "removed 2 of 3 studies")

    assert snap_compare(console(fake, poll_interval=0.1), terminal_size=(80, 24),
                        run_before=ready)


def test_storage_without_a_quota(snap_compare):
    fake = FakeBackend()
    fake.quota_bytes = 0
    assert snap_compare(console(fake), terminal_size=(80, 24), run_before=storage_ready)
