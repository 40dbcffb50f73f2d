"""Interoperability with dcmtk's echoscu and storescu (skipped only when dcmtk is absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from helpers import eventually, fresh_ct, stored_files

pytestmark = [pytest.mark.dcmtk, pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("echoscu") is None,
    reason="dcmtk is not installed (.ci/run installs it)")]


def _records(engine, **flt):
    engine.writer.flush()
    return engine.txlog.query(limit=100, **flt)


def test_echoscu(engine):
    result = subprocess.run(["echoscu", "-aet", "DCMTKSCU", "-aec", "DICOMTUI",
                             "127.0.0.1", str(engine.port)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    (echo,) = eventually(lambda: _records(engine, types=["echo"]), what="the echo logged")
    assert echo["calling_ae"] == "DCMTKSCU" and echo["status"] == 0


def test_storescu_sends_files_that_arrive_intact(engine, tmp_path):
    sent = []
    for i in range(5):
        ds = fresh_ct(InstanceNumber=i + 1)
        path = tmp_path / f"ct{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        sent.append(ds)
    mr = get_testdata_file("MR_small.dcm")
    result = subprocess.run(["storescu", "-aet", "MODALITY", "-aec", "DICOMTUI",
                             "127.0.0.1", str(engine.port), *[str(tmp_path / f"ct{i}.dcm")
                                                              for i in range(5)], mr],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TCP_NODELAY": "1"})
    assert result.returncode == 0, result.stderr
    files = stored_files(engine.storage.root)
    assert len(files) == 6
    by_uid = {str(dcmread(f).SOPInstanceUID): dcmread(f) for f in files}
    for ds in sent:
        assert by_uid[ds.SOPInstanceUID].PixelData == ds.PixelData
    assert dcmread(mr).SOPInstanceUID in by_uid
    stores = _records(engine, types=["store"])
    assert len(stores) == 6 and {r["calling_ae"] for r in stores} == {"MODALITY"}


def _with_required_uids(path: str, tmp_path) -> str:
    """The sample itself, or a copy given the Study/Series UIDs some samples lack (a
    receiver refuses an instance without them); pixel data untouched."""
    ds = dcmread(path)
    if ds.get("StudyInstanceUID") and ds.get("SeriesInstanceUID"):
        return path
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or generate_uid()
    copy = tmp_path / Path(path).name
    ds.save_as(copy, enforce_file_format=True)
    return str(copy)


@pytest.mark.parametrize("name,flag", [
    ("JPEG2000.dcm", "-xw"), ("SC_rgb_rle.dcm", "-xr"), ("JPEG-lossy.dcm", "-xx"), ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
    ("JPEGLSNearLossless_16.dcm", "-xu")])
def test_storescu_compressed_syntax_is_kept(engine, tmp_path, name, flag):
    """+C puts the compressed syntax first in one context with the uncompressed ones:
    we must pick the sender's first choice, so nothing is converted on the way."""
    path = _with_required_uids(get_testdata_file(name, download=False), tmp_path)
    result = subprocess.run(["storescu", flag, "+C", "-R", "-aec", "DICOMTUI", "127.0.0.1",
                             str(engine.port), path], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    (stored,) = stored_files(engine.storage.root)
    original = dcmread(path)
    back = dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert back.PixelData == original.PixelData


def test_storescu_sees_the_quota_refusal(make_engine, tmp_path):
    engine = make_engine(max_storage_gb="0.00001")
    path = tmp_path / "ct.dcm"
    fresh_ct().save_as(path, enforce_file_format=True)
    result = subprocess.run(["storescu", "-v", "-aec", "DICOMTUI", "127.0.0.1",
                             str(engine.port), str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "refused: outofresources" in (result.stdout + result.stderr).lower()
    assert stored_files(engine.storage.root) == []


def test_echoscu_against_the_service_process(service):
    svc = service()
    result = subprocess.run(["echoscu", "-aec", "DICOMTUI", "127.0.0.1", str(svc.port)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
