"""Screen 7, Uploads, and the Status screen's upload line, through Pilot on the
FakeBackend (which applies the engine's queue rules): rows, progress, countdowns,
retry, cancel, details and uploading a path by hand."""

from __future__ import annotations

import time
from datetime import timedelta

from console import (FROZEN, console, drive, handled, notified, opened, polls, reads_done,
                     wait_for, wait_for_text)
from fake_backend import TOO_LARGE, FakeBackend
from screen_text import screen_text

from dicomtui.tui.dialogs import Confirm, HelpScreen, RecordScreen
from dicomtui.tui.forms import FormDialog
from dicomtui.tui.screens.status import StatusScreen
from dicomtui.tui.screens.upload_rows import EMPTY
from dicomtui.tui.screens.uploads import UploadsScreen


async def on_uploads(pilot):
    await pilot.press("7")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UploadsScreen)
                   and pilot.app.screen.is_loaded, what="the uploads screen")
    await wait_for_text(pilot, "mr-brain")
    return pilot.app.screen


async def back(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UploadsScreen),
                   what="the dialog to close")


def select(pilot, item_id: int) -> None:
    table = pilot.app.screen.query_one("#uploads-table")
    table.move_cursor(row=table.get_row_index(str(item_id)))


def row_of(pilot, item_id: int) -> str:
    """The screen line of one upload (its ID first)."""
    lines = screen_text(pilot.app).splitlines()
    return next(line for line in lines if line.split()[:1] == [str(item_id)])


def test_rows_show_each_state_progress_and_the_countdown():
    async def scenario(pilot):
        await on_uploads(pilot)
        await wait_for_text(pilot, "2 queued · 1 uploading · 1 failed · 1 done · 1 cancelled",
                            "to http://localhost:8000/api · zip_studies off · auto_upload off",
                            "Uploads, newest first", "…498.7733502", "mr-brain-ex…",
                            "412.0 MB", "1.2 GB", "HTTP 503 Service Unavailable")
        assert "██░░░ 50%" in row_of(pilot, 4) and "uploading" in row_of(pilot, 4)
        assert "v2" in row_of(pilot, 4)  # a study completed again after late instances
        assert "in 12 s" in row_of(pilot, 5) and "queued" in row_of(pilot, 5)
        assert "in " not in row_of(pilot, 6)  # queued, due now: no countdown
        assert "100%" in row_of(pilot, 1) and "done" in row_of(pilot, 1)
        assert "failed" in row_of(pilot, 3) and "%" not in row_of(pilot, 3)
        assert "cancelled" in row_of(pilot, 2)

    drive(console(FakeBackend()), scenario, size=(160, 30))


def test_the_80_column_screen_fits_and_cuts_only_the_error():
    async def scenario(pilot):
        await on_uploads(pilot)
        text = screen_text(pilot.app)
        assert "HTTP 413 …" in row_of(pilot, 3)
        assert " 7 Uploads " in text.splitlines()[0]
        assert "r Retry" in text and "Restart" not in text

    drive(console(FakeBackend()), scenario)


def test_the_countdown_and_progress_move_without_a_key():
    fake = FakeBackend()
    now = [FROZEN]

    async def scenario(pilot):
        await on_uploads(pilot)
        assert "in 12 s" in row_of(pilot, 5)
        now[0] = FROZEN + timedelta(seconds=5)
        next(i for i in fake.queue if i.id == 4).bytes_sent = 309_000_000
        await wait_for(pilot, lambda: "in 7 s" in row_of(pilot, 5), what="the countdown")
        await wait_for(pilot, lambda: "75%" in row_of(pilot, 4), what="the progress")

    drive(console(fake, clock=lambda: now[0], poll_interval=0.1), scenario, size=(120, 30))


def test_the_target_follows_the_settings_and_never_shows_a_secret():
    fake = FakeBackend()
    fake.stored.update(zip_studies=True, auto_upload=True, api_password="hunter2",
                       api_token="tok-123456", api_url="https://ops:s3cret@up.example.org"
                       "/api?key=abc")

    async def scenario(pilot):
        await on_uploads(pilot)
        text = await wait_for_text(
            pilot, "to https://up.example.org/api · zip_studies on · auto_upload on")
        for secret in ("hunter2", "tok-123456", "s3cret", "key=abc"):
            assert secret not in text

    drive(console(fake), scenario, size=(120, 30))


def test_auto_upload_without_zip_studies_is_pointed_out():
    fake = FakeBackend()
    fake.stored.update(auto_upload=True)

    async def scenario(pilot):
        await on_uploads(pilot)
        await wait_for_text(pilot, "auto_upload needs zip_studies")

    drive(console(fake), scenario, size=(120, 30))


def test_r_retries_a_failed_upload():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 3)
        await pilot.press("r")
        await wait_for(pilot, lambda: notified(pilot.app, "upload 3 queued again"),
                       what="the toast")
        await wait_for(pilot, lambda: "queued" in row_of(pilot, 3), what="the row")
        await wait_for_text(pilot, "3 queued · 1 uploading · 0 failed")

    drive(console(fake), scenario, size=(120, 30))
    assert fake.upload_calls == ["retry 3"]
    assert "restart" not in fake.calls  # here r retries; it does not restart


def test_r_on_a_done_upload_says_why_and_asks_nothing():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 1)
        await pilot.press("r")
        await wait_for(pilot, lambda: notified(
            pilot.app, "upload 1 is done: only failed or cancelled uploads can be "
            "retried"), what="the toast")
        await polls(pilot, fake, 2)  # nothing retried meanwhile

    drive(console(fake), scenario)
    assert fake.upload_calls == [] and "restart" not in fake.calls


def test_c_asks_first_and_no_cancels_nothing():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 4)
        await pilot.press("c")
        text = await opened(pilot, Confirm)
        assert "Cancel upload 4? It will not be retried." in text
        assert "abandoned" in text and "Keep it" in text
        await pilot.press("n")
        await back(pilot)
        await polls(pilot, fake, 2, seconds=UploadsScreen.READ_EVERY)  # read again
        assert "uploading" in row_of(pilot, 4)

    drive(console(fake), scenario)
    assert fake.upload_calls == []


def test_c_then_yes_cancels():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 5)
        await pilot.press("c")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await back(pilot)
        await wait_for(pilot, lambda: notified(pilot.app, "upload 5 cancelled"),
                       what="the toast")
        await wait_for(pilot, lambda: "cancelled" in row_of(pilot, 5), what="the row")
        assert "in 12 s" not in row_of(pilot, 5)

    drive(console(fake), scenario, size=(120, 30))
    assert fake.upload_calls == ["cancel 5"]


def test_c_on_a_finished_upload_says_why_without_asking():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 2)
        await pilot.press("c")
        await wait_for(pilot, lambda: notified(pilot.app, "upload 2 is already cancelled: "
                                               "nothing to cancel"), what="the toast")
        assert isinstance(pilot.app.screen, UploadsScreen)

    drive(console(fake), scenario)
    assert fake.upload_calls == []


def test_enter_shows_every_field_with_the_full_error_and_path():
    async def scenario(pilot):
        await on_uploads(pilot)
        select(pilot, 3)
        await pilot.press("enter")
        text = await opened(pilot, RecordScreen)
        assert "Upload 3" in text
        assert TOO_LARGE.split(" per ")[0] in text and "client_max_body_size" in text
        assert "/var/lib/dicomtui/zips/1.2.826.0.1.3680043.8.498.7733502.zip" in text
        for field in ("state", "study UID", "attempts", "last error", "created",
                      "finished", "source", "version", "1,240,000,000 bytes"):
            assert field in text, field
        await pilot.press("escape")
        await back(pilot)

    drive(console(FakeBackend()), scenario, size=(120, 40))


def test_u_with_a_bad_path_keeps_the_dialog_open_with_the_reason(tmp_path):
    fake = FakeBackend()
    missing = tmp_path / "no-such-study"

    async def scenario(pilot):
        await on_uploads(pilot)
        await pilot.press("u")
        text = await opened(pilot, FormDialog)
        assert "Upload a study" in text
        await pilot.press(*str(missing), "enter")
        await wait_for_text(pilot, "does not exist")
        assert isinstance(pilot.app.screen, FormDialog)  # one edit away
        await pilot.press("escape")
        await back(pilot)

    drive(console(fake), scenario, size=(120, 30))
    assert fake.upload_calls == [f"upload {missing}"]
    assert len(fake.queue) == 6


def test_u_with_a_blank_path_says_what_to_type():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        await pilot.press("u")
        await opened(pilot, FormDialog)
        await pilot.press("enter")
        await wait_for_text(pilot, "type the path of a study folder or a .zip")

    drive(console(fake), scenario)
    assert fake.upload_calls == []


def test_u_with_a_study_folder_queues_it_and_selects_it(tmp_path):
    fake = FakeBackend()
    study = tmp_path / "knee"
    study.mkdir()
    (study / "IM0001.dcm").write_bytes(b"\0" * 2048)

    async def scenario(pilot):
        screen = await on_uploads(pilot)
        await pilot.press("u")
        await opened(pilot, FormDialog)
        await pilot.press(*str(study), "enter")
        await back(pilot)
        await wait_for(pilot, lambda: notified(
            pilot.app, "upload 7 queued: knee-20261123T081500.zip (2.0 kB)"),
            what="the toast")
        await wait_for(pilot, lambda: screen.selected() is not None
                       and screen.selected().id == 7, what="the new row selected")
        assert "knee-202611…" in row_of(pilot, 7) and "queued" in row_of(pilot, 7)

    drive(console(fake), scenario, size=(120, 30))
    assert fake.upload_calls == [f"upload {study}"]


def test_an_empty_queue_says_how_uploads_happen():
    fake = FakeBackend()
    fake.queue = []

    async def scenario(pilot):
        await pilot.press("7")
        await wait_for_text(pilot, "No uploads yet")
        await wait_for(pilot, lambda: all(words in " ".join(screen_text(pilot.app).split())
                                          for words in (EMPTY, "0 queued · 0 uploading · "
                                                        "0 failed · 0 done")),
                       what="the note and the counts")
        await pilot.press("r", "c")  # nothing selected: nothing happens
        await handled(pilot)
        await polls(pilot, fake, 2)

    drive(console(fake), scenario, size=(160, 30))
    assert fake.upload_calls == []


def test_the_status_screen_counts_the_queue():
    fake = FakeBackend()

    async def scenario(pilot):
        await wait_for_text(pilot, "Uploads: 2 queued · 1 uploading · 1 failed · 1 done")
        fake.queue = [i for i in fake.queue if i.state in ("queued", "cancelled")]
        await wait_for(pilot, lambda: uploads_line(pilot) == "Uploads: 2 queued",
                       what="zeros left out")
        fake.queue = []
        await wait_for_text(pilot, "Uploads: none")

    drive(console(fake, poll_interval=0.1), scenario)


def uploads_line(pilot) -> str:
    text = screen_text(pilot.app)
    return "Uploads:" + text.split("Uploads:")[1].split("\n")[0].rstrip()


def test_help_lists_the_screen_keys_and_restart_stays_a_command():
    async def scenario(pilot):
        await on_uploads(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        rows = pilot.app.screen.key_rows
        return titles, rows

    titles, rows = drive(console(FakeBackend()), scenario, size=(120, 40))
    assert {("r", "Retry"), ("c", "Cancel"), ("u", "Upload"), ("enter", "Details"),
            ("7", "Uploads"), ("s", "Start/stop")} <= {(k, d) for k, d, _ in rows}
    assert "Restart" not in {d for _, d, _ in rows}  # r is retry here
    for title in ("Retry (r)", "Cancel (c)", "Upload (u)", "Uploads (7)", "Restart"):
        assert title in titles
    assert "Restart (r)" not in titles


def test_restart_from_the_palette_on_this_screen_and_r_elsewhere():
    fake = FakeBackend()

    async def scenario(pilot):
        await on_uploads(pilot)
        command = next(c for c in pilot.app.get_system_commands(pilot.app.screen)
                       if c.title == "Restart")
        await command.callback()
        await opened(pilot, Confirm)  # an association is active: it asks
        await pilot.press("y")
        await wait_for(pilot, lambda: "restart" in fake.calls, what="restart")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await pilot.press("r")
        await opened(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: fake.calls.count("restart") == 2, what="r restarts")

    drive(console(fake), scenario)
    assert fake.upload_calls == []


def test_the_queue_is_read_about_once_a_second_not_every_poll():
    fake = FakeBackend()
    reads = []
    original = fake.uploads
    fake.uploads = lambda: reads.append(1) or original()

    async def scenario(pilot):
        screen = await on_uploads(pilot)
        before, started = len(reads), time.monotonic()
        await polls(pilot, fake, 10, seconds=UploadsScreen.READ_EVERY)
        await reads_done(pilot, screen)
        elapsed = time.monotonic() - started  # a second, or more on a busy machine
        assert 1 <= len(reads) - before <= 1 + elapsed / UploadsScreen.READ_EVERY
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StatusScreen))
        await reads_done(pilot, screen)
        away = len(reads)
        await polls(pilot, fake, 2, seconds=UploadsScreen.READ_EVERY + 0.2)
        assert len(reads) == away  # not read while another screen shows

    drive(console(fake, poll_interval=0.1), scenario)
