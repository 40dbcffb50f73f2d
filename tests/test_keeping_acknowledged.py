"""Nothing acknowledged is deleted except by an operator's cleanup of it, and nothing
empty is shipped. Each test reproduces one way the product used to lose an
acknowledged copy: an upload's cleanup, a cleanup racing a re-send, a stale cache of
what a folder holds, an empty zip."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile

from pydicom import dcmread

from archive_helpers import send_all, study
from conftest import cli_env, free_port, wait_for_echo
from helpers import fresh_ct, send, stored_files
from upload_server import UploadApi


def _wait(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout:g} s for {what}")


def test_an_uploads_cleanup_keeps_a_copy_received_again_since_it_was_zipped(make_engine):
    api = UploadApi()
    api.state.delay = 1.5  # version 1 is on its way while the instance comes again
    api.state.script = ["ok", 400]  # version 2 is refused: its files must stay
    try:
        engine = make_engine(zip_studies="true", auto_upload="true", api_url=api.url,
                             api_username="uploader", api_password="s3cret-pass",
                             study_timeout="1", cleanup_after_upload="true")
        first = fresh_ct()
        send(engine.port, [first])
        _wait(lambda: any(u.state == "uploading" for u in engine.shipping.upload_list()),
              "version 1 uploading")
        again = fresh_ct(SOPInstanceUID=first.SOPInstanceUID,
                         StudyInstanceUID=first.StudyInstanceUID,
                         SeriesInstanceUID=first.SeriesInstanceUID,
                         InstitutionName="SENT AGAIN")
        assert [r.Status for r in send(engine.port, [again])] == [0x0000]
        _wait(lambda: sorted(u.state for u in engine.shipping.upload_list()) ==
              ["done", "failed"], "version 1 done, version 2 refused")
    finally:
        api.stop()
    (v1,) = api.state.received
    assert len(zipfile.ZipFile(io.BytesIO(v1.data)).namelist()) == 1
    (kept,) = stored_files(engine.storage.root)  # version 1's cleanup kept it
    assert dcmread(kept).InstitutionName == "SENT AGAIN"
    assert engine.archive.index.study(str(first.StudyInstanceUID))["instances"] == 1
    (v2,) = [u for u in engine.shipping.upload_list() if u.version == 2]
    with zipfile.ZipFile(v2.path) as z:  # version 2's zip holds the new copy
        assert len(z.namelist()) == 1


def test_a_cleanup_never_takes_a_copy_stored_after_it_was_planned(make_engine):
    engine = make_engine(study_timeout="1")
    sent = study("OLD^ONE", "P1", "20240101")
    send_all(engine.port, sent)
    time.sleep(1.1)  # past study_timeout: the study may be cleaned up
    retention = engine.archive.retention
    planned = time.time_ns()  # the plan is made...
    again = fresh_ct(SOPInstanceUID=sent[0].SOPInstanceUID,
                     StudyInstanceUID=sent[0].StudyInstanceUID,
                     SeriesInstanceUID=sent[0].SeriesInstanceUID, PatientID="P1")
    send(engine.port, [again])  # ...then one instance comes again, then it runs
    time.sleep(1.1)
    removed, _ = retention._remove(str(sent[0].StudyInstanceUID), "test", 0, planned)
    assert removed == len(sent) - 1
    (kept,) = stored_files(engine.storage.root)
    assert dcmread(kept).SOPInstanceUID == sent[0].SOPInstanceUID
    doc = engine.archive.index.study(str(sent[0].StudyInstanceUID))
    assert doc is not None and doc["instances"] == 1  # C-FIND still offers it


def test_a_cleanup_keeps_a_study_received_again_since_it_was_planned(make_engine):
    engine = make_engine(study_timeout="1")
    sent = study("OLD^ONE", "P1", "20240101")
    send_all(engine.port, sent)
    time.sleep(1.1)
    uid = str(sent[0].StudyInstanceUID)
    assert [c.uid for c in engine.archive.retention.cleanup_plan(0).remove] == [uid]
    send_all(engine.port, [fresh_ct(StudyInstanceUID=uid, PatientID="P1")])
    removed, _ = engine.archive.retention._remove(uid, "test", 0.0001, time.time_ns())
    assert removed == 0 and len(stored_files(engine.storage.root)) == len(sent) + 1


def test_keep_and_reject_look_at_the_disk_not_at_what_the_folder_held(make_engine):
    for policy in ("keep", "reject"):
        engine = make_engine(study_timeout="1", layout="flat", naming="instance-number",
                             duplicate_policy=policy)
        ds = fresh_ct(InstanceNumber=7)
        assert [r.Status for r in send(engine.port, [ds])] == [0x0000]
        time.sleep(1.1)
        job = engine.archive.jobs.wait(engine.archive.retention.start_cleanup(0).id, 30)
        assert job.result["files"] == 1 and stored_files(engine.storage.root) == []
        assert [r.Status for r in send(engine.port, [ds])] == [0x0000], policy
        (stored,) = stored_files(engine.storage.root)  # really stored, not "kept"
        assert dcmread(stored).SOPInstanceUID == ds.SOPInstanceUID


def test_a_study_whose_files_are_gone_is_never_zipped_or_uploaded(make_engine):
    api = UploadApi()
    try:
        engine = make_engine(zip_studies="true", auto_upload="true", api_url=api.url,
                             api_token="t0ken", study_timeout="1")
        send(engine.port, [fresh_ct()])
        (stored,) = stored_files(engine.storage.root)
        stored.unlink()  # gone before the study completes (an operator, a disk)
        time.sleep(2.5)
        engine.shipping.completion.tick()
        assert engine.shipping.upload_list() == []
        assert not list(engine.shipping.zip_dir().glob("*.zip"))
    finally:
        api.stop()


def test_duplicates_kept_or_rejected_leave_no_temp_file(make_engine):
    for policy, status in (("keep", 0x0000), ("reject", 0xC211)):
        engine = make_engine(duplicate_policy=policy)
        ds = fresh_ct()
        send(engine.port, [ds])
        assert [r.Status for r in send(engine.port, [ds])] == [status]
        root = engine.storage.root
        assert list((root / ".incoming").iterdir()) == []
        assert [p for p in root.rglob("*") if p.is_file()] == stored_files(root)


def _serve_stderr(tmp_path, *settings) -> str:
    """Run `dicomtui serve --log-level DEBUG`, store one instance and query for it (at
    DEBUG pynetdicom logs the query's identifier), stop: its stderr."""
    port, data_dir = free_port(), tmp_path / f"d{len(settings)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomtui", "serve", "--data-dir", str(data_dir),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "DEBUG", *settings],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path))
    try:
        wait_for_echo(port)
        send(port, [fresh_ct(PatientID="MRN-SECRET-42", PatientName="SECRET^SALLY")])
        _find(port, PatientID="MRN-SECRET-42", PatientName="SECRET^SALLY")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    return err


def _find(port: int, **keys) -> None:
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    ae = AE(ae_title="FINDER")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.2.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    list(assoc.send_c_find(query, "1.2.840.10008.5.1.4.1.2.2.1"))
    assoc.release()


def test_serves_log_masks_patients_unless_deidentify_logs_is_off(tmp_path):
    masked = _serve_stderr(tmp_path)
    assert "store" in masked.lower() and "MRN-SECRET-42" not in masked
    assert "SECRET^SALLY" not in masked and "SALLY" not in masked
    plain = _serve_stderr(tmp_path, "--set", "deidentify_logs=false")
    assert "MRN-SECRET-42" in plain  # the filter is what masked them: off, they show
