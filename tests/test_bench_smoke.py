"""The benchmark's baseline SCP still receives and stores instances byte-faithfully."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from dicomtui.dicom.synthetic import small_instances
from helpers import parked

BARE_SCP = Path(__file__).resolve().parents[1] / "bench" / "bare_scp.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ready(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    assert readable, "bare_scp.py did not print 'ready'"
    assert proc.stdout.readline().strip() == b"ready"


def send(datasets: list[pydicom.Dataset], port: int) -> list[int]:
    ae = AE(ae_title="SMOKE")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="BARE")
    assert assoc.is_established
    try:
        return [parked(assoc).send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_bare_scp_stores_what_it_receives(tmp_path):
    datasets = list(small_instances(3, seed=5))
    port = free_port()
    command = [sys.executable, str(BARE_SCP), "--port", str(port), "--out", str(tmp_path),
               "--no-fsync"]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as proc:
        try:
            wait_for_ready(proc)
            assert send(datasets, port) == [0x0000] * 3
        finally:
            stop(proc)
    assert proc.returncode == 0
    stored = sorted(tmp_path.glob("*.dcm"))
    assert [p.name for p in stored] == sorted(f"{ds.SOPInstanceUID}.dcm" for ds in datasets)
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for path in stored:
        received = pydicom.dcmread(path)
        assert received == by_uid[received.SOPInstanceUID]
        assert received.PixelData == by_uid[received.SOPInstanceUID].PixelData
