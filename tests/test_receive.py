"""The receive path against a real in-process engine on loopback."""

from __future__ import annotations

import socket
import struct
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE

from helpers import (ct_small, encode_dataset, eventually, fresh_ct, leftovers, parked,
                     send, send_encoded, stored_files)


def records(engine, **flt):
    engine.writer.flush()
    return engine.txlog.query(limit=1000, **flt)


def test_echo_is_answered_and_logged(engine):
    ae = AE(ae_title="ECHOER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert assoc.is_established
    assert parked(assoc).send_c_echo().Status == 0
    assoc.release()
    echo = records(engine, types=["echo"])
    assert echo and echo[0]["calling_ae"] == "ECHOER" and echo[0]["status"] == 0
    # the association is recorded as its thread ends, after the peer has its release
    assoc_rec = eventually(lambda: records(engine, types=["association"]),
                           what="the association logged")
    assert assoc_rec and assoc_rec[0]["outcome"] == "ok" and assoc_rec[0]["reason"] == "released"


def test_store_writes_series_layout_and_logs_everything(engine):
    ds = ct_small()
    (reply,) = send(engine.port, [ds])
    assert reply.Status == 0x0000
    expected = (engine.storage.root / ds.PatientID / ds.StudyInstanceUID /
                ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm")
    assert stored_files(engine.storage.root) == [expected]
    back = dcmread(expected)
    assert back == ds
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.file_meta.SourceApplicationEntityTitle == "TESTSCU"
    (rec,) = records(engine, types=["store"])
    assert rec["sop_uid"] == ds.SOPInstanceUID and rec["study_uid"] == ds.StudyInstanceUID
    assert rec["series_uid"] == ds.SeriesInstanceUID and rec["sop_class"] == ds.SOPClassUID
    assert rec["calling_ae"] == "TESTSCU" and rec["called_ae"] == "DICOMTUI"
    assert rec["peer"].startswith("127.0.0.1:") and rec["bytes"] == expected.stat().st_size
    assert rec["status"] == 0 and rec["outcome"] == "ok" and rec["duration_ms"] >= 0
    assert engine.snapshot("local").counters.received == 1


REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def _sample_files() -> tuple[list[str], list[str]]:
    """pydicom's bundled samples that are storage instances (no downloads: CI is offline):
    (complete ones, ones a receiver must refuse: a required UID missing)."""
    import pydicom.data
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
    classes = {cx.abstract_syntax for cx in AllStoragePresentationContexts}
    complete, refusable = [], []
    local = Path(pydicom.data.__file__).parent / "test_files"
    for path in sorted(str(p) for p in local.rglob("*") if p.is_file()):
        try:
            ds = dcmread(path, stop_before_pixels=True)
            meta = ds.file_meta
            if (meta.MediaStorageSOPClassUID in classes
                    and meta.TransferSyntaxUID in ALL_TRANSFER_SYNTAXES
                    and ds.get("SOPInstanceUID") == meta.MediaStorageSOPInstanceUID):
                dcmread(path).save_as(BytesIO())  # a sample pydicom cannot write, the
                whole = all(ds.get(k) for k in REQUIRED_UIDS)  # sender cannot send
                (complete if whole else refusable).append(path)
        except Exception:
            continue
    return complete, refusable


SAMPLES, REFUSABLE_SAMPLES = _sample_files()


def _drop_group_lengths(ds) -> None:
    for tag in [t for t in ds.keys() if t.element == 0]:
        del ds[tag]


def test_there_are_many_samples_in_many_syntaxes():
    syntaxes = {str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                for p in SAMPLES}
    assert len(SAMPLES) > 40 and len(syntaxes) >= 8


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_pydicom_sample_is_stored_exactly(make_engine, path):
    engine = make_engine(layout="flat")
    original = dcmread(path)
    (reply,) = send(engine.port, [path])
    assert reply.Status == 0x0000, reply
    (stored,) = stored_files(engine.storage.root)
    back = dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    _drop_group_lengths(original)  # pynetdicom's sender drops them (retired, PS3.5 7.2)
    assert back == original  # element for element, pixel data bytes included
    if "PixelData" in original:
        assert back.PixelData == original.PixelData  # compressed data never decoded


def test_there_are_samples_to_refuse():
    assert len(REFUSABLE_SAMPLES) >= 4


@pytest.mark.parametrize("path", REFUSABLE_SAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_a_sample_without_a_required_uid_is_refused(engine, path):
    (reply,) = send(engine.port, [path])
    assert reply.Status == 0xC210, reply
    assert reply.ErrorComment and len(reply.ErrorComment) <= 64
    assert stored_files(engine.storage.root) == [] and leftovers(engine.storage.root) == []


@pytest.mark.parametrize("field,value", [
    ("StudyInstanceUID", "../../../etc"), ("SeriesInstanceUID", "1.2/3"),
    ("StudyInstanceUID", "1.2\\3"), ("SeriesInstanceUID", "1.2\x003"),
    ("StudyInstanceUID", "1." * 150 + "1")])
def test_hostile_uids_are_refused_and_nothing_is_written(engine, tmp_path, field, value):
    ds = fresh_ct()
    setattr(ds, field, value)
    (reply,) = send(engine.port, [ds])
    assert reply.Status == 0xC210
    assert field in str(reply.ErrorComment)
    assert stored_files(tmp_path) == [] and leftovers(engine.storage.root) == []
    (rec,) = records(engine, types=["store"])
    assert rec["outcome"] == "failed" and field in rec["reason"]


@pytest.mark.parametrize("patient_id", ["../../../../tmp/evil", "/etc/passwd", "a\\..\\b",
                                        "nul\x00byte", "P" * 300, ".."])
def test_hostile_patient_ids_stay_inside_the_storage_root(engine, tmp_path, patient_id):
    ds = fresh_ct(PatientID=patient_id)
    (reply,) = send(engine.port, [ds])
    assert reply.Status == 0x0000
    (stored,) = stored_files(tmp_path)
    root = engine.storage.root
    assert stored.resolve().is_relative_to(root)
    folder = stored.relative_to(root).parts[0]
    assert "/" not in folder and ".." != folder and len(folder) <= 64
    assert dcmread(stored).PatientID == ds.PatientID  # the data itself is untouched


def test_missing_sop_instance_uid_is_refused(engine):
    ds = fresh_ct()
    claimed = ds.SOPInstanceUID
    del ds.SOPInstanceUID
    reply = send_encoded(engine.port, ds.SOPClassUID, claimed, encode_dataset(ds))
    assert reply.Status == 0xC210 and "SOPInstanceUID" in str(reply.ErrorComment)
    assert stored_files(engine.storage.root) == []
    (rec,) = records(engine, types=["store"])
    assert rec["outcome"] == "failed" and "SOPInstanceUID is missing" in rec["reason"]


def test_garbage_dataset_is_refused_not_crashed(engine):
    reply = send_encoded(engine.port, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4",
                         b"\x08\x00\x18\x00UI\xff\xff" + b"\x00" * 7)
    assert reply.Status in (0xC210, 0xC211) or reply.Status == 0xC210
    assert stored_files(engine.storage.root) == []
    (ok,) = send(engine.port, [fresh_ct()])
    assert ok.Status == 0


def test_quota_exceeded_gets_a700_and_nothing_is_written(make_engine):
    engine = make_engine(max_storage_gb="0.00001")  # 10 kB < one 40 kB CT
    (reply,) = send(engine.port, [fresh_ct()])
    assert reply.Status == 0xA700
    assert stored_files(engine.storage.root) == [] and leftovers(engine.storage.root) == []
    (rec,) = records(engine, types=["store"])
    assert rec["status"] == 0xA700 and "quota exceeded" in rec["reason"]


def test_quota_admits_what_fits(make_engine):
    engine = make_engine(max_storage_gb="0.0001")  # 100 kB: two 40 kB CTs fit, not three
    replies = send(engine.port, [fresh_ct() for _ in range(3)])
    assert [r.Status for r in replies] == [0, 0, 0xA700]
    assert len(stored_files(engine.storage.root)) == 2


@pytest.mark.parametrize("policy,status,kept_name", [
    ("replace", 0x0000, "SECOND"), ("keep", 0x0000, "FIRST"), ("reject", 0xC211, "FIRST")])
def test_duplicate_policy(make_engine, policy, status, kept_name):
    engine = make_engine(duplicate_policy=policy)
    first = fresh_ct(PatientName="FIRST")
    second = fresh_ct(PatientName="SECOND", SOPInstanceUID=first.SOPInstanceUID,
                      SeriesInstanceUID=first.SeriesInstanceUID,
                      StudyInstanceUID=first.StudyInstanceUID)
    replies = send(engine.port, [first, second])
    assert [r.Status for r in replies] == [0x0000, status]
    (stored,) = stored_files(engine.storage.root)
    assert str(dcmread(stored).PatientName) == kept_name
    rec = records(engine, types=["store"])[0]
    assert rec["duplicate"] is True


@pytest.mark.parametrize("naming", ["instance-number", "timestamp", "sequential"])
def test_other_namings_never_overwrite_a_different_instance(make_engine, naming):
    engine = make_engine(naming=naming, layout="flat")
    a = fresh_ct(InstanceNumber=1)
    b = fresh_ct(InstanceNumber=1)  # same number, different instance
    again = fresh_ct(InstanceNumber=1, SOPInstanceUID=a.SOPInstanceUID,
                     StudyInstanceUID=a.StudyInstanceUID,
                     SeriesInstanceUID=a.SeriesInstanceUID)
    replies = send(engine.port, [a, b, again])
    assert [r.Status for r in replies] == [0, 0, 0]
    files = stored_files(engine.storage.root)
    assert len(files) == 2  # the re-send replaced a's file, b got its own
    assert {dcmread(f).SOPInstanceUID for f in files} == {a.SOPInstanceUID, b.SOPInstanceUID}


def test_too_many_associations_are_refused_and_logged(make_engine):
    engine = make_engine(max_associations="1")
    ae = AE(ae_title="FIRSTSCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    first = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert first.is_established
    ae2 = AE(ae_title="SECONDSCU")
    ae2.add_requested_context("1.2.840.10008.1.1")
    second = ae2.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert second.is_rejected
    first.release()
    refused = records(engine, outcomes=["refused"])
    assert refused and refused[0]["calling_ae"] == "SECONDSCU"
    assert "too many associations" in refused[0]["reason"]
    assert engine.snapshot("local").counters.refused == 1


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def test_peer_vanishing_mid_transfer_leaves_no_partial_file(engine, tmp_path):
    ds = fresh_ct()
    ae = AE(ae_title="VANISHER")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    # Half a P-DATA-TF: a PDV header promising far more data than we send.
    raw.sendall(struct.pack(">BBI", 0x04, 0, 100_000) + b"\x00" * 500)
    raw.shutdown(socket.SHUT_RDWR)
    raw.close()
    # recorded once the association has ended (after it leaves the active list)
    rec = eventually(lambda: records(engine, types=["association"]),
                     what="the association logged")
    assert not engine.snapshot("local").associations
    assert stored_files(tmp_path) == [] and leftovers(engine.storage.root) == []
    assert rec and rec[0]["calling_ae"] == "VANISHER" and rec[0]["outcome"] == "failed"
    (ok,) = send(engine.port, [fresh_ct()])  # the receiver carries on
    assert ok.Status == 0


@pytest.mark.parametrize("layout", ["flat", "patient", "study", "date"])
def test_layouts_apply(make_engine, layout):
    engine = make_engine(layout=layout)
    ds = fresh_ct()
    send(engine.port, [ds])
    (stored,) = stored_files(engine.storage.root)
    depth = {"flat": 1, "patient": 2, "study": 2, "date": 4}[layout]
    assert len(stored.relative_to(engine.storage.root).parts) == depth


def test_fsync_off_still_stores(make_engine):
    engine = make_engine(fsync="false")
    (reply,) = send(engine.port, [fresh_ct()])
    assert reply.Status == 0 and len(stored_files(engine.storage.root)) == 1


def test_stored_file_survives_close_and_log_is_persisted(make_engine, tmp_path):
    engine = make_engine(data_dir=tmp_path / "d")
    ds = fresh_ct()
    send(engine.port, [ds])
    engine.close()
    from dicomtui.db.txlog import TransactionLog
    recs = TransactionLog(tmp_path / "d" / "log").query(types=["store"])
    assert [r["sop_uid"] for r in recs] == [ds.SOPInstanceUID]


def test_deflated_dataset_is_stored_as_received(make_engine):
    engine = make_engine(layout="flat")
    path = get_testdata_file("image_dfl.dcm", download=False)
    original = dcmread(path)
    (reply,) = send(engine.port, [path])
    assert reply.Status == 0
    (stored,) = stored_files(engine.storage.root)
    assert dcmread(stored) == original


@pytest.mark.parametrize("offered", [
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"],
    ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"],
    ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"],
    ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2"],
])
def test_the_requestor_gets_its_first_choice_of_transfer_syntax(engine, offered):
    """pynetdicom takes the acceptor's order; a sender that offers JPEG first (or implicit
    first) should get what it asked for, or it may have to convert and fail."""
    from pynetdicom import AE
    ae = AE(ae_title="ORDER")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", offered)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", list(reversed(offered)))
    assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    try:
        assert assoc.is_established
        chosen = {str(cx.abstract_syntax): cx.transfer_syntax[0]
                  for cx in assoc.accepted_contexts}
    finally:
        assoc.release()
    assert chosen == {"1.2.840.10008.5.1.4.1.1.2": offered[0],
                      "1.2.840.10008.5.1.4.1.1.4": offered[-1]}
