"""Screen 6, Storage, through Pilot on the FakeBackend: usage against the quota, the
usage tables, cleanup (age, preview, progress) and reindex, and their errors."""

from __future__ import annotations

from dataclasses import replace

from console import (console, drive, handled, notified, opened, polls, wait_for,
                     wait_for_text)
from fake_backend import FakeBackend
from screen_text import screen_text

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.tui.dialogs import Confirm, HelpScreen
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.storage import StorageScreen
from dicomtui.tui.screens.storage_dialogs import CleanupPreview, days_of


async def on_storage(pilot):
    await pilot.press("6")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StorageScreen)
                   and pilot.app.screen.is_loaded, what="the storage screen")
    await wait_for_text(pilot, "By facility")
    return pilot.app.screen


async def back(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StorageScreen),
                   what="the dialog to close")


def flat(pilot) -> str:
    return " ".join(screen_text(pilot.app).split())


def test_usage_against_the_quota_the_disk_the_index_and_the_policy():
    async def scenario(pilot):
        await on_storage(pilot)
        await wait_for_text(pilot, "70%  2.8 GB of 4.0 GB (max_storage_gb)",
                            "1.3 TB free of 2.0 TB · /var/lib/dicomtui/storage",
                            "11 studies · 4,153 instances · 2.8 GB",
                            "auto_cleanup off · retention_days 30",
                            "█" * 21 + "░" * 9)  # 70% of a 30-cell bar

    drive(console(FakeBackend()), scenario, size=(160, 40))


def test_no_quota_says_so_and_auto_cleanup_says_what_it_does():
    fake = FakeBackend()
    fake.quota_bytes = 0
    fake.stored.update(auto_cleanup=True, retention_days=90)

    async def scenario(pilot):
        await on_storage(pilot)
        text = await wait_for_text(pilot, "2.8 GB · no quota (max_storage_gb = 0)",
                                   "auto_cleanup on · retention_days 90",
                                   "studies older than 90 days go")
        assert "█" not in text

    drive(console(fake), scenario, size=(160, 40))


def test_the_three_tables_side_by_side_when_wide_stacked_when_narrow():
    def tables(pilot) -> dict[str, list[tuple]]:
        found = {}
        for kind in ("facility", "modality", "day"):
            table = pilot.app.screen.query_one(f"#usage-{kind}")
            found[kind] = [tuple(str(c) for c in table.get_row_at(n))
                           for n in range(table.row_count)]
        return found

    def heading_line(pilot) -> str:
        return next((li for li in screen_text(pilot.app).splitlines()
                     if "By facility" in li), "")

    async def wide(pilot):
        screen = await on_storage(pilot)
        assert screen.has_class("-wide")
        rows = tables(pilot)
        assert rows["facility"][0] == ("Main Hospital", "6", "3,627", "2.4 GB")
        assert [r[0] for r in rows["modality"]] == ["CT", "MR", "US", "MG", "PT", "CR"]
        assert rows["day"][0] == ("2026-11-23", "7", "3,315", "2.3 GB")
        # the headings share a line once the -wide layout has been applied
        await wait_for(pilot, lambda: "By modality" in heading_line(pilot)
                       and "By day received, newest first" in heading_line(pilot),
                       what="the tables side by side")

    async def narrow(pilot):
        screen = await on_storage(pilot)
        assert screen.has_class("-narrow")
        await wait_for_text(pilot, "By modality")
        assert "By modality" not in heading_line(pilot)

    drive(console(FakeBackend()), wide, size=(160, 40))
    drive(console(FakeBackend()), narrow)


async def preview(pilot, days: str | None = None) -> str:
    """c, the age (the default unless given), Enter: the preview's text."""
    await pilot.press("c")
    await opened(pilot, FormDialog)
    if days is not None:
        await pilot.press("end", "ctrl+u", *days)
    await pilot.press("enter")
    return await opened(pilot, CleanupPreview)


def test_cleanup_asks_the_age_previews_what_goes_and_stays_then_runs():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("c")
        text = await opened(pilot, FormDialog)
        assert "Clean up old studies" in text and "Enter preview" in text
        assert pilot.app.screen.query_one("#form-days").value == "30"  # retention_days
        await pilot.press("enter")
        text = await opened(pilot, CleanupPreview)
        assert "Remove 3 studies (297.6 MB) received over 30 days ago?" in text
        lines = text.splitlines()
        order = [next(n for n, li in enumerate(lines) if pid in li)
                 for pid in ("PID-0031", "STM-70112", "WS-000102")]
        assert order == sorted(order)  # oldest first
        assert "10-02 14:20" in lines[order[0]] and "168.0 MB" in lines[order[0]]
        kept = next(li for li in lines if "PID-0058" in li)
        assert "waiting for upload" in kept
        assert fake.archive_calls == ["plan 30"]
        await pilot.press("enter")  # not a yes: one Enter too many deletes nothing
        await handled(pilot)
        assert isinstance(pilot.app.screen, CleanupPreview)
        await pilot.press("y")
        await back(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "removed 3 studies (297.6 MB)"),
                       what="the outcome")
        await wait_for_text(pilot, "8 studies · 3,795 instances")  # read afresh

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 40))
    assert fake.archive_calls == ["plan 30", "cleanup 30"]


def test_cleanup_shows_progress_while_it_runs():
    fake = FakeBackend()
    fake.job_hold = True

    async def scenario(pilot):
        await on_storage(pilot)
        await preview(pilot)
        await pilot.press("y")
        await wait_for_text(pilot, "cleanup older than 30 days")
        fake.job_list[1].done, fake.job_list[1].message = 2, "removed 2 of 3 studies"
        text = await wait_for_text(pilot, "removed 2 of 3 studies")
        assert "█" * 13 + "░" * 7 + " 2/3" in text
        await pilot.press("c")  # one at a time: said, not asked
        await wait_for(pilot, lambda: notified(pilot.app, "cleanup older than 30 days is "
                                               "running: wait for it to finish"),
                       what="the warning")
        assert isinstance(pilot.app.screen, StorageScreen)
        fake.job_hold = False
        await wait_for(pilot, lambda: notified(pilot.app, "removed 3 studies"),
                       what="the outcome")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_cleanup_age_must_be_a_positive_number_and_is_fixed_in_place():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("c")
        await opened(pilot, FormDialog)
        for typed in ("abc", "0", "-3", ""):
            await pilot.press("end", "ctrl+u", *typed, "enter")
            await wait_for_text(pilot, f"type a number of days above 0, e.g. 30 (got "
                                f"'{typed}')")
            assert isinstance(pilot.app.screen, FormDialog)
        await pilot.press("end", "ctrl+u", *"7.5", "enter")
        text = await opened(pilot, CleanupPreview)
        assert "received over 7.5 days ago?" in text

    drive(console(fake), scenario, size=(120, 30))
    assert fake.archive_calls == ["plan 7.5"]
    assert days_of(" 2,5 ") == 2.5


def test_nothing_old_enough_says_so_and_y_removes_nothing():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        text = await preview(pilot, "60")
        assert "Nothing to clean up: no study received over 60 days ago" in text
        assert "Esc close" in text
        await pilot.press("y")
        await back(pilot)
        await polls(pilot, fake, 2)  # no cleanup started meanwhile

    drive(console(fake), scenario, size=(120, 30))
    assert fake.archive_calls == ["plan 60"]


def test_n_at_the_preview_keeps_everything():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        await preview(pilot)
        await pilot.press("n")
        await back(pilot)
        await polls(pilot, fake, 2)  # no cleanup started meanwhile

    drive(console(fake), scenario)
    assert fake.archive_calls == ["plan 30"]


def test_a_plan_the_backend_refuses_shows_in_the_form():
    fake = FakeBackend()

    def refused(days=None):
        raise InvalidRequest("the study index is being rebuilt (job 4: reindex); wait for "
                             "it to finish")

    fake.cleanup_plan = refused

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("c")
        await opened(pilot, FormDialog)
        await pilot.press("enter")
        await wait_for_text(pilot, "the study index is being rebuilt")
        assert isinstance(pilot.app.screen, FormDialog)

    drive(console(fake), scenario, size=(120, 30))


def test_a_cleanup_the_backend_refuses_to_start_is_an_error_toast():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        await preview(pilot)
        fake.start_reindex()  # from the CLI, between the preview and the yes
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(pilot.app, "a reindex is already running"),
                       what="the refusal")
        toast = next(n for n in pilot.app._notifications if "reindex" in n.message)
        assert toast.severity == "error" and toast.title == "not started"

    drive(console(fake, poll_interval=3600), scenario, size=(120, 30))


def test_a_job_started_elsewhere_shows_here_until_it_ends():
    fake = FakeBackend()
    fake.job_hold = True
    fake.start_reindex()  # the CLI's `dicomtui reindex`

    async def scenario(pilot):
        await on_storage(pilot)
        await wait_for_text(pilot, "reindex  ░░░░")
        fake.job_hold = False
        await wait_for(pilot, lambda: notified(pilot.app, "indexed 11 studies"),
                       what="the outcome")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_i_reindexes_after_asking_and_toasts_the_message():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("i")
        text = await opened(pilot, Confirm)
        assert "Rebuild the study index from the storage folder?" in text
        await pilot.press("n")
        await back(pilot)
        assert fake.archive_calls == []
        await pilot.press("i")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(
            pilot.app, "indexed 11 studies, 4,153 instances; 1 unreadable file (see the "
            "log)"), what="the outcome")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))
    assert fake.archive_calls == ["reindex"]


def test_a_failed_job_is_an_error_toast_with_its_message():
    fake = FakeBackend()
    fake.job_failure = "failed: [Errno 13] Permission denied: '/var/lib/dicomtui/storage/x'"

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("i")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(pilot.app, "Permission denied"),
                       what="the failure")
        toast = next(n for n in pilot.app._notifications if "Permission" in n.message)
        assert toast.severity == "error" and toast.title == "reindex: failed"

    drive(console(fake, poll_interval=0.1), scenario)


def test_a_job_the_receiver_forgot_is_dropped_with_a_warning():
    fake = FakeBackend()
    fake.job_hold = True

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("i")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for_text(pilot, "reindex  ")
        fake.job_list.clear()  # the service restarted
        await wait_for(pilot, lambda: notified(pilot.app, "job 1 is no longer known"),
                       what="the warning")
        await wait_for(pilot, lambda: "reindex  " not in screen_text(pilot.app),
                       what="the line to go")

    drive(console(fake, poll_interval=0.1), scenario)


def test_progress_reads_that_fail_are_shown_and_reading_goes_on():
    fake = FakeBackend()
    fake.job_hold = True
    original = fake.job

    def flaky(job_id):
        if fake.down:
            raise BackendError("cannot reach the dicomtui service at /x.sock: refused")
        return original(job_id)

    fake.down, fake.job = False, flaky

    async def scenario(pilot):
        await on_storage(pilot)
        await pilot.press("i")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for_text(pilot, "reindex  ")
        fake.down = True
        await wait_for_text(pilot, "cannot read progress: cannot reach the dicomtui")
        fake.down, fake.job_hold = False, False
        await wait_for(pilot, lambda: notified(pilot.app, "indexed 11 studies"),
                       what="the outcome")

    drive(console(fake, poll_interval=0.1), scenario, size=(120, 30))


def test_a_report_error_is_a_toast_and_the_screen_stays():
    fake = FakeBackend()

    def broken():
        raise BackendError("cannot read /var/lib/dicomtui/storage: Permission denied")

    fake.storage_report = broken

    async def scenario(pilot):
        await pilot.press("6")
        await wait_for(pilot, lambda: notified(pilot.app, "Permission denied"),
                       what="the error")
        assert "reading the storage report" in flat(pilot)
        await pilot.press("i")  # still usable: reindex may be the fix
        await opened(pilot, Confirm)

    drive(console(fake), scenario)


def test_help_lists_the_screen_keys():
    async def scenario(pilot):
        await on_storage(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        return titles, pilot.app.screen.key_rows

    titles, rows = drive(console(FakeBackend()), scenario, size=(120, 40))
    assert {("c", "Cleanup"), ("i", "Reindex"), ("Tab", "Next table"),
            ("6", "Storage")} <= {(k, d) for k, d, _ in rows}
    for title in ("Cleanup (c)", "Reindex (i)", "Storage (6)", "Restart (r)"):
        assert title in titles


def test_a_report_read_before_a_job_ended_does_not_bring_it_back():
    fake = FakeBackend()

    async def scenario(pilot):
        screen = await on_storage(pilot)
        await pilot.press("i")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(pilot.app, "indexed 11 studies"),
                       what="the outcome")
        progress = screen.query_one("#storage-jobs")
        progress.follow(replace(fake.job_list[1], state="running"))  # a stale report
        assert progress.following == {} and not progress.display

    drive(console(fake, poll_interval=0.1), scenario)
