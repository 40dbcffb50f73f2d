"""The console on a real engine: local (engine in this process) and attached (service).

`dicomtui` itself starts a service and attaches to it (test_console_service.py); the
engine in the console's own process is what these tests drive when they need no service.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

from conftest import free_port, wait_for_echo
from console import console_from, drive, notified, wait_for, wait_for_text
from helpers import fresh_ct, send, stored_files
from screen_text import screen_text

from dicomtui.backend.base import BackendError
from dicomtui.cli.connect import console_backend, local_backend
from dicomtui.db.txlog import TransactionLog
from dicomtui.service.engine import Engine, EngineError
from dicomtui.service.core.lock import DataDirLock
from dicomtui.tui.screens.log import LogScreen


def args_for(data_dir, port: int | None = None, **settings) -> argparse.Namespace:
    given = {"host": "127.0.0.1", **settings}
    if port is not None:
        given["port"] = str(port)
    return argparse.Namespace(data_dir=data_dir, settings=given)


def in_process(args):
    """The engine in this process, its failures as the console's connector gives them."""
    try:
        return local_backend(args)
    except EngineError as exc:
        raise BackendError(str(exc)) from None


def local_console(data_dir, port, **options):
    return console_from(lambda: in_process(args_for(data_dir, port)),
                        poll_interval=0.1, **options)


def test_local_console_receives_shows_and_quits_cleanly(tmp_path):
    data_dir, port = tmp_path / "data", free_port()

    async def scenario(pilot):
        # the header's state and the Status body's listener are painted separately
        await wait_for_text(pilot, "RUNNING", "local", f"127.0.0.1:{port}", timeout=20)
        await asyncio.to_thread(send, port, [fresh_ct() for _ in range(3)],
                                calling="CT_ROOM_1")
        await wait_for(pilot, lambda: pilot.app.snapshot.counters.received == 3,
                       what="3 received")
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))
        await wait_for_text(pilot, "CT_ROOM_1", "ok 0x0000")
        await pilot.press("up", "enter")  # a store's SOP class is off-screen at 120
        await wait_for_text(pilot, "Transaction 3", "SOP class", "(CT Image)")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen))
        await pilot.press("q")

    drive(local_console(data_dir, port), scenario, size=(120, 30))
    assert len(stored_files(data_dir / "storage")) == 3
    engine = Engine(data_dir, {"host": "127.0.0.1", "port": str(port)}, environ={})
    engine.close()
    stores = TransactionLog(data_dir / "log").query(types=["store"])
    assert len(stores) == 3 and {r["calling_ae"] for r in stores} == {"CT_ROOM_1"}


def test_local_console_with_no_start_leaves_the_port_closed_until_s(tmp_path):
    data_dir, port = tmp_path / "data", free_port()

    async def scenario(pilot):
        await wait_for_text(pilot, "STOPPED", timeout=20)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        await pilot.press("s")
        await wait_for_text(pilot, "RUNNING", timeout=20)
        await asyncio.to_thread(wait_for_echo, port)
        await pilot.press("q")

    drive(local_console(data_dir, port, no_start=True), scenario)


def test_port_busy_is_a_message_on_screen_not_a_traceback(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario(pilot):
            text = await wait_for_text(pilot, "ERROR", timeout=20)
            await wait_for(pilot, lambda: "in use" in screen_text(pilot.app),
                           what="the port-busy message")
            assert "Traceback" not in screen_text(pilot.app)
            await pilot.press("q")
            return text

        drive(local_console(tmp_path / "data", port), scenario, size=(120, 30))


def test_a_locked_data_dir_is_explained_on_screen(tmp_path):
    data_dir = tmp_path / "data"
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        async def scenario(pilot):
            text = await wait_for_text(pilot, "another dicomtui (pid", timeout=20)
            assert "Traceback" not in text
            await pilot.press("q")

        drive(local_console(data_dir, free_port()), scenario, size=(120, 30))
    finally:
        lock.release()


def test_attached_console_shows_the_service_and_quitting_leaves_it_running(service):
    svc = service()

    def connect():
        return console_backend(args_for(svc.data_dir))

    async def scenario(pilot):
        await wait_for_text(pilot, f"attached pid {svc.proc.pid}", "RUNNING",
                            f"service pid {svc.proc.pid}", timeout=20)  # header, body
        await asyncio.to_thread(send, svc.port, [fresh_ct(), fresh_ct()], calling="MR_2")
        await wait_for(pilot, lambda: pilot.app.snapshot.counters.received == 2,
                       what="2 received")
        await wait_for(pilot, lambda: not pilot.app.snapshot.associations,
                       what="the sender's association to close")
        await pilot.press("s")  # a stop always asks, even with no association open
        await wait_for_text(pilot, "Stop the receiver?", "No association is active")
        await pilot.press("y")
        await wait_for_text(pilot, "STOPPED")
        await pilot.press("s")
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("q")

    drive(console_from(connect, poll_interval=0.1), scenario)
    assert svc.proc.poll() is None
    wait_for_echo(svc.port)
    assert len(stored_files(svc.data_dir / "storage")) == 2


def test_attached_console_says_which_options_it_ignored(service):
    svc = service()

    def connect():
        return console_backend(args_for(svc.data_dir, port=4242))

    async def scenario(pilot):
        await wait_for_text(pilot, "attached to service", timeout=20)
        await wait_for(pilot, lambda: notified(pilot.app, "port given here are ignored"),
                       what="the notice")
        await pilot.press("q")

    drive(console_from(connect, poll_interval=0.1), scenario, size=(160, 40))


def test_engine_close_from_two_threads_at_once_is_safe(make_engine, tmp_path):
    """The console's close worker and its unmount may both close a local engine."""
    import threading
    engine = make_engine(tmp_path / "data")
    errors = []

    def close():
        try:
            engine.close()
        except Exception as exc:  # noqa: BLE001 - the test reports whatever happens
            errors.append(exc)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and not engine.is_open
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()
    lock.release()


def test_settings_edited_in_the_console_are_stored_and_refused_like_the_cli(tmp_path):
    from conftest import cli_env, run_cli
    from dicomtui.settings import SPECS
    from dicomtui.tui.screens.settings import EditSetting, SettingsScreen
    data_dir, port = tmp_path / "data", free_port()
    cli = run_cli("--data-dir", str(data_dir), "config", "set", "max_associations", "0",
                  env=cli_env(tmp_path))
    cli_error = cli.stderr.strip().removeprefix("dicomtui: error: ")
    assert cli.returncode == 2 and cli_error.startswith("max_associations:")

    async def edit(pilot, row: int, value: str):
        pilot.app.screen.query_one("#settings-table").move_cursor(row=row)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditSetting))
        await pilot.press("end", "ctrl+u", *value, "enter")

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", timeout=20)
        await pilot.press("9")
        await wait_for_text(pilot, "max_associations")
        rows = [spec.name for spec in SPECS]
        await edit(pilot, rows.index("max_associations"), "0")
        await wait_for_text(pilot, cli_error)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
        await edit(pilot, rows.index("log_instances"), "true")  # at once: no restart offer
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, EditSetting))
        await edit(pilot, rows.index("layout"), "flat")  # needs a restart: said, not asked
        await wait_for_text(pilot, "restart pending")
        await wait_for(pilot, lambda: notified(pilot.app, "press r to restart now"),
                       what="the restart offered")
        assert isinstance(pilot.app.screen, SettingsScreen)
        await pilot.press("q")

    drive(local_console(data_dir, port), scenario, size=(120, 36))
    shown = run_cli("--data-dir", str(data_dir), "config", "--json", env=cli_env(tmp_path))
    import json
    values = {v["name"]: v for v in json.loads(shown.stdout)}
    assert values["layout"]["value"] == "flat" and values["layout"]["source"] == "stored"
    assert values["max_associations"]["value"] == 10


def test_console_adds_a_facility_that_listens_and_allows_a_refused_caller(tmp_path):
    """Screens 4 and 5 on a real engine: a facility added by keys listens at once; a
    caller refused by require_calling_ae is allowed from the refused list, and then
    gets in."""
    from pynetdicom import AE

    from dicomtui.tui.forms import FormDialog
    from dicomtui.tui.screens.access import AccessScreen
    from dicomtui.tui.screens.facilities import FacilitiesScreen

    data_dir, port = tmp_path / "data", free_port()
    facility_port = free_port()

    def echo_ok(called_port: int, calling: str, called: str) -> bool:
        ae = AE(ae_title=calling)
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", called_port, ae_title=called)
        established = assoc.is_established
        if established:
            assoc.release()
        return established

    async def type_into(pilot, text: str) -> None:
        await pilot.press(*list(text))

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", timeout=20)
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FacilitiesScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FormDialog))
        await type_into(pilot, "St. Mary's Clinic")
        await pilot.press("tab", "tab")
        await type_into(pilot, str(facility_port))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FacilitiesScreen))
        await wait_for_text(pilot, "STMARYSCLINIC", str(facility_port), "listening")
        assert await asyncio.to_thread(echo_ok, facility_port, "ANY", "STMARYSCLINIC")

        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen)
                       and pilot.app.screen.is_loaded)
        backend = pilot.app.backend
        await asyncio.to_thread(backend.set_setting, "require_calling_ae", "true")
        assert not await asyncio.to_thread(echo_ok, facility_port, "CT_NEW",
                                           "STMARYSCLINIC")
        await wait_for_text(pilot, "CT_NEW", timeout=15)  # the refusal is listed
        await pilot.press("tab")  # to the refused table
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FormDialog))
        await pilot.press("enter")  # saving the prefilled caller is the confirmation
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AccessScreen))
        await wait_for(pilot, lambda: any(c.ae_title == "CT_NEW"
                                          for c in pilot.app.screen.caller_list),
                       what="CT_NEW allowed")
        assert await asyncio.to_thread(echo_ok, facility_port, "CT_NEW", "STMARYSCLINIC")
        await pilot.press("q")

    drive(local_console(data_dir, port), scenario, size=(120, 36))
    engine = Engine(data_dir, {"host": "127.0.0.1", "port": str(port)}, environ={})
    try:
        (facility,) = engine.sites.facility_list()
        assert (facility.ae_title, facility.port) == ("STMARYSCLINIC", facility_port)
        (caller,) = engine.sites.caller_list()
        assert (caller.ae_title, caller.ip, caller.active) == ("CT_NEW", "127.0.0.1/32",
                                                               True)
    finally:
        engine.close()


def test_console_anonymization_screen_on_a_real_engine(tmp_path):
    """Screen 8 on a real engine: an anonymized image shows as its subject code, the
    identity appears only after v and yes, leaving the screen masks it again, and x
    exports the map to a new 0600 file."""
    import os
    import stat

    from dicomtui.tui.dialogs import Confirm
    from dicomtui.tui.forms import FormDialog
    from dicomtui.tui.screens.anonymization import AnonymizationScreen

    data_dir, port = tmp_path / "data", free_port()
    export = tmp_path / "research-map.json"

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", timeout=20)
        backend = pilot.app.backend
        await asyncio.to_thread(backend.set_setting, "anonymize", "true")
        ds = fresh_ct(PatientID="CONSOLE-PID-9", PatientName="CONSOLE^CLARA")
        await asyncio.to_thread(send, port, [ds])
        await pilot.press("8")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen))
        text = await wait_for_text(pilot, "sub-001", timeout=15)
        assert "CONSOLE-PID-9" not in text and "CLARA" not in text
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm))
        await pilot.press("y")
        text = await wait_for_text(pilot, "CONSOLE-PID-9", timeout=15)
        await pilot.press("1")
        await pilot.press("8")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen))
        text = await wait_for_text(pilot, "sub-001")
        assert "CONSOLE-PID-9" not in text
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FormDialog))
        dialog = pilot.app.screen
        from textual.widgets import Input
        field = dialog.query(Input).first()
        field.value = str(export)
        await pilot.press("enter")
        await wait_for(pilot, lambda: export.exists(), what="the export file")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AnonymizationScreen))
        # the file is written before the dialog's worker says so
        await wait_for(pilot, lambda: notified(pilot.app, "Exported 1"), what="the toast")
        await pilot.press("q")

    drive(local_console(data_dir, port), scenario, size=(120, 30))
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o600
    assert "CONSOLE-PID-9" in export.read_text()
    (stored,) = stored_files(data_dir / "storage")
    assert b"CONSOLE-PID-9" not in stored.read_bytes()
    stores = TransactionLog(data_dir / "log").query(types=["store"])
    assert [r["patient_id"] for r in stores] == ["sub-001"]
    log_text = "\n".join(p.read_text() for p in (data_dir / "log").glob("*.json"))
    assert "CONSOLE-PID-9" not in log_text


def test_console_uploads_screen_on_a_real_engine(tmp_path):
    """Screen 7 on a real engine and a real upload API: a received study completes, is
    zipped and uploaded; a refused one shows the server's message and r retries it."""
    from dicomtui.tui.screens.uploads import UploadsScreen
    from upload_server import UploadApi

    api = UploadApi()
    api.state.script = [(400, {}, {"detail": "missing accession"})]
    data_dir, port = tmp_path / "data", free_port()
    settings = {"zip_studies": "true", "auto_upload": "true", "study_timeout": "1",
                "api_url": api.url, "api_username": "uploader",
                "api_password": "s3cret-pass", "retry_delay": "0.1"}

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", timeout=20)
        await asyncio.to_thread(send, port, [fresh_ct()])
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, UploadsScreen))
        await wait_for_text(pilot, "missing accession", timeout=20)  # the row is there
        from dicomtui.tui.dialogs import RecordScreen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RecordScreen))
        text = await wait_for_text(pilot, "missing accession")
        assert "s3cret-pass" not in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, UploadsScreen))
        await pilot.press("r")
        await wait_for(pilot, lambda: pilot.app.screen.items
                       and pilot.app.screen.items[0].state == "done", timeout=20,
                       what="the retried upload done")
        await pilot.press("1")
        await wait_for_text(pilot, "1 done", timeout=10)
        await pilot.press("q")

    app = console_from(lambda: in_process(args_for(data_dir, port, **settings)),
                       poll_interval=0.1)
    try:
        drive(app, scenario, size=(120, 30))
    finally:
        api.stop()
    assert len(api.state.received) == 1


def test_services_edited_in_the_console_apply_to_the_next_association(tmp_path):
    """Settings screen on a real engine: a bad service name is refused word for word;
    turning store off needs no restart, and the next storage context is refused."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, Verification

    from dicomtui.settings import SPECS
    from dicomtui.tui.screens.settings import EditSetting, SettingsScreen
    data_dir, port = tmp_path / "data", free_port()
    rows = [spec.name for spec in SPECS]
    seen: dict[str, list] = {}

    async def edit(pilot, value: str):
        pilot.app.screen.query_one("#settings-table").move_cursor(
            row=rows.index("services"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditSetting))
        await pilot.press("end", "ctrl+u", *value, "enter")

    def associate() -> None:
        ae = AE(ae_title="PICKY")
        ae.add_requested_context(Verification)
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
        seen["accepted"] = [str(cx.abstract_syntax) for cx in assoc.accepted_contexts]
        assoc.release()

    async def scenario(pilot):
        await wait_for_text(pilot, "RUNNING", timeout=20)
        await pilot.press("9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen)
                       and pilot.app.screen.setting_values, what="settings")
        await edit(pilot, "echo,bogus")
        await wait_for_text(pilot, "'bogus' is not a service")
        await pilot.press("ctrl+u", *"echo,find", "enter")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, EditSetting))
        await wait_for_text(pilot, "echo,find")
        await asyncio.to_thread(associate)
        await pilot.press("q")

    drive(local_console(data_dir, port), scenario, size=(120, 36))
    assert seen["accepted"] == [Verification]
