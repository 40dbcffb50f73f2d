"""C-GET and C-MOVE with peers that accept only some transfer syntaxes: stored bytes go
out as stored whenever the peer accepts their syntax (the whole pydicom corpus, byte
for byte), else converted; what cannot be converted fails that one sub-operation with
a reason; Big Endian goes as BE to a BE peer; a PATIENT-level retrieve on the Study
Root model is taken as Orthanc takes it (issue J, items 1-3)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless)
from pynetdicom import AE, build_role, evt
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import CTImageStorage, SecondaryCaptureImageStorage

from archive_helpers import GET, MOVE
from conftest import free_port
from helpers import eventually, parked, stored_files
from dicomtui.service.sending.sender import Peer, SendSummary, scan_files, send

LE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def dataset_bytes(path: Path) -> bytes:
    """A Part 10 file's dataset as encoded, after its file meta."""
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


class Received:
    """What a peer got by C-STORE: SOP Instance UID -> (context syntax, raw dataset)."""

    def __init__(self) -> None:
        self.by_uid: dict[str, tuple[str, bytes]] = {}
        self.originators: set[str] = set()  # Move Originator AE Titles

    def on_store(self, event) -> int:
        self.by_uid[str(event.request.AffectedSOPInstanceUID)] = (
            str(event.context.transfer_syntax), event.request.DataSet.getvalue())
        self.originators.add(str(event.request.MoveOriginatorApplicationEntityTitle or ""))
        return 0x0000


def store_files(engine, paths: list[Path]) -> dict[str, tuple[str, bytes, str]]:
    """Send the files (as stored: our sender); SOP UID -> (syntax, dataset, study UID)
    of each file the receiver kept."""
    summary = SendSummary()
    send(scan_files(paths, summary), Peer("127.0.0.1", engine.port, "DICOMTUI", "LOADER"),
         summary)
    kept = {}
    for path in stored_files(engine.storage.root):
        ds = dcmread(path, stop_before_pixels=True)
        kept[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID),
                                        dataset_bytes(path), str(ds.StudyInstanceUID))
    return kept


def identifier(studies) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = list(studies)
    return query


def c_get(port: int, query: Dataset, pairs, model: str = "STUDY") -> tuple[list, Received]:
    """One C-GET proposing each (class, syntax) in a context of its own, SCP role."""
    got = Received()
    ae = AE(ae_title="GETTER")
    ae.add_requested_context(GET[model])
    roles = {}
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, syntax)
        roles[sop_class] = build_role(sop_class, scp_role=True)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI", ext_neg=list(roles.values()),
                         evt_handlers=[(evt.EVT_C_STORE, got.on_store)])
    assert assoc.is_established
    try:
        answers = [s for s, _ds in parked(assoc).send_c_get(query, GET[model])]
    finally:
        assoc.release()
    return answers, got


class Destination:
    """A pynetdicom storage SCP accepting the given (class, syntaxes) as C-MOVE
    destination DEST of the engine."""

    def __init__(self, engine, accepts: dict[str, list[str]]) -> None:
        self.got = Received()
        ae = AE(ae_title="DEST")
        for sop_class, syntaxes in accepts.items():
            ae.add_supported_context(sop_class, syntaxes)
        self.port = free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self.got.on_store)])
        engine.archive.add_destination("DEST", "127.0.0.1", self.port)

    def close(self) -> None:
        self.server.shutdown()


def c_move(port: int, query: Dataset, model: str = "STUDY") -> list:
    ae = AE(ae_title="MOVER")
    ae.add_requested_context(MOVE[model])
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    assert assoc.is_established
    try:
        return [s for s, _ds in parked(assoc).send_c_move(query, "DEST", MOVE[model])]
    finally:
        assoc.release()


def test_the_whole_corpus_comes_back_byte_for_byte(make_engine):
    engine = make_engine()
    corpus = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
    started = time.monotonic()
    kept = store_files(engine, corpus)
    assert len(kept) > 100  # pydicom's corpus: nearly all of it is accepted
    pairs = sorted({(str(dcmread(p, stop_before_pixels=True).SOPClassUID), syntax)
                    for p in stored_files(engine.storage.root)
                    for syntax in [str(dcmread(p, stop_before_pixels=True)
                                       .file_meta.TransferSyntaxUID)]})
    query = identifier({study for _s, _b, study in kept.values()})

    answers, got = c_get(engine.port, query, pairs)
    assert int(answers[-1].Status) == 0, answers[-1]
    assert set(got.by_uid) == set(kept)
    changed = [uid for uid, (syntax, raw) in got.by_uid.items()
               if (syntax, raw) != kept[uid][:2]]
    assert changed == [], f"{len(changed)} of {len(kept)} changed by C-GET"

    accepts: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        accepts.setdefault(sop_class, []).append(syntax)
    dest = Destination(engine, accepts)
    try:
        answers = c_move(engine.port, query)
    finally:
        dest.close()
    assert int(answers[-1].Status) == 0, answers[-1]
    assert set(dest.got.by_uid) == set(kept)
    changed = [uid for uid, (syntax, raw) in dest.got.by_uid.items()
               if (syntax, raw) != kept[uid][:2]]
    assert changed == [], f"{len(changed)} of {len(kept)} changed by C-MOVE"
    assert time.monotonic() - started < 60


@pytest.fixture
def big_endian(tmp_path):
    """CT_small as Big Endian (dcmtk's dcmconv +tb) and its LE conversion (+te)."""
    if shutil.which("dcmconv") is None:
        pytest.skip("dcmtk is not installed")
    be, le = tmp_path / "be.dcm", tmp_path / "le.dcm"
    subprocess.run(["dcmconv", "+tb", get_testdata_file("CT_small.dcm"), str(be)],
                   check=True)
    subprocess.run(["dcmconv", "+te", str(be), str(le)], check=True)
    return be, le


@pytest.mark.dcmtk
def test_big_endian_goes_as_be_to_a_be_peer_and_converted_to_an_le_one(make_engine,
                                                                        big_endian):
    be, le = big_endian
    engine = make_engine()
    kept = store_files(engine, [be])
    [(uid, (syntax, raw, study))] = kept.items()
    assert syntax == ExplicitVRBigEndian and raw == dataset_bytes(be)
    query = identifier([study])
    # The peer proposes BE and LE in separate contexts and gets BE
    answers, got = c_get(engine.port, query, [(CTImageStorage, ExplicitVRBigEndian),
                                              (CTImageStorage, ExplicitVRLittleEndian)])
    assert int(answers[-1].Status) == 0 and got.by_uid[uid] == (syntax, raw)
    # One that accepts only LE gets what dcmtk converts it to
    answers, got = c_get(engine.port, query, [(CTImageStorage, ExplicitVRLittleEndian)])
    assert int(answers[-1].Status) == 0
    assert got.by_uid[uid] == (ExplicitVRLittleEndian, dataset_bytes(le))
    dest = Destination(engine, {CTImageStorage: [ExplicitVRBigEndian]})
    try:
        assert int(c_move(engine.port, query)[-1].Status) == 0
    finally:
        dest.close()
    assert dest.got.by_uid[uid] == (syntax, raw)


def _jpeg_study(tmp_path) -> tuple[list[Path], str]:
    """A JPEG Baseline SC, a CT and a JPEG whose entropy data is zeroed, one study."""
    study = "1.2.826.0.1.3680043.8.498.77"
    jpeg, ct, broken = (dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")),
                        dcmread(get_testdata_file("CT_small.dcm")),
                        dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")))
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.99"
    frame = bytearray(broken.PixelData)
    frame[200:-20] = bytes(len(frame) - 220)
    broken.PixelData = bytes(frame)
    paths = []
    for n, ds in enumerate((jpeg, ct, broken)):
        ds.StudyInstanceUID = study
        ds.PatientID = "JPEGS"
        paths.append(tmp_path / f"{n}.dcm")
        ds.save_as(paths[-1])
    return paths, study


def test_jpeg_is_decompressed_for_an_le_peer_and_the_undecodable_fails_alone(
        make_engine, tmp_path):
    engine = make_engine()
    paths, study = _jpeg_study(tmp_path)
    kept = store_files(engine, paths)
    assert len(kept) == 3
    dest = Destination(engine, {SecondaryCaptureImageStorage: LE, CTImageStorage: LE})
    try:
        answers = c_move(engine.port, identifier([study]))
    finally:
        dest.close()
    final = answers[-1]
    assert int(final.Status) == 0xB000, final
    assert int(final.NumberOfCompletedSuboperations) == 2
    assert int(final.NumberOfFailedSuboperations) == 1
    assert "cannot decode JPEG Baseline" in str(final.ErrorComment)
    assert set(dest.got.by_uid) == set(kept) - {"1.2.3.4.99"}
    for uid, (syntax, _raw) in dest.got.by_uid.items():
        assert syntax in LE
    assert dest.got.originators == {"MOVER"}  # the requester, not us (PS3.7 9.3.1.1)
    moves = eventually(lambda: [e.data for e in engine.ring.since(0).events
                                if e.kind == "transaction" and e.data.get("type") == "move"],
                       what="the move's record")
    assert (moves[-1]["completed"], moves[-1]["failed"], moves[-1]["converted"]) == (2, 1, 1)
    assert moves[-1]["reason"] == ("1 of 3 sub-operations failed "
                                   "(1 not sent: cannot decode JPEG Baseline)")
    # the requester that takes JPEG gets the stored bytes, the broken one included
    answers, got = c_get(engine.port, identifier([study]),
                         [(SecondaryCaptureImageStorage, JPEGBaseline8Bit),
                          (CTImageStorage, ExplicitVRLittleEndian)])
    assert int(answers[-1].Status) == 0
    assert all(got.by_uid[uid] == kept[uid][:2] for uid in kept)


def test_patient_level_retrieve_on_the_study_root_model_is_taken_as_orthanc_does(
        make_engine, tmp_path):
    engine = make_engine()
    paths, _study = _jpeg_study(tmp_path)
    kept = store_files(engine, paths[:2])
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = "JPEGS"
    dest = Destination(engine, {SecondaryCaptureImageStorage: [JPEGBaseline8Bit],
                                CTImageStorage: LE})
    try:
        answers = c_move(engine.port, query, "STUDY")
    finally:
        dest.close()
    assert int(answers[-1].Status) == 0, answers[-1]
    assert set(dest.got.by_uid) == set(kept)
    answers, got = c_get(engine.port, query, [(SecondaryCaptureImageStorage, ExplicitVRLittleEndian),
                                              (CTImageStorage, ExplicitVRLittleEndian)])
    assert int(answers[-1].Status) == 0 and set(got.by_uid) == set(kept)


def _dcmtk(*tools: str) -> None:
    if any(shutil.which(t) is None for t in tools):
        pytest.skip("dcmtk is not installed")


def _received(folder: Path) -> dict[str, Dataset]:
    found = {}
    for path in folder.iterdir():
        ds = dcmread(path)
        found[str(ds.SOPInstanceUID)] = ds
    return found


@pytest.mark.dcmtk
def test_dcmtk_getscu_gets_jpeg_and_big_endian_decoded(make_engine, tmp_path, big_endian):
    """getscu (3.6.7) proposes Explicit VR Little Endian only for storage."""
    _dcmtk("getscu")
    be, _le = big_endian
    engine = make_engine()
    paths, study = _jpeg_study(tmp_path)
    bes = dcmread(be)
    bes.StudyInstanceUID, bes.PatientID = study, "JPEGS"
    bes.save_as(tmp_path / "be_in_study.dcm")
    kept = store_files(engine, [*paths[:2], tmp_path / "be_in_study.dcm"])
    out = tmp_path / "got"
    out.mkdir()
    done = subprocess.run(["getscu", "-S", "-aet", "GETSCU", "-aec", "DICOMTUI",
                           "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
                           "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(engine.port)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = _received(out)
    assert set(got) == set(kept)
    for uid, ds in got.items():
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    ct = dcmread(get_testdata_file("CT_small.dcm"))
    assert (got[str(bes.SOPInstanceUID)].pixel_array == ct.pixel_array).all()
    jpeg = dcmread(paths[0])
    assert (got[str(jpeg.SOPInstanceUID)].pixel_array == jpeg.pixel_array).all()


@pytest.mark.dcmtk
def test_dcmtk_movescu_destination_accepting_implicit_only(make_engine, tmp_path):
    """movescu receives its own C-MOVE (--port) and accepts implicit VR LE only."""
    _dcmtk("movescu")
    engine = make_engine()
    paths, study = _jpeg_study(tmp_path)
    kept = store_files(engine, paths[:2])
    port = free_port()
    engine.archive.add_destination("MOVESCU", "127.0.0.1", port)
    out = tmp_path / "moved"
    out.mkdir()
    done = subprocess.run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "DICOMTUI",
                           "--port", str(port), "+xi", "-od", str(out),
                           "-k", "QueryRetrieveLevel=STUDY",
                           "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(engine.port)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = _received(out)
    assert set(got) == set(kept)
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in got.values()} == {
        ImplicitVRLittleEndian}


def test_the_corpus_converted_for_an_implicit_only_peer_is_well_formed(make_engine):
    """Every stored instance a requester accepting only Implicit VR Little Endian gets is
    a sound implicit dataset with the stored pixels; what cannot be converted fails
    alone, with a reason in the final response."""
    from dicomtui.dicom.structure import structure_problem
    engine = make_engine()
    corpus = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
    kept = store_files(engine, corpus)
    classes = {str(dcmread(p, stop_before_pixels=True).SOPClassUID)
               for p in stored_files(engine.storage.root)}
    query = identifier({study for _s, _b, study in kept.values()})
    answers, got = c_get(engine.port, query,
                         [(c, ImplicitVRLittleEndian) for c in sorted(classes)])
    final = answers[-1]
    failed = int(final.get("NumberOfFailedSuboperations", 0))
    assert len(got.by_uid) + failed == len(kept)
    assert len(got.by_uid) >= len(kept) - 5, final  # the few that cannot be decoded
    if failed:
        assert int(final.Status) == 0xB000 and "failed: " in str(final.ErrorComment)
    for uid, (syntax, raw) in got.by_uid.items():
        assert syntax == ImplicitVRLittleEndian
        assert structure_problem(raw, True, True) is None, uid


def test_an_operator_send_converts_and_says_why_one_failed(make_engine, tmp_path):
    """The archive's send to a destination goes through the same per-file choice."""
    engine = make_engine()
    paths, study = _jpeg_study(tmp_path)
    kept = store_files(engine, paths)
    dest = Destination(engine, {SecondaryCaptureImageStorage: LE, CTImageStorage: LE})
    try:
        job = engine.archive.send_study(study, "DEST")
        job = engine.archive.jobs.wait(job.id, 60)
    finally:
        dest.close()
    assert job.result["completed"] == 2 and job.result["failed"] == 1, job
    assert set(dest.got.by_uid) == set(kept) - {"1.2.3.4.99"}
    sends = eventually(lambda: [e.data for e in engine.ring.since(0).events
                                if e.kind == "transaction" and e.data.get("type") == "move"
                                and e.data.get("initiated") == "operator"],
                       what="the operator send's record")
    assert sends[-1]["reason"] == "1 failed: cannot decode JPEG Baseline"
    assert sends[-1]["converted"] == 1  # the JPEG that could be decoded
    assert job.message == "sent 2 of 3 to DEST; 1 failed: cannot decode JPEG Baseline"


def test_a_requester_that_takes_only_rle_gets_rle(make_engine, big_endian):
    be, _le = big_endian
    engine = make_engine()
    kept = store_files(engine, [be])
    [(uid, (_syntax, _raw, study))] = kept.items()
    answers, got = c_get(engine.port, identifier([study]), [(CTImageStorage, RLELossless)])
    assert int(answers[-1].Status) == 0, answers[-1]
    syntax, raw = got.by_uid[uid]
    assert syntax == RLELossless
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    ds = read_dataset(DicomBytesIO(raw), False, True)
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    assert (ds.pixel_array == dcmread(get_testdata_file("CT_small.dcm")).pixel_array).all()
