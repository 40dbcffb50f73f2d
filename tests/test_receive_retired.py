"""Retired storage classes and the retired JPEG processes are received as Orthanc does
(dicom/uid_names.py lists them; README "What it receives")."""

from __future__ import annotations

import subprocess

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from helpers import fresh_ct, send, stored_files

NM_RETIRED = "1.2.840.10008.5.1.4.1.1.5"
US_RETIRED = "1.2.840.10008.5.1.4.1.1.6"
US_MULTIFRAME_RETIRED = "1.2.840.10008.5.1.4.1.1.3"
JPEG_PROGRESSIVE = "1.2.840.10008.1.2.4.55"


def _as_class(sop_class: str):
    ds = fresh_ct(SOPClassUID=sop_class)
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    return ds


@pytest.mark.parametrize("sop_class", [NM_RETIRED, US_RETIRED, US_MULTIFRAME_RETIRED])
def test_retired_storage_classes_are_stored(engine, sop_class):
    ds = _as_class(sop_class)
    (reply,) = send(engine.port, [ds])
    assert reply.Status == 0x0000
    (path,) = stored_files(engine.storage.root)
    back = dcmread(path)
    assert back.SOPClassUID == sop_class and back.SOPInstanceUID == ds.SOPInstanceUID


def _jpeg_progressive():
    """pydicom's JPEG test image labelled JPEG Full Progression (the receiver stores the
    encapsulated bytes as they come; it never decodes them)."""
    ds = dcmread(get_testdata_file("JPEG-lossy.dcm"))
    ds.file_meta.TransferSyntaxUID = JPEG_PROGRESSIVE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def test_jpeg_progressive_is_accepted_and_stored_as_sent(engine):
    ds = _jpeg_progressive()
    (reply,) = send(engine.port, [ds])
    assert reply.Status == 0x0000
    (path,) = stored_files(engine.storage.root)
    back = dcmread(path)
    assert back.file_meta.TransferSyntaxUID == JPEG_PROGRESSIVE
    assert back.PixelData == ds.PixelData


def test_storescu_sends_a_retired_nm_file(engine, tmp_path):
    """dcmtk storescu -R proposes the class and syntax of the file (its default list has
    no retired class); we accept them."""
    ds = _as_class(NM_RETIRED)
    path = tmp_path / "nm.dcm"
    ds.save_as(path, enforce_file_format=True)
    done = subprocess.run(
        ["storescu", "-R", "-aec", "DICOMTUI", "127.0.0.1", str(engine.port), str(path)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (stored,) = stored_files(engine.storage.root)
    assert dcmread(stored).SOPClassUID == NM_RETIRED
