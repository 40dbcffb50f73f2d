"""`dicomtui serve` and the CLI verbs as a user runs them: real processes, real sockets."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from conftest import cli_env, free_port, run_cli
from helpers import eventually, fresh_ct, send, stored_files

from dicomtui.backend.remote import RemoteBackend

COMMANDS = ["serve", "status", "log", "config", "echo", "send"]


def test_help_everywhere(tmp_path):
    env = cli_env(tmp_path)
    top = run_cli("--help", env=env)
    assert top.returncode == 0 and "serve" in top.stdout and "DICOMTUI_" in top.stdout
    for command in COMMANDS:
        result = run_cli(command, "--help", env=env)
        assert result.returncode == 0, command
        assert "usage: dicomtui " + command in result.stdout


def test_plain_dicomtui_without_a_terminal_points_to_serve(tmp_path):
    result = run_cli(env=cli_env(tmp_path))
    assert result.returncode == 2 and "needs a terminal" in result.stderr
    assert "dicomtui serve" in result.stderr and "Traceback" not in result.stderr


def test_console_options_are_checked_before_the_screen_opens(tmp_path):
    top = run_cli("--help", env=cli_env(tmp_path))
    assert "--no-start" in top.stdout and "Without a COMMAND: the console" in top.stdout
    result = run_cli("--port", "70000", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "port: must be an integer from 1 to 65535" in result.stderr


@pytest.mark.parametrize("args,env_extra,words", [
    (["--port", "70000"], {}, "port: must be an integer from 1 to 65535"),
    (["--ae-title", "WAY_TOO_LONG_AE_TITLE"], {}, "ae_title: must be 1-16 characters"),
    (["--set", "layout=nested"], {}, "layout: must be one of"),
    (["--set", "max_storage_gb=-1"], {}, "max_storage_gb: must be a number >= 0"),
    ([], {"DICOMTUI_PORT": "abc"}, "port: must be an integer"),
])
def test_invalid_settings_exit_2_with_one_line(tmp_path, args, env_extra, words):
    env = {**cli_env(tmp_path), **env_extra}
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), *args, env=env)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_when_stopped(tmp_path):
    env = cli_env(tmp_path)
    result = run_cli("status", "--data-dir", str(tmp_path / "d"), env=env)
    assert result.returncode == 3 and "not running" in result.stderr  # as systemctl
    as_json = run_cli("status", "--json", "--data-dir", str(tmp_path / "d"), env=env)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["state"] == "stopped"


def test_status_of_a_service_whose_receiver_is_stopped_exits_3(service):
    svc = service()
    assert svc.cli("status").returncode == 0
    remote = RemoteBackend(svc.data_dir / "dicomtui.sock")
    try:
        remote.stop()
        stopped = svc.cli("status")
        assert stopped.returncode == 3 and "STOPPED" in stopped.stdout
        remote.start()
    finally:
        remote.close()
    assert svc.cli("status").returncode == 0


def test_serve_status_log_and_clean_shutdown(service, tmp_path):
    svc = service("--ae-title", "RECEIVER",
                  env={**cli_env(tmp_path), "DICOMTUI_LOG_INSTANCES": "yes"})
    ds = fresh_ct()
    (reply,) = send(svc.port, [ds], called="RECEIVER", calling="MODALITY1")
    assert reply.Status == 0
    status = json.loads(svc.cli("status", "--json").stdout)
    assert status["state"] == "running" and status["mode"] == "service"
    assert status["listeners"][0]["port"] == svc.port
    assert status["listeners"][0]["ae_title"] == "RECEIVER"
    assert status["counters"]["received"] == 1 and status["counters"]["bytes"] > 0
    human = svc.cli("status")
    assert human.returncode == 0 and "RUNNING" in human.stdout and "received 1" in human.stdout
    log = eventually(lambda: svc.cli("log", "--json", "--type", "store").stdout,
                     what="the store logged")  # bookkeeping is batched once a second
    (record,) = [json.loads(line) for line in log.splitlines()]
    assert record["sop_uid"] == ds.SOPInstanceUID and record["calling_ae"] == "MODALITY1"
    config = {v["name"]: v for v in json.loads(svc.cli("config", "--json").stdout)}
    assert config["ae_title"]["source"] == "command line"
    assert config["log_instances"]["source"] == "environment"
    assert config["layout"]["source"] == "default"
    assert svc.stop() == 0
    assert not (svc.data_dir / "dicomtui.sock").exists()
    assert "Traceback" not in svc.proc.stderr.read()
    offline = svc.cli("log", "--json")  # no service: read the data dir
    types = [json.loads(line)["type"] for line in offline.stdout.splitlines()]
    assert "store" in types and "association" in types


def test_sigterm_during_a_transfer_loses_nothing_acknowledged(service, tmp_path):
    svc = service()
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        fresh_ct().save_as(folder / f"{i}.dcm", enforce_file_format=True)
    sender = subprocess.Popen(
        [sys.executable, "-m", "dicomtui", "send", "127.0.0.1", str(svc.port), str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eventually(lambda: stored_files(svc.data_dir / "storage"),
               what="the transfer under way")  # then SIGTERM, in the middle of it
    assert svc.stop() == 0
    out, err = sender.communicate(timeout=60)
    acked = _count_sent(out + err)
    files = stored_files(svc.data_dir / "storage")
    assert len(files) >= acked
    for f in files:
        assert dcmread(f).PixelData  # complete files only
    assert not list((svc.data_dir / "storage").rglob("*.tmp"))


def _count_sent(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("sent "):
            return int(line.split()[1])
    return 0


def test_second_service_on_same_data_dir_names_the_owner(service):
    first = service()
    second = run_cli("serve", "--data-dir", str(first.data_dir), "--port",
                     str(free_port()), env=first.env, timeout=30)
    assert second.returncode == 1
    assert f"pid {first.proc.pid}" in second.stderr and "in use" in second.stderr


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--host", "127.0.0.1",
                         "--port", str(port), env=cli_env(tmp_path), timeout=30)
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_storage_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--storage-dir",
                     str(blocker / "storage"), "--port", str(free_port()),
                     env=cli_env(tmp_path), timeout=30)
    assert result.returncode == 1 and "is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_set_and_unset_through_the_service(service):
    svc = service()
    ok = svc.cli("config", "set", "duplicate_policy", "reject")
    assert ok.returncode == 0  # the one setting, not the whole table
    assert ok.stdout.strip() == "duplicate_policy = reject  (stored; applies at once)"
    bad = svc.cli("config", "set", "port", "70000")
    assert bad.returncode == 2 and "port: must be an integer" in bad.stderr
    unknown = svc.cli("config", "set", "colour", "blue")
    assert unknown.returncode == 2 and "unknown setting" in unknown.stderr
    first = fresh_ct()
    again = fresh_ct(SOPInstanceUID=first.SOPInstanceUID,
                     StudyInstanceUID=first.StudyInstanceUID,
                     SeriesInstanceUID=first.SeriesInstanceUID)
    replies = send(svc.port, [first, again])
    assert [r.Status for r in replies] == [0, 0xC211]  # applied live, no restart
    restart_needed = svc.cli("config", "set", "layout", "flat")
    assert restart_needed.stdout.strip() == ("layout = flat  (stored; applies when the "
                                             "receiver restarts (r in the console))")
    unset = svc.cli("config", "unset", "duplicate_policy")
    assert unset.stdout.startswith("duplicate_policy = replace  (default;")
    assert json.loads(svc.cli("config", "set", "layout", "flat", "--json").stdout)[
        "pending_restart"] is True
    assert svc.stop() == 0
    stored = json.loads((svc.data_dir / "dicomtui.json").read_text())["settings"]
    assert list(stored.values())[0] == {"layout": "flat"}


def test_config_without_service_reads_and_writes_the_data_dir(tmp_path):
    env = cli_env(tmp_path)
    d = str(tmp_path / "d")
    assert run_cli("config", "set", "naming", "sequential", "--data-dir", d,
                   env=env).returncode == 0
    shown = json.loads(run_cli("config", "--json", "--data-dir", d, env=env).stdout)
    naming = next(v for v in shown if v["name"] == "naming")
    assert naming["value"] == "sequential" and naming["source"] == "stored"


def test_echo_command(service):
    svc = service()
    ok = run_cli("echo", "127.0.0.1", str(svc.port), env=svc.env)
    assert ok.returncode == 0 and "0x0000" in ok.stdout
    port = free_port()
    closed = run_cli("echo", "127.0.0.1", str(port), env=svc.env)
    assert closed.returncode == 1 and closed.stderr.count("\n") == 1
    assert f"connection refused: nothing listening on 127.0.0.1:{port}" in closed.stderr


def test_send_folder_counts_skipped_files_and_summarises(service, tmp_path):
    svc = service()
    folder = tmp_path / "study" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), folder.parent / "mr")
    (folder / "notes.txt").write_text("not dicom")
    result = run_cli("send", "127.0.0.1", str(svc.port), str(tmp_path / "study"),
                     env=svc.env)
    assert result.returncode == 0, result.stderr
    assert "sent 2" in result.stdout and "skipped 1" in result.stdout
    assert len(stored_files(svc.data_dir / "storage")) == 2


def test_send_synthetic(service):
    svc = service()
    result = run_cli("send", "127.0.0.1", str(svc.port), "--synthetic", "3", env=svc.env)
    assert result.returncode == 0, result.stderr
    assert "sent 3" in result.stdout
    files = stored_files(svc.data_dir / "storage")
    assert len(files) == 3 and all(dcmread(f).Rows == 512 for f in files)


def test_send_reports_failures_with_status(service):
    svc = service("--set", "max_storage_gb=0.000001")
    result = run_cli("send", "127.0.0.1", str(svc.port), get_testdata_file("CT_small.dcm"),
                     env=svc.env)
    assert result.returncode == 1
    assert "failed 1" in result.stdout and "0xA700" in result.stdout


def test_send_ends_at_a_store_left_unanswered(tmp_path):
    """A receiver that aborts the association while a store is in flight: `send` says so
    and ends, rather than sending on (or releasing) on the dead association and waiting
    its 30 s DIMSE or ACSE timeout for an answer that cannot come."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage

    stores = []

    def store(event):
        stores.append(event.request.AffectedSOPInstanceUID)
        if len(stores) == 2:
            event.assoc.abort()  # the receiver stops: no answer to this one
        return 0x0000

    ae = AE(ae_title="ABORTER")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, store)])
    try:
        folder = tmp_path / "five"
        folder.mkdir()
        for n in range(5):
            fresh_ct().save_as(folder / f"{n}.dcm", enforce_file_format=True)
        started = time.monotonic()
        result = run_cli("send", "127.0.0.1", str(port), str(folder), "--aec", "ABORTER",
                         env=cli_env(tmp_path))
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert result.returncode == 1 and "ended the association mid-transfer" in result.stderr
    assert "sent 1" in result.stdout + result.stderr and len(stores) == 2
    assert took < 20, f"{took:.1f} s: waited for a timeout"  # the timeouts are 30 s


@pytest.mark.parametrize("args,words", [
    (["--status", "bogus"], "--status"), (["--since", "yesterday-ish"], "--since"),
    (["--limit", "0"], "--limit"), (["--type", "C-PUT"], "C-STORE, C-ECHO")])
def test_log_usage_errors(tmp_path, args, words):
    result = run_cli("log", "--data-dir", str(tmp_path / "d"), *args, env=cli_env(tmp_path))
    assert result.returncode == 2 and words in result.stderr


def test_log_filters(service):
    svc = service("--set", "max_storage_gb=0.0001")  # two 40 kB CTs fit, not three
    send(svc.port, [fresh_ct(), fresh_ct(), fresh_ct()], calling="FILTERME")

    def ids(*args):
        out = svc.cli("log", "--json", *args).stdout
        return [json.loads(line) for line in out.splitlines()]

    eventually(lambda: len(ids("--type", "store")) == 3,
               what="the three stores logged")  # bookkeeping is batched once a second
    assert ids("--type", "C-STORE") == ids("--type", "c-store") == ids("--type", "store")
    assert {r["type"] for r in ids("--type", "C-STORE", "--type", "Association")} == {
        "store", "association"}
    failed = ids("--status", "failed")
    assert len(failed) == 1 and failed[0]["status"] == 0xA700
    assert ids("--status", "0xA700") == failed
    assert len(ids("--type", "store", "--status", "ok")) == 2
    assert all(r["calling_ae"] == "FILTERME" for r in ids("--ae", "filterme"))
    assert ids("--ae", "NOBODY") == []
    assert len(ids("--since", "1h", "--type", "store")) == 3
    assert ids("--since", "2099-01-01") == []


def test_log_follow_prints_new_records(service):
    svc = service()
    follower = subprocess.Popen(
        [sys.executable, "-m", "dicomtui", "log", "--follow", "--json", "--type", "store",
         "--data-dir", str(svc.data_dir)], stdout=subprocess.PIPE, text=True, env=svc.env)
    try:
        first, second = fresh_ct(), fresh_ct()
        send(svc.port, [first])
        line = _readline(follower, timeout=30)  # listed, or followed: either way it runs
        assert json.loads(line)["sop_uid"] == first.SOPInstanceUID
        send(svc.port, [second])  # stored after the listing: only following prints it
        line = _readline(follower, timeout=30)
        assert json.loads(line)["sop_uid"] == second.SOPInstanceUID
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=60)  # only bounds a failure: a busy machine is slow to exit


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise TimeoutError("no output")
    return proc.stdout.readline()


def test_python_dash_m_and_version(tmp_path):
    result = run_cli("--version", env=cli_env(tmp_path))
    assert result.returncode == 0 and result.stdout.startswith("dicomtui ")


def test_write_failure_answers_a700_and_leaves_nothing(tmp_path):
    """A disk that refuses writes (here: RLIMIT_FSIZE, the portable stand-in for a full
    disk) gets 0xA700 with the reason, no partial file, and the service keeps running."""
    import resource

    def small_files_only():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    env = cli_env(tmp_path)
    port = free_port()
    data = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "dicomtui", "serve", "--data-dir",
                             str(data), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, preexec_fn=small_files_only, stderr=subprocess.PIPE,
                            text=True)
    try:
        from conftest import wait_for_echo
        wait_for_echo(port)
        (reply,) = send(port, [fresh_ct()])  # ~40 kB: over the limit
        assert reply.Status == 0xA700
        assert "write failed" in str(reply.ErrorComment)
        storage = data / "storage"
        assert stored_files(storage) == [] and not list(storage.rglob("*.tmp"))
        status = json.loads(run_cli("status", "--json", "--data-dir", str(data),
                                    env=env).stdout)
        assert status["state"] == "running" and status["counters"]["failed"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_unreadable_db_file_is_one_clear_line(tmp_path):
    """A DB file that is a directory stands in for one we may not read (tests run as root)."""
    data = tmp_path / "d"
    (data / "dicomtui.json").mkdir(parents=True)
    result = run_cli("config", "--data-dir", str(data), env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "cannot open" in result.stderr and "Traceback" not in result.stderr
