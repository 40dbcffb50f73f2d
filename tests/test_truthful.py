"""Truthful answers: a dataset we cannot store right is refused (and nothing written),
every failure response carries an Error Comment that says why (at most 64 characters,
no paths, no patient data), and bad Q/R identifiers neither count sub-operations nor
open an association to the move destination."""

from __future__ import annotations

import struct
import time
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt

from archive_helpers import StoreSCP, ask, get, send_all, study
from conftest import free_port
from helpers import encode_dataset, fresh_ct, leftovers, send_encoded, stored_files

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
MB = 1 << 20


def assert_says_why(answer: Dataset, *words: str) -> None:
    """A failure answer with an Error Comment: short, no path, naming the reason."""
    comment = str(answer.get("ErrorComment", ""))
    assert comment, f"status 0x{int(answer.Status):04X} came without an Error Comment"
    assert len(comment) <= 64 and "/" not in comment, comment
    for word in words:
        assert word.lower() in comment.lower(), comment


def encode_implicit(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return fp.getvalue()


def store_records(engine) -> list[dict]:
    engine.writer.flush()
    return engine.txlog.query(types=["store"], limit=100)


# -- C-STORE -------------------------------------------------------------------------------
def with_invalid_vr(ds: Dataset) -> bytes:
    """`ds` (Explicit VR LE) with a private element of VR 'ZZ' among its elements."""
    before, after = Dataset(), Dataset()
    for element in ds:
        (before if element.tag < 0x00090000 else after).add(element)
    bad = struct.pack("<HH2sH", 0x0009, 0x0010, b"ZZ", 4) + b"ABCD"
    return encode_dataset(before) + bad + encode_dataset(after)


def test_an_element_with_an_invalid_vr_is_refused_and_nothing_written(engine):
    ds = fresh_ct()
    answer = send_encoded(engine.port, CT, ds.SOPInstanceUID, with_invalid_vr(ds))
    assert answer.Status == 0xC210
    assert_says_why(answer, "VR")
    assert stored_files(engine.storage.root) == [] and leftovers(engine.storage.root) == []
    (record,) = store_records(engine)
    assert record["outcome"] == "failed" and "ZZ" in record["reason"]


def test_a_sop_class_other_than_the_context_is_a900(engine):
    ds = fresh_ct(SOPClassUID=MR)
    answer = send_encoded(engine.port, CT, ds.SOPInstanceUID, encode_dataset(ds))
    assert answer.Status == 0xA900
    assert_says_why(answer, "SOP Class")
    assert stored_files(engine.storage.root) == []


@pytest.mark.parametrize("missing", ["SOPClassUID", "StudyInstanceUID",
                                     "SeriesInstanceUID"])
def test_a_missing_required_uid_is_refused(engine, missing):
    ds = fresh_ct()
    delattr(ds, missing)
    answer = send_encoded(engine.port, CT, ds.SOPInstanceUID, encode_dataset(ds))
    assert answer.Status == 0xC210
    assert_says_why(answer, missing.replace("UID", "").replace("Instance", "").strip())
    assert stored_files(engine.storage.root) == []


def test_ten_megabyte_values_do_not_reach_the_index(engine):
    ds = fresh_ct(StudyDescription="D" * (10 * MB), PatientName="N" * (10 * MB))
    answer = send_encoded(engine.port, CT, ds.SOPInstanceUID, encode_implicit(ds),
                          syntax=ImplicitVRLittleEndian)
    assert answer.Status == 0x0000
    engine.writer.flush()
    index = engine.data_dir / "index"
    size = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    assert size < 64 * 1024, f"the index holds {size} bytes for one instance"
    (record,) = store_records(engine)
    assert len(str(record)) < 8 * 1024


def test_a_failed_store_answer_never_names_a_path(make_engine, tmp_path):
    engine = make_engine(max_storage_gb="0.000001")  # 1 kB: every store exceeds it
    ds = fresh_ct()
    answer = send_encoded(engine.port, CT, ds.SOPInstanceUID, encode_dataset(ds))
    assert answer.Status == 0xA700
    assert_says_why(answer, "quota")


# -- Q/R -----------------------------------------------------------------------------------
@pytest.fixture
def archive(make_engine):
    engine = make_engine()
    engine.sent = study("DOE^JOHN", "P1", "20240110", "CT", per_series=2)
    send_all(engine.port, engine.sent)
    return engine


class CountingSCP(StoreSCP):
    """A move destination that counts the connections made to it."""

    def __init__(self, port: int, refuse: bool = False) -> None:
        super().__init__(port, refuse=refuse)
        self.connections = 0
        self.server.bind(evt.EVT_CONN_OPEN, self._opened)

    def _opened(self, event) -> None:
        self.connections += 1


def move_answers(engine, destination: str, **keys) -> list[tuple[Dataset, Dataset | None]]:
    query = Dataset()
    for name, value in keys.items():
        setattr(query, name, value)
    assoc = ask(engine.port)
    try:
        from archive_helpers import MOVE
        return list(assoc.send_c_move(query, destination, MOVE["STUDY"]))
    finally:
        assoc.release()


def test_a_find_failure_says_why(archive):
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyDate = "STUDY", "yesterday"
    assoc = ask(archive.port)
    try:
        from archive_helpers import FIND
        (final, _), = list(assoc.send_c_find(query, FIND["STUDY"]))
    finally:
        assoc.release()
    assert final.Status == 0xA900
    assert_says_why(final, "date")


def test_a_move_with_a_bad_identifier_never_reaches_the_destination(archive):
    dest = CountingSCP(free_port())
    try:
        archive.archive.add_destination("DEST", "127.0.0.1", dest.port)
        answers = move_answers(archive, "DEST", QueryRetrieveLevel="STUDY",
                               PatientName="*")
    finally:
        dest.close()
    (final, _), = answers
    assert final.Status == 0xA900
    assert int(final.get("NumberOfFailedSuboperations", 0)) == 0
    assert int(final.get("NumberOfCompletedSuboperations", 0)) == 0
    assert_says_why(final, "StudyInstanceUID")
    assert dest.connections == 0, "an association was opened to the destination"


def test_a_get_with_a_bad_identifier_counts_no_sub_operation(archive):
    statuses, received = get(archive.port, QueryRetrieveLevel="SERIES")
    (final,) = statuses
    assert final.Status == 0xA900 and received == []
    assert int(final.get("NumberOfFailedSuboperations", 0)) == 0
    assert_says_why(final)


def test_an_unknown_destination_says_so(archive):
    (final, _), = move_answers(archive, "NOWHERE", QueryRetrieveLevel="STUDY",
                               StudyInstanceUID=str(archive.sent[0].StudyInstanceUID))
    assert final.Status == 0xA801
    assert_says_why(final, "destination")


def test_a_move_that_fails_entirely_says_why(archive):
    dest = CountingSCP(free_port(), refuse=True)
    try:
        archive.archive.add_destination("DEST", "127.0.0.1", dest.port)
        answers = move_answers(archive, "DEST", QueryRetrieveLevel="STUDY",
                               StudyInstanceUID=str(archive.sent[0].StudyInstanceUID))
    finally:
        dest.close()
    final, identifier = answers[-1]
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 2
    assert_says_why(final)
    failed = set(identifier.FailedSOPInstanceUIDList)
    assert failed == {str(ds.SOPInstanceUID) for ds in archive.sent}


def test_an_unreadable_file_is_listed_by_its_uid(archive):
    gone = archive.sent[0]
    (inst,) = [i for i in archive.archive.index.instances(str(gone.StudyInstanceUID))
               if i.sop_uid == str(gone.SOPInstanceUID)]
    (archive.storage.root / inst.path).unlink()
    dest = CountingSCP(free_port())
    try:
        archive.archive.add_destination("DEST", "127.0.0.1", dest.port)
        answers = move_answers(archive, "DEST", QueryRetrieveLevel="STUDY",
                               StudyInstanceUID=str(gone.StudyInstanceUID))
    finally:
        dest.close()
    final, identifier = answers[-1]
    assert final.Status == 0xB000 and final.NumberOfFailedSuboperations == 1
    uids = identifier.FailedSOPInstanceUIDList
    assert (uids if isinstance(uids, str) else list(uids)) in (
        str(gone.SOPInstanceUID), [str(gone.SOPInstanceUID)])
