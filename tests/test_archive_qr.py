"""C-FIND, C-MOVE and C-GET against a real engine, with pynetdicom peers."""

from __future__ import annotations

import time
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from archive_helpers import (FIND, StoreSCP, ask, find, get, move, send_all, study,
                             write_small_studies)
from conftest import free_port
from helpers import eventually, parked


@pytest.fixture
def archive(make_engine):
    """An engine holding five studies of four patients."""
    engine = make_engine()
    studies = {
        "doe1": study("DOE^JOHN", "P1", "20240110", "CT", series=2, per_series=2,
                      accession="ACC1"),
        "doe2": study("DOE^JOHN", "P1", "20240215", "MR", accession="ACC2", time="231500"),
        "jane": study("DOE^JANE", "P2", "20231231", "CT", accession="ACC3"),
        "roe": study("ROE^RICHARD", "P3", "20240120", "US", accession="ACC4"),
        "muller": study("Müller^Jörg", "P4", "20240301", "CT", accession="ACC5"),
    }
    for datasets in studies.values():
        send_all(engine.port, datasets)
    engine.studies_sent = studies
    return engine


def uid(engine, key: str) -> str:
    return str(engine.studies_sent[key][0].StudyInstanceUID)


def uids(matches) -> set[str]:
    return {str(ds.StudyInstanceUID) for ds in matches}


@pytest.mark.parametrize("keys, expected", [
    ({"PatientName": "DOE*"}, {"doe1", "doe2", "jane"}),
    ({"PatientName": "doe^j*"}, {"doe1", "doe2", "jane"}),  # PN: any case
    ({"PatientName": "DOE^JA?E"}, {"jane"}),
    ({"PatientName": "DOE^JOHN"}, {"doe1", "doe2"}),
    ({"PatientName": "Müller*"}, {"muller"}),
    ({"PatientID": "P3"}, {"roe"}),
    ({"StudyDate": "20240101-20240131"}, {"doe1", "roe"}),
    ({"StudyDate": "-20231231"}, {"jane"}),
    ({"StudyDate": "20240215-"}, {"doe2", "muller"}),
    ({"StudyDate": "20240120"}, {"roe"}),
    ({"StudyTime": "2300-2359"}, {"doe2"}),
    ({"AccessionNumber": "ACC?"}, {"doe1", "doe2", "jane", "roe", "muller"}),
    ({"ModalitiesInStudy": "MR"}, {"doe2"}),
    ({"ModalitiesInStudy": "US\\MR"}, {"doe2", "roe"}),
    ({"PatientName": "*", "StudyDate": ""}, {"doe1", "doe2", "jane", "roe", "muller"}),
    ({"PatientName": "NOBODY*"}, set()),
])
def test_study_level_matching(archive, keys, expected):
    status, matches = find(archive.port, QueryRetrieveLevel="STUDY",
                           StudyInstanceUID="", **keys)
    assert status == 0x0000
    assert uids(matches) == {uid(archive, k) for k in expected}


def test_uid_list_matching_and_only_requested_keys(archive):
    wanted = f"{uid(archive, 'jane')}\\{uid(archive, 'roe')}"
    status, matches = find(archive.port, QueryRetrieveLevel="STUDY",
                           StudyInstanceUID=wanted, PatientName="",
                           NumberOfStudyRelatedInstances="", ModalitiesInStudy="")
    assert status == 0x0000 and uids(matches) == {uid(archive, "jane"), uid(archive, "roe")}
    by_uid = {str(m.StudyInstanceUID): m for m in matches}
    roe = by_uid[uid(archive, "roe")]
    assert str(roe.PatientName) == "ROE^RICHARD"
    assert int(roe.NumberOfStudyRelatedInstances) == 2 and roe.ModalitiesInStudy == "US"
    keywords = {e.keyword for e in roe}
    assert keywords == {"SpecificCharacterSet", "QueryRetrieveLevel", "StudyInstanceUID",
                        "PatientName", "NumberOfStudyRelatedInstances",
                        "ModalitiesInStudy"}
    assert "StudyDate" not in roe and "PatientID" not in roe


def test_unicode_names_come_back_intact(archive):
    status, matches = find(archive.port, QueryRetrieveLevel="STUDY", PatientID="P4",
                           PatientName="")
    assert status == 0 and str(matches[0].PatientName) == "Müller^Jörg"
    assert matches[0].SpecificCharacterSet == "ISO_IR 192"


def test_patient_series_and_image_levels(archive):
    status, patients = find(archive.port, "PATIENT", QueryRetrieveLevel="PATIENT",
                            PatientID="P1", PatientName="",
                            NumberOfPatientRelatedStudies="",
                            NumberOfPatientRelatedInstances="")
    assert status == 0 and len(patients) == 1
    assert int(patients[0].NumberOfPatientRelatedStudies) == 2
    assert int(patients[0].NumberOfPatientRelatedInstances) == 6
    status, series = find(archive.port, QueryRetrieveLevel="SERIES",
                          StudyInstanceUID=uid(archive, "doe1"), SeriesInstanceUID="",
                          SeriesNumber="", Modality="",
                          NumberOfSeriesRelatedInstances="")
    assert status == 0 and sorted(int(s.SeriesNumber) for s in series) == [1, 2]
    assert all(int(s.NumberOfSeriesRelatedInstances) == 2 for s in series)
    first = archive.studies_sent["doe1"][0]
    status, images = find(archive.port, QueryRetrieveLevel="IMAGE",
                          StudyInstanceUID=str(first.StudyInstanceUID),
                          SeriesInstanceUID=str(first.SeriesInstanceUID),
                          SOPInstanceUID="", InstanceNumber="", SOPClassUID="")
    assert status == 0
    assert {str(i.SOPInstanceUID) for i in images} == {
        str(d.SOPInstanceUID) for d in archive.studies_sent["doe1"][:2]}
    status, one = find(archive.port, QueryRetrieveLevel="IMAGE",
                       StudyInstanceUID=str(first.StudyInstanceUID),
                       SeriesInstanceUID=str(first.SeriesInstanceUID), InstanceNumber="2",
                       SOPInstanceUID="")
    assert status == 0 and len(one) == 1 and int(one[0].InstanceNumber) == 2


@pytest.mark.parametrize("model, keys", [
    ("STUDY", {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"}),  # no such level
    ("STUDY", {"QueryRetrieveLevel": "BOGUS"}),
    ("STUDY", {"PatientName": "DOE*"}),  # no level at all
    ("STUDY", {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": ""}),  # no study UID
    ("STUDY", {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "1.2.3"}),
    ("STUDY", {"QueryRetrieveLevel": "STUDY", "StudyDate": "2024-01-01-2024-02-01"}),
    ("STUDY", {"QueryRetrieveLevel": "STUDY", "StudyDate": "yesterday"}),
])
def test_bad_identifiers_get_a_failure_status_and_the_service_goes_on(archive, model,
                                                                      keys):
    status, matches = find(archive.port, model, **keys)
    assert status == 0xA900 and matches == []
    assert find(archive.port, QueryRetrieveLevel="STUDY", PatientID="P3")[0] == 0


def test_find_is_logged_without_values(archive):
    find(archive.port, QueryRetrieveLevel="STUDY", PatientName="DOE*", StudyDate="")
    archive.writer.flush()
    records = [e.data for e in archive.ring.since(0).events if e.kind == "transaction"
               and e.data.get("type") == "find"]
    assert records and records[-1]["matches"] == 3
    assert records[-1]["keys"] == "PatientName" and "DOE" not in str(records[-1])


def test_c_cancel_stops_a_long_answer(service, tmp_path):
    """Cancelled after the first match, as a user pressing stop would; the answer must
    end with 0xFE00 long before all 3,000 matches. (pynetdicom drops a C-CANCEL that
    arrives before the C-FIND is being served, so it is sent after the first answer.)
    The receiver is its own process, as in real life: in one process the answering
    thread can hold the GIL until every answer is queued, before this SCU even reads
    the first one."""
    data = tmp_path / "svc"
    write_small_studies(data / "storage" / "bulk", 3000, "CANCEL")
    svc = service(data_dir=data)  # an archive without an index is indexed at start
    deadline = time.monotonic() + 120
    while len(find(svc.port, QueryRetrieveLevel="STUDY", PatientID="CANCEL2999")[1]) != 1:
        assert time.monotonic() < deadline, "the archive was not indexed"
        time.sleep(0.2)
    query = Dataset()
    query.QueryRetrieveLevel, query.PatientName, query.StudyInstanceUID = \
        "STUDY", "CANCEL*", ""
    assoc = ask(svc.port)
    statuses = []
    try:
        cx = assoc._get_valid_context(FIND["STUDY"], "", "scu")
        request = C_FIND()
        request.MessageID, request.AffectedSOPClassUID, request.Priority = \
            7, FIND["STUDY"], 2
        request.Identifier = BytesIO(encode(query, cx.transfer_syntax[0].is_implicit_VR,
                                            cx.transfer_syntax[0].is_little_endian))
        # as pynetdicom's own send_c_* do (but without their race, see helpers.parked):
        # pause the association's reactor, or it may take a response off the queue
        # before get_msg() sees it
        parked(assoc)
        assoc.dimse.send_msg(request, cx.context_id)
        while True:
            _cx, answer = assoc.dimse.get_msg(block=True)
            statuses.append(int(answer.Status))
            if len(statuses) == 1:
                assoc.send_c_cancel(7, cx.context_id)
            if answer.Status not in (0xFF00, 0xFF01):
                break
    finally:
        assoc._reactor_checkpoint.set()
        assoc.release()
    assert statuses[-1] == 0xFE00, statuses
    assert len(statuses) < 3001
    # records reach the log within a second or so; each `log` here is a new process
    eventually(lambda: "cancelled by the requester" in svc.cli("log", "--type",
                                                                "find").stdout,
               what="the cancelled C-FIND logged")


def test_move_to_a_known_destination_sends_everything(archive):
    statuses, dest = move_to_scp(archive, QueryRetrieveLevel="STUDY",
                                 StudyInstanceUID=uid(archive, "doe1"))
    final = statuses[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 4
    assert final.NumberOfFailedSuboperations == 0
    assert {str(d.SOPInstanceUID) for d in dest.received} == {
        str(d.SOPInstanceUID) for d in archive.studies_sent["doe1"]}
    assert [int(s.NumberOfRemainingSuboperations) for s in statuses[:-1]] == [3, 2, 1, 0]
    record = _last(archive, "move")
    assert (record["total"], record["completed"], record["failed"]) == (4, 4, 0)
    assert record["destination"] == "DEST" and record["outcome"] == "ok"


def test_move_by_patient_in_patient_root(archive):
    statuses, dest = move_to_scp(archive, "PATIENT", QueryRetrieveLevel="PATIENT",
                                 PatientID="P1")
    assert statuses[-1].Status == 0 and len(dest.received) == 6


def test_move_to_an_unknown_destination_is_a801(archive):
    statuses = move(archive.port, "NOWHERE", QueryRetrieveLevel="STUDY",
                    StudyInstanceUID=uid(archive, "roe"))
    assert [int(s.Status) for s in statuses] == [0xA801]
    assert _last(archive, "move")["outcome"] == "failed"


def test_move_tells_the_truth_when_the_destination_refuses(archive):
    statuses, dest = move_to_scp(archive, refuse=True, QueryRetrieveLevel="STUDY",
                                 StudyInstanceUID=uid(archive, "roe"))
    final = statuses[-1]
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 2
    assert final.NumberOfCompletedSuboperations == 0
    record = _last(archive, "move")
    assert (record["failed"], record["completed"], record["outcome"]) == (2, 0, "failed")


def test_move_when_a_stored_file_is_gone_counts_it_failed(archive):
    first = archive.studies_sent["roe"][0]
    doc_paths = [i.path for i in archive.archive.index.instances(str(first.StudyInstanceUID))]
    (archive.storage.root / doc_paths[0]).unlink()
    statuses, dest = move_to_scp(archive, QueryRetrieveLevel="STUDY",
                                 StudyInstanceUID=uid(archive, "roe"))
    final = statuses[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == \
        (1, 1)


def test_move_without_the_unique_key_moves_nothing(archive):
    statuses, dest = move_to_scp(archive, QueryRetrieveLevel="STUDY", PatientName="*")
    assert statuses[-1].Status == 0xA900 and dest.received == []


def test_get_sends_over_the_same_association(archive):
    statuses, received = get(archive.port, QueryRetrieveLevel="SERIES",
                             StudyInstanceUID=uid(archive, "doe1"),
                             SeriesInstanceUID=str(
                                 archive.studies_sent["doe1"][0].SeriesInstanceUID))
    assert statuses[-1].Status == 0 and statuses[-1].NumberOfCompletedSuboperations == 2
    assert {str(d.SOPInstanceUID) for d in received} == {
        str(d.SOPInstanceUID) for d in archive.studies_sent["doe1"][:2]}
    assert received[0].PixelData == archive.studies_sent["doe1"][0].PixelData
    record = _last(archive, "get")
    assert (record["total"], record["completed"]) == (2, 2)


def test_get_of_an_unknown_study_is_an_empty_success(archive):
    statuses, received = get(archive.port, QueryRetrieveLevel="STUDY",
                             StudyInstanceUID="1.2.3.4")
    assert statuses[-1].Status == 0 and received == []


def test_a_facility_sees_only_its_own_studies(make_engine):
    engine = make_engine()
    engine.sites.add_facility("North Clinic", port=free_port())
    engine.sites.add_facility("South Clinic", port=free_port())
    north = {f.name: f for f in engine.sites.facility_list()}["North Clinic"]
    south = {f.name: f for f in engine.sites.facility_list()}["South Clinic"]
    send_all(north.port, study("NORTH^ONE", "N1", "20240101"), called=north.ae_title)
    send_all(south.port, study("SOUTH^ONE", "S1", "20240101"), called=south.ae_title)
    ae = AE("Q")
    ae.add_requested_context(FIND["STUDY"])
    query = Dataset()
    query.QueryRetrieveLevel, query.PatientID = "STUDY", ""
    seen = {}
    for name, fac in (("north", north), ("south", south)):
        assoc = ae.associate("127.0.0.1", fac.port, ae_title=fac.ae_title)
        answers = parked(assoc).send_c_find(query, FIND["STUDY"])
        seen[name] = {str(ds.PatientID) for _status, ds in answers if ds is not None}
        assoc.release()
    assert seen == {"north": {"N1"}, "south": {"S1"}}
    assert find(engine.port, QueryRetrieveLevel="STUDY", PatientID="")[1].__len__() == 2


def move_to_scp(archive, *args, refuse: bool = False, **keys):
    """A C-MOVE to a storage SCP started for it as destination DEST: (statuses, SCP)."""
    dest = StoreSCP(free_port(), refuse=refuse)
    try:
        archive.archive.add_destination("DEST", "127.0.0.1", dest.port)
        return move(archive.port, "DEST", *args, **keys), dest
    finally:
        dest.close()


def _last(engine, kind: str) -> dict:
    return eventually(lambda: [e.data for e in engine.ring.since(0).events
                               if e.kind == "transaction" and e.data.get("type") == kind],
                      what=f"a {kind} transaction")[-1]


@pytest.mark.parametrize("max_pdu", [64, 0])
def test_pending_answers_arrive_whole_in_any_pdu_size(archive, max_pdu):
    """Pending C-FIND responses reuse one encoded command set per request; each must
    still reach a peer whole, fragmented to its maximum PDU (64: every answer spans
    several PDUs) and with the identifier of its own match."""
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ""
    query.PatientName, query.PatientID, query.AccessionNumber = "*", "", ""
    query.StudyDescription, query.ModalitiesInStudy = "", ""
    ae = AE(ae_title="SMALLPDU")
    ae.maximum_pdu_size = max_pdu
    ae.add_requested_context(FIND["STUDY"])
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="DICOMTUI")
    assert assoc.is_established
    try:
        for _ in range(2):  # a second request on the association: its own command set
            answers = list(parked(assoc).send_c_find(query, FIND["STUDY"]))
            pending = [ds for status, ds in answers if status.Status == 0xFF00]
            assert [s.Status for s, _ in answers][-1] == 0x0000
            assert {str(ds.AccessionNumber) for ds in pending} == {
                f"ACC{n}" for n in range(1, 6)}
            assert uids(pending) == {uid(archive, k) for k in archive.studies_sent}
    finally:
        assoc.release()
