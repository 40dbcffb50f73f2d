"""Orthanc 1.10 as a peer: it stores to us, queries us at every level and retrieves from
us; we send to it and move to it. One Orthanc per module, on free ports in a temp dir,
stopped by its pid; skipped where Orthanc is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from archive_helpers import move, send_all, study
from conftest import Service, _wait_ready, cli_env, free_port, run_cli
from helpers import eventually, fresh_ct, stored_files

ORTHANC = shutil.which("Orthanc")
pytestmark = pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed")
ORTHANC_AE = "ORTHANC"


class Orthanc:
    """One Orthanc process: its REST API on 127.0.0.1 and its DICOM port."""

    def __init__(self, root: Path, our_port: int) -> None:
        self.dicom_port, self.http_port = free_port(), free_port()
        self.log = root / "orthanc.log"
        config = root / "orthanc.json"
        config.write_text(json.dumps(_config(root, self.dicom_port, self.http_port,
                                             our_port)))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([ORTHANC, str(config)], stdout=out,
                                         stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}",
                                 timeout=60)

    def wait_ready(self, timeout: float = 20) -> None:
        """Until GET /system answers (Orthanc opens its DICOM port before HTTP)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {self.log.read_text()[-2000:]}")
            try:
                if self.http.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Orthanc did not answer: {self.log.read_text()[-2000:]}")

    def post(self, path: str, body) -> httpx.Response:
        answer = self.http.post(path, content=json.dumps(body) if not isinstance(
            body, bytes) else body)
        assert answer.status_code == 200, (answer.status_code, answer.text,
                                           self.log.read_text()[-2000:])
        return answer

    def instance_ids(self, study_uid: str) -> list[str]:
        found = self.post("/tools/find", {"Level": "Instance",
                                          "Query": {"StudyInstanceUID": study_uid}})
        return found.json()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _config(root: Path, dicom_port: int, http_port: int, our_port: int) -> dict:
    return {
        "Name": "dicomtui-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "DicomAet": ORTHANC_AE,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        # Orthanc 1.10 cannot bind to one address: HTTP answers local clients only,
        # and DICOM only our AE title from 127.0.0.1.
        "RemoteAccessAllowed": False,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "AuthenticationEnabled": False,
        "Plugins": [],
        "SaveJobs": False,
        "DicomScuTimeout": 20,
        "DicomModalities": {"dicomtui": ["DICOMTUI", "127.0.0.1", our_port]},
    }


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """`dicomtui serve` on a free port, with Orthanc as a C-MOVE destination."""
    root = tmp_path_factory.mktemp("ours")
    svc = Service(root / "data", free_port(), [], cli_env(root))
    try:
        _wait_ready(svc)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, ours):
    peer = Orthanc(tmp_path_factory.mktemp("orthanc"), ours.port)
    try:
        peer.wait_ready()
        added = ours.cli("dest", "add", ORTHANC_AE, "127.0.0.1", str(peer.dicom_port),
                         "--description", "Orthanc 1.10")  # --data-dir comes first here
        assert added.returncode == 0, added.stderr
        yield peer
    finally:
        peer.stop()


def _ours_has(ours: Service, sop_uids: set[str]) -> bool:
    stored = {dcmread(p, stop_before_pixels=True).SOPInstanceUID
              for p in stored_files(ours.data_dir / "storage")}
    return sop_uids <= stored


def _upload(orthanc: Orthanc, ds) -> str:
    """Put `ds` into Orthanc over REST; its Orthanc instance id."""
    from io import BytesIO
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return orthanc.post("/instances", buffer.getvalue()).json()["ID"]


def test_orthanc_stores_to_us(ours, orthanc):
    ct = fresh_ct(PatientID="ORTH-STORE")
    jpeg = dcmread(get_testdata_file("JPEG-lossy.dcm"))  # JPEG progressive, as Orthanc
    jpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.55"  # also sends it
    jpeg.SOPInstanceUID = generate_uid()
    jpeg.file_meta.MediaStorageSOPInstanceUID = jpeg.SOPInstanceUID
    ids = [_upload(orthanc, ct), _upload(orthanc, jpeg)]
    orthanc.post("/modalities/dicomtui/store", {"Resources": ids, "Synchronous": True})
    assert _ours_has(ours, {ct.SOPInstanceUID, jpeg.SOPInstanceUID})
    (path,) = [p for p in stored_files(ours.data_dir / "storage")
               if dcmread(p, stop_before_pixels=True).SOPInstanceUID == jpeg.SOPInstanceUID]
    assert dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.55"


@pytest.fixture(scope="module")
def archived(ours):
    """A two-series study in our archive (sent by a pynetdicom peer)."""
    instances = study("ORTHANC^QUERY", "ORTH-Q", "20240315", series=2, per_series=2)
    send_all(ours.port, instances)
    return instances


def _query(orthanc: Orthanc, level: str, query: dict) -> list[dict]:
    started = orthanc.post("/modalities/dicomtui/query",
                           {"Level": level, "Query": query}).json()
    answers = orthanc.http.get(f"{started['Path']}/answers", params={"expand": "",
                                                                     "simplify": ""})
    assert answers.status_code == 200, answers.text
    return answers.json()


def test_orthanc_queries_us_at_every_level(ours, orthanc, archived):
    first = archived[0]
    (patient,) = _query(orthanc, "Patient", {"PatientID": "ORTH-Q", "PatientName": ""})
    assert patient["PatientName"] == "ORTHANC^QUERY"
    (found,) = _query(orthanc, "Study", {"PatientID": "ORTH-Q", "StudyDate": "",
                                         "StudyInstanceUID": ""})
    assert found["StudyInstanceUID"] == first.StudyInstanceUID
    series = _query(orthanc, "Series", {"StudyInstanceUID": first.StudyInstanceUID,
                                        "SeriesInstanceUID": "", "Modality": ""})
    assert {s["SeriesInstanceUID"] for s in series} == {
        ds.SeriesInstanceUID for ds in archived}
    instances = _query(orthanc, "Instance", {
        "StudyInstanceUID": first.StudyInstanceUID,
        "SeriesInstanceUID": first.SeriesInstanceUID, "SOPInstanceUID": ""})
    assert {i["SOPInstanceUID"] for i in instances} == {
        ds.SOPInstanceUID for ds in archived
        if ds.SeriesInstanceUID == first.SeriesInstanceUID}


def test_orthanc_retrieves_a_study_from_us(ours, orthanc, archived):
    study_uid = archived[0].StudyInstanceUID
    orthanc.post("/modalities/dicomtui/move", {
        "Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}],
        "TargetAet": ORTHANC_AE, "Synchronous": True})
    assert len(orthanc.instance_ids(study_uid)) == len(archived)


def test_orthanc_retrieves_a_patient_from_us(ours, orthanc):
    instances = study("ORTHANC^PATIENT", "ORTH-P", "20240316")
    send_all(ours.port, instances)
    orthanc.post("/modalities/dicomtui/move", {
        "Level": "Patient", "Resources": [{"PatientID": "ORTH-P"}],
        "TargetAet": ORTHANC_AE, "Synchronous": True})
    assert len(orthanc.instance_ids(instances[0].StudyInstanceUID)) == len(instances)


def test_we_send_to_orthanc(ours, orthanc, tmp_path):
    instances = study("ORTHANC^SENT", "ORTH-S", "20240317", per_series=3)
    folder = tmp_path / "study"
    folder.mkdir()
    for i, ds in enumerate(instances):
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
    done = run_cli("send", "127.0.0.1", str(orthanc.dicom_port), "--aec", ORTHANC_AE,
                   str(folder), "--aet", "DICOMTUI", env=ours.env)
    assert done.returncode == 0, done.stderr
    assert "sent 3" in done.stdout
    assert len(orthanc.instance_ids(instances[0].StudyInstanceUID)) == 3


def test_we_move_a_study_to_orthanc(ours, orthanc):
    """A third party asks us (C-MOVE) to send a study to Orthanc, a destination added
    with `dicomtui dest add`."""
    instances = study("ORTHANC^MOVED", "ORTH-M", "20240318")
    send_all(ours.port, instances)
    statuses = move(ours.port, ORTHANC_AE, QueryRetrieveLevel="STUDY",
                    StudyInstanceUID=instances[0].StudyInstanceUID)
    assert statuses[-1].Status == 0x0000
    assert statuses[-1].NumberOfCompletedSuboperations == len(instances)
    ids = eventually(lambda: len(orthanc.instance_ids(instances[0].StudyInstanceUID))
                     == len(instances) or None, timeout=20, what="Orthanc to have them")
    assert ids
    logged = ours.cli("log", "--type", "move", "--json")
    assert ORTHANC_AE in logged.stdout
