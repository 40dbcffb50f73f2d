"""Anonymization on receive, end to end: real associations into a real engine, the files
on disk, the map, the transaction log, restore, and the service's logs."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE

from anon_helpers import identifying_strings, kept_strings, leaks
from conftest import free_port, run_cli
from dicomtui.service.privacy.restore import RestoreError, restore_path
from helpers import fresh_ct, send, stored_files
from test_receive import SAMPLES


def records(engine, **flt):
    engine.writer.flush()
    return engine.txlog.query(limit=1000, **flt)


def _restorable(ds: Dataset, back: Dataset) -> list:
    """Tags whose restored value differs from the original (private ones are not kept)."""
    return [e.tag for e in ds if not e.tag.is_private and e.tag.element != 0
            and (e.tag not in back or back[e.tag] != e)]


@pytest.mark.parametrize("uids", [False, True], ids=["uids-kept", "uids-replaced"])
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_sample_is_anonymized_on_receive_and_restores_exactly(make_engine, tmp_path,
                                                                    path, uids):
    engine = make_engine(anonymize="true", anonymize_uids=str(uids), layout="flat")
    original = dcmread(path)
    (reply,) = send(engine.port, [path])
    assert reply.Status == 0x0000, reply
    (stored,) = stored_files(engine.storage.root)
    data = stored.read_bytes()
    out = dcmread(stored)
    # no identifying string of the original anywhere in the file's bytes
    assert leaks(data, identifying_strings(original, uids), kept_strings(out)) == []
    assert out.PatientID == "sub-001" and out.PatientName == "sub-001"
    assert out.PatientIdentityRemoved == "YES"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert (out.SOPInstanceUID != original.SOPInstanceUID) == uids
    for name in ("PixelData", "WaveformData"):  # the image itself: byte for byte
        if name in original:
            assert out[name].value == original[name].value
    assert not [e for e in out if e.tag.is_private]
    # restore gives the original values back
    engine.writer.flush()
    restored = tmp_path / "restored.dcm"
    restore_path(stored, restored, engine.privacy.anonymizer().map)
    back = dcmread(restored)
    assert _restorable(original, back) == []
    assert back.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID


def _patient(pid: str, name: str, study: str | None = None) -> Dataset:
    return fresh_ct(PatientID=pid, PatientName=name,
                    StudyInstanceUID=study or generate_uid())


def test_two_patients_get_two_codes_and_one_patient_keeps_one(make_engine, tmp_path):
    data_dir = tmp_path / "data"
    engine = make_engine(data_dir=data_dir, anonymize="true")
    study = generate_uid()
    send(engine.port, [_patient("PAT-A", "ALPHA^ANNA", study)])
    send(engine.port, [_patient("PAT-B", "BETA^BEN")])
    send(engine.port, [_patient("PAT-A", "ALPHA^ANNA", study)])  # another association
    ids = sorted(dcmread(p).PatientID for p in stored_files(engine.storage.root))
    assert ids == ["sub-001", "sub-001", "sub-002"]
    stores = records(engine, types=["store"])
    assert sorted(r["patient_id"] for r in stores) == ids
    subjects = {s.code: s for s in engine.privacy.anon_subjects(reveal=True)}
    assert subjects["sub-001"].patient_id == "PAT-A"
    assert subjects["sub-001"].instances == 2 and subjects["sub-001"].studies == 1
    # a restart keeps the codes: same patient, same code; a new one gets the next
    engine.close()
    again = make_engine(data_dir=data_dir, anonymize="true")
    send(again.port, [_patient("PAT-B", "BETA^BEN"), _patient("PAT-C", "GAMMA^GUS")])
    codes = {s.code: s.patient_id for s in again.privacy.anon_subjects(reveal=True)}
    assert codes == {"sub-001": "PAT-A", "sub-002": "PAT-B", "sub-003": "PAT-C"}


def test_issuer_of_patient_id_separates_patients_with_the_same_id(engine):
    engine.set_setting("anonymize", "true")
    send(engine.port, [_patient("123", "ONE^A") for _ in range(1)]
         + [fresh_ct(PatientID="123", IssuerOfPatientID="OTHER-HOSPITAL")])
    assert len(engine.privacy.anon_subjects()) == 2


def test_concurrent_associations_give_one_code_per_patient(engine):
    engine.set_setting("anonymize", "true")
    errors = []

    def sender(n: int) -> None:
        try:
            items = [_patient(f"P{(n + i) % 3}", f"NAME^{(n + i) % 3}") for i in range(6)]
            assert all(r.Status == 0 for r in send(engine.port, items))
        except Exception as exc:  # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    by_code: dict[str, set[str]] = {}
    engine.writer.flush()
    for s in engine.privacy.anon_subjects(reveal=True):
        by_code.setdefault(s.patient_id, set()).add(s.code)
    assert sorted(by_code) == ["P0", "P1", "P2"]
    assert all(len(codes) == 1 for codes in by_code.values())
    assert sum(s.instances for s in engine.privacy.anon_subjects()) == 24


def test_replaced_uids_keep_references_consistent_and_restore(make_engine, tmp_path):
    engine = make_engine(anonymize="true", anonymize_uids="true")
    first = _patient("REF-1", "REF^ONE")
    second = fresh_ct(PatientID="REF-1", PatientName="REF^ONE",
                      StudyInstanceUID=first.StudyInstanceUID,
                      SeriesInstanceUID=first.SeriesInstanceUID)
    ref = Dataset()
    ref.ReferencedSOPClassUID = first.SOPClassUID
    ref.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence = Sequence([ref])
    assert [r.Status for r in send(engine.port, [first, second])] == [0, 0]
    out = [dcmread(p) for p in stored_files(engine.storage.root)]
    a, b = sorted(out, key=lambda d: "ReferencedImageSequence" in d)
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != first.SeriesInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    engine.writer.flush()
    target = tmp_path / "restored"
    report = restore_path(engine.storage.root, target, engine.privacy.anonymizer().map)
    assert report.restored == 2
    back = sorted((dcmread(p) for p in stored_files(target)),
                  key=lambda d: "ReferencedImageSequence" in d)
    assert back[0].SOPInstanceUID == first.SOPInstanceUID
    assert back[1].ReferencedImageSequence[0].ReferencedSOPInstanceUID == \
        first.SOPInstanceUID


# its listener takes the next free port from 11113, as do the others in this group: run
# together, two could pick the same port between the check and the bind
@pytest.mark.xdist_group("facility-ports")
def test_a_facility_can_anonymize_while_the_rest_does_not(engine):
    made = engine.sites.add_facility("Research Site", anonymize="on")
    send(made.port, [_patient("R-1", "RESEARCH^ROB")], called=made.ae_title)
    send(engine.port, [_patient("C-1", "CLINIC^CLARA")])
    ids = sorted(dcmread(p).PatientID for p in stored_files(engine.storage.root))
    assert ids == ["C-1", "sub-001"]
    engine.set_setting("anonymize", "true")
    engine.sites.update_facility("Research Site", anonymize="off")
    send(made.port, [_patient("R-2", "RESEARCH^RIA")], called=made.ae_title)
    send(engine.port, [_patient("C-2", "CLINIC^CARL")])
    ids = sorted(dcmread(p).PatientID for p in stored_files(engine.storage.root))
    assert ids == ["C-1", "R-2", "sub-001", "sub-002"]
    facilities = {f.name: f for f in engine.sites.facility_list()}
    assert facilities["Research Site"].anonymize == "off"


def test_without_its_key_the_map_refuses_and_nothing_is_stored(make_engine, tmp_path):
    key = tmp_path / "map.key"
    assert run_cli("anon", "keygen", str(key)).returncode == 0
    engine = make_engine(anonymize="true")
    engine.set_setting("anonymization_key_file", str(key))  # stored: changeable live
    assert send(engine.port, [_patient("K-1", "KEY^KATE")])[0].Status == 0
    map_file = engine.data_dir / "anonymization.json"
    assert b"K-1" not in map_file.read_bytes() and b"KATE" not in map_file.read_bytes()
    other = tmp_path / "other.key"
    run_cli("anon", "keygen", str(other))
    engine.set_setting("anonymization_key_file", str(other))
    (reply,) = send(engine.port, [_patient("K-2", "KEY^KARL")])
    assert reply.Status == 0x0110 and "cannot anonymize" in reply.ErrorComment
    assert len(stored_files(engine.storage.root)) == 1
    (failed,) = [r for r in records(engine, types=["store"]) if r["outcome"] == "failed"]
    assert failed["patient_id"] == "" and "K-2" not in json.dumps(failed)
    engine.set_setting("anonymization_key_file", str(key))
    assert send(engine.port, [_patient("K-2", "KEY^KARL")])[0].Status == 0


def test_restore_cli_restores_a_tree_and_refuses_unknown_codes(make_engine, tmp_path):
    data_dir = tmp_path / "data"
    engine = make_engine(data_dir=data_dir, anonymize="true")
    originals = [_patient("CLI-1", "CLI^ONE"), _patient("CLI-2", "CLI^TWO")]
    send(engine.port, originals)
    engine.close()
    storage = data_dir / "storage"
    env = {**os.environ, "DICOMTUI_DATA_DIR": str(data_dir)}
    done = run_cli("restore", str(storage), str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert "restored 2 file(s)" in done.stdout
    back = {dcmread(p).PatientID: dcmread(p) for p in stored_files(tmp_path / "out")}
    assert set(back) == {"CLI-1", "CLI-2"}
    assert back["CLI-1"].PatientName == "CLI^ONE"
    assert "PatientIdentityRemoved" not in back["CLI-1"]
    # a file whose code the map does not know: an error, and nothing written at all
    stranger = dcmread(stored_files(storage)[0])
    stranger.PatientID = "sub-999"
    stranger.save_as(storage / "stranger.dcm")
    done = run_cli("restore", str(storage), str(tmp_path / "out2"), env=env)
    assert done.returncode == 1 and "sub-999" in done.stderr
    assert "nothing was written" in done.stderr
    assert not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out2")]
    # an existing output is never overwritten
    done = run_cli("restore", str(storage), str(tmp_path / "out"), env=env)
    assert done.returncode == 1 and "already exists" in done.stderr


def test_restore_with_the_wrong_key_writes_nothing(make_engine, tmp_path):
    key, wrong = tmp_path / "k", tmp_path / "wrong"
    run_cli("anon", "keygen", str(key))
    run_cli("anon", "keygen", str(wrong))
    data_dir = tmp_path / "data"
    engine = make_engine(data_dir=data_dir, anonymize="true",
                         anonymization_key_file=str(key))
    send(engine.port, [_patient("W-1", "WRONG^KEY")])
    engine.close()
    (stored,) = stored_files(data_dir / "storage")
    env = {**os.environ, "DICOMTUI_DATA_DIR": str(data_dir)}
    done = run_cli("restore", str(stored), str(tmp_path / "x.dcm"), "--key-file", str(wrong),
                   env=env)
    assert done.returncode == 1 and "cannot be decrypted" in done.stderr
    assert not (tmp_path / "x.dcm").exists()
    done = run_cli("restore", str(stored), str(tmp_path / "x.dcm"), "--key-file", str(key),
                   env=env)
    assert done.returncode == 0, done.stderr
    assert dcmread(tmp_path / "x.dcm").PatientID == "W-1"


def test_restore_refuses_files_that_were_not_anonymized(engine, tmp_path):
    engine.set_setting("anonymize", "true")
    send(engine.port, [_patient("N-1", "NOT^ANON")])
    plain = tmp_path / "plain.dcm"
    fresh_ct().save_as(plain)
    engine.writer.flush()
    with pytest.raises(RestoreError, match="not an anonymized file"):
        restore_path(plain, tmp_path / "o.dcm", engine.privacy.anonymizer().map)


def test_service_logs_and_transaction_log_never_show_the_identity(service, tmp_path):
    svc = service("--log-level", "DEBUG", "--set", "anonymize=true")
    ds = _patient("SECRET-ID-42", "HIDDEN^PERSON")
    ds.InstitutionName = "Hospital Of Secrets"
    assert send(svc.port, [ds])[0].Status == 0
    log = svc.cli("log", "--json")
    assert log.returncode == 0
    listing = svc.cli("anon", "list")
    assert "sub-001" in listing.stdout and "SECRET-ID-42" not in listing.stdout
    revealed = svc.cli("anon", "list", "--reveal")
    assert "SECRET-ID-42" in revealed.stdout
    export = tmp_path / "export.json"
    done = svc.cli("anon", "export", str(export))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o600
    assert json.loads(export.read_text())["subjects"][0]["patient_id"] == "SECRET-ID-42"
    again = svc.cli("anon", "export", str(export))  # never overwritten: bad input, 2
    assert again.returncode == 2 and "already exists" in again.stderr
    assert svc.stop() == 0
    stderr = svc.stderr()
    assert "DEBUG" in stderr and "pynetdicom" in stderr  # the debug output was there
    for secret in ("SECRET-ID-42", "HIDDEN", "PERSON", "Hospital Of Secrets"):
        assert secret not in stderr, secret
        assert secret not in log.stdout, secret
    for shard in (svc.data_dir / "log").glob("*.json"):
        assert b"SECRET-ID-42" not in shard.read_bytes()
    assert "revealed" in stderr  # the reveal itself is logged, without identities


def test_debug_dataset_dumps_are_masked_when_receiving_without_anonymizing(engine):
    import logging
    seen = []

    class Grab(logging.Handler):
        def emit(self, record):
            seen.append(self.format(record))
    from dicomtui.service.privacy.phi import PHI_FILTER
    grab = Grab()
    grab.addFilter(PHI_FILTER)
    logger = logging.getLogger("pynetdicom")
    old = logger.level
    logger.addHandler(grab)
    logger.setLevel(logging.DEBUG)
    try:
        ds = _patient("PLAIN-77", "VISIBLE^VERA")
        assert send(engine.port, [ds])[0].Status == 0
        from pynetdicom.dsutils import pretty_dataset
        # pynetdicom dumps identifiers like this (C-FIND); at WARNING the console's event
        # stream gets it too
        logging.getLogger("pynetdicom.dsutils").warning("\n".join(pretty_dataset(ds)))
    finally:
        logger.removeHandler(grab)
        logger.setLevel(old)
    text = "\n".join(seen)
    assert "PatientName" in text
    assert "PLAIN-77" not in text and "VISIBLE" not in text
    console = "\n".join(e.message for e in engine.ring.since(0).events)
    assert "PatientName" in console
    assert "PLAIN-77" not in console and "VISIBLE" not in console



def test_restore_a_study_zip_as_uploaded(make_engine, tmp_path):
    engine = make_engine(anonymize="true", zip_studies="true", study_timeout="1")
    originals = [_patient("ZIP-1", "ZIP^ZOE", study) for study in [generate_uid()] * 2]
    send(engine.port, originals)
    deadline = time.monotonic() + 20
    while not list(engine.shipping.zip_dir().glob("*.zip")):
        assert time.monotonic() < deadline, "the study was not zipped"
        time.sleep(0.1)
    (study_zip,) = engine.shipping.zip_dir().glob("*.zip")
    engine.writer.flush()
    out = tmp_path / "restored.zip"
    report = restore_path(study_zip, out, engine.privacy.anonymizer().map)
    assert report.restored == 2
    import zipfile
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        back = [dcmread(BytesIO(archive.read(n))) for n in names]
    assert {b.PatientID for b in back} == {"ZIP-1"}
    assert sorted(b.SOPInstanceUID for b in back) == sorted(o.SOPInstanceUID
                                                           for o in originals)
