"""Query/Retrieve interoperability with dcmtk: findscu, movescu (to a storescp the test
starts) and getscu, against a real engine."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pydicom import dcmread

from archive_helpers import send_all, study
from conftest import free_port, wait_for_echo

pytestmark = [pytest.mark.dcmtk, pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("findscu", "movescu", "getscu", "storescp")),
    reason="dcmtk Q/R tools not installed")]


@pytest.fixture
def archive(make_engine):
    engine = make_engine()
    engine.sent = {"doe": study("DOE^JOHN", "P1", "20240110", "CT", series=2),
                   "roe": study("ROE^JANE", "P2", "20240301", "MR")}
    for datasets in engine.sent.values():
        send_all(engine.port, datasets)
    return engine


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_findscu_study_level_wildcard(archive, tmp_path):
    done = run("findscu", "-S", "-aec", "DICOMTUI", "-X", "-od", str(tmp_path),
               "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=doe*",
               "-k", "StudyInstanceUID", "-k", "StudyDate=20240101-20240131",
               "-k", "ModalitiesInStudy", "127.0.0.1", str(archive.port))
    assert done.returncode == 0, done.stderr
    answers = [dcmread(p) for p in sorted(tmp_path.glob("rsp*.dcm"))]
    assert len(answers) == 1
    assert str(answers[0].StudyInstanceUID) == str(archive.sent["doe"][0].StudyInstanceUID)
    assert answers[0].ModalitiesInStudy == "CT"


def test_findscu_patient_root_and_a_bad_level(archive, tmp_path):
    done = run("findscu", "-P", "-aec", "DICOMTUI", "-X", "-od", str(tmp_path),
               "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=P2",
               "-k", "PatientName", "127.0.0.1", str(archive.port))
    assert done.returncode == 0
    answers = [dcmread(p) for p in tmp_path.glob("rsp*.dcm")]
    assert [str(a.PatientName) for a in answers] == ["ROE^JANE"]
    bad = run("findscu", "-v", "-S", "-aec", "DICOMTUI", "-k", "QueryRetrieveLevel=PATIENT",
              "-k", "PatientID", "127.0.0.1", str(archive.port))
    said = (bad.stdout + bad.stderr).lower()
    assert "datasetdoesnotmatchsopclass" in said, said  # dcmtk's name for 0xA900


def test_movescu_to_a_storescp(archive, tmp_path):
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    scp = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received),
                            str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_echo(port, ae_title="STORESCP")  # storescp answers C-ECHO once it listens
        archive.archive.add_destination("STORESCP", "127.0.0.1", port)
        uid = str(archive.sent["doe"][0].StudyInstanceUID)
        done = run("movescu", "-S", "-aec", "DICOMTUI", "-aem", "STORESCP",
                   "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                   "127.0.0.1", str(archive.port))
        assert done.returncode == 0, done.stderr
        unknown = run("movescu", "-S", "-aec", "DICOMTUI", "-aem", "NOWHERE",
                      "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                      "127.0.0.1", str(archive.port))
        assert "movedestinationunknown" in unknown.stderr.lower().replace(" ", "")
    finally:
        scp.terminate()
        scp.wait(timeout=10)
    got = {str(dcmread(p).SOPInstanceUID) for p in received.iterdir()}
    assert got == {str(d.SOPInstanceUID) for d in archive.sent["doe"]}


def test_getscu_retrieves_a_series(archive, tmp_path):
    first = archive.sent["doe"][0]
    tmp_path = tmp_path / "got"
    tmp_path.mkdir()
    done = run("getscu", "-S", "-aec", "DICOMTUI", "-od", str(tmp_path),
               "-k", "QueryRetrieveLevel=SERIES",
               "-k", f"StudyInstanceUID={first.StudyInstanceUID}",
               "-k", f"SeriesInstanceUID={first.SeriesInstanceUID}",
               "127.0.0.1", str(archive.port))
    assert done.returncode == 0, done.stderr
    got = [dcmread(p) for p in tmp_path.iterdir()]
    assert {str(d.SOPInstanceUID) for d in got} == {
        str(d.SOPInstanceUID) for d in archive.sent["doe"]
        if d.SeriesInstanceUID == first.SeriesInstanceUID}
    assert got[0].PixelData == first.PixelData
