"""kill -9 at random moments: nothing acknowledged is lost, nothing is shipped twice.

Four associations send 250 instances each to `dicomtui serve` with anonymization (new
UIDs too), zips and uploads on; the service is killed (seeded moments) while they send,
and again while it completes, zips and uploads; then it runs to the end. For every
instance that was answered 0x0000: its file restores to exactly what was sent, its store
is in the transaction log, C-FIND finds it, and it is in exactly one uploaded zip, whose
study version the API received under one Idempotency-Key.
"""

from __future__ import annotations

import io
import json
import random
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from conftest import cli_env
from dicomtui.dicom.synthetic import synthetic_instances
from helpers import parked
from upload_server import UploadApi

SEED = 20261129
CT = "1.2.840.10008.5.1.4.1.1.2"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root C-FIND
SENDERS, EACH = 4, 250
KILLS_WHILE_SENDING, KILLS_WHILE_SHIPPING = 5, 2


@pytest.fixture
def api():
    server = UploadApi()
    yield server
    server.stop()


class Senders:
    """Four associations sending what is not acknowledged yet; they stop when the
    service dies and go on from there next round."""

    def __init__(self) -> None:
        self.todo = [list(synthetic_instances(EACH, rows=32, columns=32, seed=SEED + n))
                     for n in range(SENDERS)]
        self.acked: dict[str, Dataset] = {}  # original SOP Instance UID -> dataset
        self.sent: dict[str, int] = {}  # original SOP Instance UID -> times sent
        self.lock = threading.Lock()

    def run(self, port: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._send, args=(port, n), daemon=True)
                   for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        return threads

    def _send(self, port: int, n: int) -> None:
        ae = AE(ae_title=f"MODALITY{n}")
        ae.add_requested_context(CT, "1.2.840.10008.1.2.1")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
        try:
            while assoc.is_established and self.todo[n]:
                ds = self.todo[n][0]
                with self.lock:
                    uid = str(ds.SOPInstanceUID)
                    self.sent[uid] = self.sent.get(uid, 0) + 1
                reply = assoc.send_c_store(ds)
                if "Status" not in reply:
                    return  # no answer: the service died; send it again next round
                if reply.Status == 0x0000:
                    with self.lock:
                        self.acked[str(ds.SOPInstanceUID)] = ds
                self.todo[n].pop(0)
        finally:
            if assoc.is_established:
                assoc.release()

    @property
    def done(self) -> bool:
        return not any(self.todo)


def test_kill_9_at_random_moments_loses_nothing_acknowledged(service, api, tmp_path):
    rng = random.Random(SEED)
    env = {**cli_env(tmp_path), "DICOMTUI_API_PASSWORD": api.state.password}
    options = ["--set", "anonymize=true", "--set", "anonymize_uids=true",
               "--set", "zip_studies=true", "--set", "auto_upload=true",
               "--set", f"api_url={api.url}", "--set", f"api_username={api.state.username}",
               "--set", "study_timeout=2", "--set", "retry_delay=0.2"]
    data_dir, senders = tmp_path / "svc", Senders()

    def start():
        return service(*options, data_dir=data_dir, env=env)

    for _ in range(KILLS_WHILE_SENDING):
        svc = start()
        threads = senders.run(svc.port)
        time.sleep(rng.uniform(0.2, 2.5))
        _kill(svc)
        for thread in threads:
            thread.join(30)
    while not senders.done:  # the rest, unkilled
        svc = start()
        for thread in senders.run(svc.port):
            thread.join(120)
        _kill(svc) if not senders.done else svc.stop()
    for _ in range(KILLS_WHILE_SHIPPING):  # while it completes, zips and uploads
        svc = start()
        time.sleep(rng.uniform(0.0, 4.0))
        _kill(svc)
    svc = start()
    assert len(senders.acked) > SENDERS * EACH * 0.9  # most went through at last
    _wait_until_shipped(svc)
    _check(svc, senders, api, tmp_path)
    assert svc.stop() == 0


def _kill(svc) -> None:
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(30)


def _wait_until_shipped(svc, timeout: float = 120) -> None:
    """Every study uploaded (none receiving, queued or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(svc.cli("studies", "--json", "--limit", "1000").stdout)["studies"]
        if rows and all(r["state"] == "uploaded" for r in rows):
            return
        time.sleep(0.5)
    raise TimeoutError(f"studies not all uploaded: {[r['state'] for r in rows]}")


def _check(svc, senders: Senders, api: UploadApi, tmp_path: Path) -> None:
    acked = senders.acked
    storage = svc.data_dir / "storage"
    restored_dir = tmp_path / "restored"
    result = svc.cli("restore", str(storage), str(restored_dir))
    assert result.returncode == 0, result.stderr
    anon_of = {}  # original SOP UID -> the stored (anonymized) file, relative
    for path in restored_dir.rglob("*.dcm"):
        relative = path.relative_to(restored_dir).as_posix()
        restored = dcmread(path)
        original = acked.get(str(restored.SOPInstanceUID))
        if original is not None:
            assert _same(restored, original), relative
            anon_of[str(original.SOPInstanceUID)] = relative
    assert set(anon_of) == set(acked)  # every acknowledged file, restored exactly
    stored_uids = {rel: str(dcmread(storage / rel).SOPInstanceUID)
                   for rel in anon_of.values()}
    _check_log(svc, set(stored_uids.values()))
    _check_find(svc, set(stored_uids.values()))
    resent = {anon_of[u] for u, n in senders.sent.items() if n > 1 and u in anon_of}
    _check_uploads(api, set(anon_of.values()), resent)
    assert not list(storage.rglob(".incoming-*.tmp"))
    assert not list((storage / ".incoming").iterdir())
    status = json.loads(svc.cli("status", "--json").stdout)
    zips = svc.data_dir / "zips"
    on_disk = sum(p.stat().st_size for p in [*storage.rglob("*.dcm"), *zips.glob("*.zip")])
    assert status["storage_used_bytes"] == on_disk  # zips count until they go


def _same(restored: Dataset, original: Dataset) -> bool:
    """Every element of the original, equal (the file meta aside)."""
    return all(restored.get(elem.tag) == elem for elem in original)


def _check_log(svc, stored_uids: set[str]) -> None:
    out = svc.cli("log", "--json", "--type", "store", "--limit", "100000").stdout
    logged = {json.loads(line)["sop_uid"] for line in out.splitlines()
              if json.loads(line)["outcome"] == "ok"}
    assert stored_uids <= logged, len(stored_uids - logged)


def _check_find(svc, stored_uids: set[str]) -> None:
    ae = AE(ae_title="FINDER")
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", svc.port, ae_title="DICOMTUI")
    found = set()
    try:
        for study in _find(assoc, "STUDY", StudyInstanceUID=""):
            for series in _find(assoc, "SERIES", StudyInstanceUID=study.StudyInstanceUID,
                                SeriesInstanceUID=""):
                for image in _find(assoc, "IMAGE", StudyInstanceUID=study.StudyInstanceUID,
                                   SeriesInstanceUID=series.SeriesInstanceUID,
                                   SOPInstanceUID=""):
                    found.add(str(image.SOPInstanceUID))
    finally:
        assoc.release()
    assert stored_uids <= found, len(stored_uids - found)


def _find(assoc, level: str, **keys) -> list[Dataset]:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return [ds for status, ds in parked(assoc).send_c_find(query, FIND)
            if status and status.Status in (0xFF00, 0xFF01) and ds is not None]


def _check_uploads(api: UploadApi, stored: set[str], resent: set[str]) -> None:
    """One upload per study version (by Idempotency-Key: a crash after the API's 2xx
    and before ours was saved sends it again, under the same key); every acknowledged
    file in exactly one of them, unless its sender sent it again (no answer before a
    kill): a copy received after its study completed opens the next version, as any
    late instance does, so it may be in two."""
    by_key: dict[str, set[str]] = {}
    names_by_zip: dict[str, set[str]] = {}
    for upload in api.state.received:
        members = set(zipfile.ZipFile(io.BytesIO(upload.data)).namelist())
        assert by_key.setdefault(upload.key, members) == members  # same zip again
        names_by_zip.setdefault(upload.name, set()).add(upload.key)
    assert all(len(keys) == 1 for keys in names_by_zip.values()), names_by_zip
    seen: dict[str, int] = {}
    for members in by_key.values():
        for name in members:
            seen[name] = seen.get(name, 0) + 1
    assert stored <= set(seen), len(stored - set(seen))
    assert all(seen[name] == 1 for name in stored - resent), sorted(
        (seen[name], name) for name in stored - resent if seen[name] != 1)
