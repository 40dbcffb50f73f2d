"""Damaged state never opens a door: what protects access or patients fails closed;
the rest is set aside, rebuilt where it can be, and reported until someone acts.

Each case damages a real data dir the way the issue measured it (an emptied map, a
truncated dicomtui.json, a 0-byte queue or shard) and starts the real service on it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from pydicom import dcmread

from conftest import cli_env, free_port, run_cli, wait_for_echo
from helpers import fresh_ct, send, stored_files

PROTECTED = ["--set", "anonymize=true", "--set", "require_calling_ae=true"]


def _serve(data_dir, tmp_path, *extra, port=None):
    """`dicomtui serve` in the background: (process, port)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomtui", "serve", "--data-dir", str(data_dir),
         "--host", "127.0.0.1", "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path))
    return proc, port


def _stop(proc) -> None:
    """SIGTERM and wait, reading its pipes meanwhile; a stop that hangs fails with the
    service's thread stacks (SIGUSR1)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"serve did not stop within 60 s of SIGTERM:\n{err}") from None


def _used_data_dir(tmp_path, *patients):
    """A data dir that anonymized these (id, name) patients and allows only CT01."""
    data_dir, env = tmp_path / "data", cli_env(tmp_path)
    for verb in (["ae", "allow", "CT01"], ["config", "set", "require_calling_ae", "true"]):
        assert run_cli("--data-dir", str(data_dir), *verb, env=env).returncode == 0
    proc, port = _serve(data_dir, tmp_path, *PROTECTED)
    _wait_listening(port)
    for pid, name in patients:
        (reply,) = send(port, [fresh_ct(PatientID=pid, PatientName=name)], calling="CT01")
        assert reply.Status == 0x0000
    _stop(proc)
    return data_dir


def _refuses_to_start(data_dir, tmp_path, word: str) -> str:
    """The service exits 1 with one line naming the damaged file and what to do."""
    proc, _port = _serve(data_dir, tmp_path, *PROTECTED)
    proc.wait(60)
    err = proc.stderr.read().strip()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and word in err and "backup" in err, err
    return err


@pytest.mark.parametrize("damage, word", [
    (lambda raw: b"", "is empty"),
    (lambda raw: raw[: len(raw) // 2], "is truncated"),
    (lambda raw: raw.replace(b"{", b"[", 3), "is garbled"),
    (None, "is missing"),
])
def test_damaged_settings_never_start_on_defaults(tmp_path, damage, word):
    data_dir = _used_data_dir(tmp_path, ("P-ALPHA", "ALPHA^ANNA"))
    settings = data_dir / "dicomtui.json"
    if damage is None:
        settings.unlink()
    else:
        settings.write_bytes(damage(settings.read_bytes()))
    before = settings.read_bytes() if settings.exists() else None
    _refuses_to_start(data_dir, tmp_path, word)
    assert (settings.read_bytes() if settings.exists() else None) == before  # untouched
    assert not list(data_dir.glob("dicomtui.json.corrupt-*"))
    assert len(stored_files(data_dir / "storage")) == 1  # the intruder stored nothing


def test_an_emptied_map_fails_closed_and_codes_are_never_given_twice(tmp_path):
    data_dir = _used_data_dir(tmp_path, ("P-ALPHA", "ALPHA^ANNA"),
                              ("P-BRAVO", "BRAVO^BEN"))
    amap = data_dir / "anonymization.json"
    kept = amap.read_bytes()
    amap.write_bytes(b"")  # `: > anonymization.json`
    err = _refuses_to_start(data_dir, tmp_path, "anonymization.json is empty")
    assert "codes already given" in err
    doctor = run_cli("--data-dir", str(data_dir), "doctor", env=cli_env(tmp_path))
    assert doctor.returncode == 1 and "ERROR" in doctor.stdout
    assert "anonymization.json is empty" in doctor.stdout
    amap.write_bytes(kept)  # restored from a backup: BRAVO is sub-002 again
    proc, port = _serve(data_dir, tmp_path, *PROTECTED)
    try:
        _wait_listening(port)
        (reply,) = send(port, [fresh_ct(PatientID="P-BRAVO", PatientName="BRAVO^BEN")],
                        calling="CT01")
        assert reply.Status == 0x0000
    finally:
        _stop(proc)
    codes = sorted(dcmread(p).PatientID for p in stored_files(data_dir / "storage"))
    assert codes == ["sub-001", "sub-002", "sub-002"]


def test_a_lost_study_file_of_the_map_fails_closed(tmp_path):
    data_dir = _used_data_dir(tmp_path, ("P-ALPHA", "ALPHA^ANNA"))
    (study,) = (data_dir / "anonymization").glob("study-*.json")
    study.unlink()
    _refuses_to_start(data_dir, tmp_path, "missing although the map names it")


def test_an_unusable_stored_setting_keeps_the_receiver_stopped_until_fixed(tmp_path):
    data_dir = _used_data_dir(tmp_path)
    settings = data_dir / "dicomtui.json"
    tables = json.loads(settings.read_text())
    tables["settings"]["1"]["require_calling_ae"] = "maybe"
    settings.write_text(json.dumps(tables))
    env = cli_env(tmp_path)
    proc, _port = _serve(data_dir, tmp_path)
    proc.wait(60)
    assert proc.returncode == 1 and "require_calling_ae cannot be used" in proc.stderr.read()
    fixed = run_cli("--data-dir", str(data_dir), "config", "set", "require_calling_ae",
                    "true", env=env)
    assert fixed.returncode == 0, fixed.stderr
    proc, port = _serve(data_dir, tmp_path)
    try:
        _wait_listening(port)
        with pytest.raises(AssertionError, match="not accepted"):
            send(port, [fresh_ct()], calling="INTRUDER")
    finally:
        _stop(proc)


@pytest.mark.parametrize("name, lost", [
    ("uploads.json", "no longer queued"),
    ("studies.json", "were not zipped"),
])
def test_a_0_byte_shipping_file_is_set_aside_and_reported_until_dealt_with(
        service, tmp_path, name, lost):
    data_dir = tmp_path / "svc"
    first = service(data_dir=data_dir, env=cli_env(tmp_path))
    first.stop()
    (data_dir / name).write_bytes(b"")
    svc = service(data_dir=data_dir, env=cli_env(tmp_path))
    (aside,) = data_dir.glob(f"{name}.corrupt-*")
    status = json.loads(svc.cli("status", "--json").stdout)
    assert any(lost in w and aside.name in w for w in status["warnings"])
    doctor = svc.cli("doctor")
    assert doctor.returncode == 1 and aside.name in doctor.stdout
    aside.unlink()  # the operator dealt with it
    assert svc.cli("doctor").returncode == 0


def test_0_byte_index_and_log_shards_are_set_aside_and_the_index_rebuilt(service,
                                                                       tmp_path):
    data_dir = tmp_path / "svc"
    first = service(data_dir=data_dir, env=cli_env(tmp_path))
    ds = fresh_ct()
    send(first.port, [ds])
    first.stop()
    (shard,) = [p for p in (data_dir / "index").glob("studies-*.json")
                if p.stat().st_size > 20]
    shard.write_bytes(b"")
    (log,) = (data_dir / "log").glob("tx-*.json")
    log.write_bytes(b"")
    svc = service(data_dir=data_dir, env=cli_env(tmp_path))
    warnings = json.loads(svc.cli("status", "--json").stdout)["warnings"]
    assert any("index was rebuilt" in w for w in warnings)
    assert any("no longer in `dicomtui log`" in w for w in warnings)
    studies = _eventually(lambda: json.loads(svc.cli("studies", "--json").stdout)
                          ["studies"])
    assert studies[0]["uid"] == ds.StudyInstanceUID


def test_the_data_dir_is_private_and_old_files_narrow_at_start(service, tmp_path):
    data_dir = tmp_path / "svc"
    first = service(data_dir=data_dir, env=cli_env(tmp_path))
    send(first.port, [fresh_ct()])
    first.stop()
    (stored,) = stored_files(data_dir / "storage")
    for path in (data_dir, data_dir / "dicomtui.json", stored, stored.parent):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)  # as an older version left it
    svc = service(data_dir=data_dir, env=cli_env(tmp_path))
    send(svc.port, [fresh_ct()])
    open_to_others = [
        p for p in [data_dir, *data_dir.rglob("*")]
        if stat.S_IMODE(p.stat().st_mode) & 0o077 and not p.is_socket()]
    assert open_to_others == []


def test_group_read_shares_the_images_but_never_the_state(service, tmp_path):
    data_dir = tmp_path / "svc"
    svc = service("--set", "group_read=true", data_dir=data_dir, env=cli_env(tmp_path))
    send(svc.port, [fresh_ct()])
    (stored,) = stored_files(data_dir / "storage")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o750
    for private in ("dicomtui.json", "journal", "log"):
        assert stat.S_IMODE((data_dir / private).stat().st_mode) & 0o077 == 0


def test_doctor_on_a_healthy_data_dir_says_so(service, tmp_path):
    svc = service(env=cli_env(tmp_path))
    send(svc.port, [fresh_ct()])
    result = svc.cli("doctor")
    assert result.returncode == 0 and "no problems found" in result.stdout


def _wait_listening(port: int) -> None:
    """Until an allowed caller's C-ECHO is answered."""
    wait_for_echo(port, timeout=30, calling="CT01")


def _eventually(probe, timeout: float = 30):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (json.JSONDecodeError, IndexError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_an_anonymized_store_that_fails_leaves_a_map_that_starts_again(make_engine,
                                                                        tmp_path):
    """The map once counted an instance when it was anonymized, before its file was
    written; a store refused after that (quota full here, a kill -9 in test_crash) left
    a map that names a study file never written, and the receiver then refused to
    start, as for lost originals. Counts come when the originals are kept."""
    engine = make_engine(anonymize="true", max_storage_gb="0.000001")  # ~1 KB
    (reply,) = send(engine.port, [fresh_ct(PatientID="P-FULL", PatientName="FULL^DISK")])
    assert reply.Status == 0xA700
    data_dir = engine.data_dir
    engine.close()
    again = make_engine(data_dir, anonymize="true")
    assert again.snapshot("service").state == "running"
    (reply,) = send(again.port, [fresh_ct(PatientID="P-FULL", PatientName="FULL^DISK")])
    assert reply.Status == 0x0000
    (subject,) = again.privacy.anonymizer().map.subjects()
    assert (subject["instances"], subject["studies"]) == (1, 1)
