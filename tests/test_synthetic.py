"""Synthetic studies: realistic structure, reproducible, valid files of the right size."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice

import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dicomtui.dicom.synthetic import (
    MANUFACTURER,
    small_instances,
    synthetic_instances,
    write_instances,
)

STRUCTURE_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                  "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
                  "SeriesNumber", "SeriesDescription", "InstanceNumber",
                  "ImagePositionPatient", "PixelRepresentation", "WindowCenter")


def _by_series(datasets):
    series = defaultdict(list)
    for ds in datasets:
        series[ds.SeriesInstanceUID].append(ds)
    return series


def _structure(ds):
    return tuple(str(ds.get(key)) for key in STRUCTURE_KEYS) + (ds.PixelData,)


@pytest.fixture(scope="module")
def small():
    return list(small_instances(1000, seed=7))


def test_count_is_exact():
    assert len(list(small_instances(3, seed=1))) == 3
    assert len(list(small_instances(1000, seed=1))) == 1000
    assert list(small_instances(0)) == []


def test_instances_are_ct_with_file_meta(small):
    for ds in small[:50]:
        assert ds.SOPClassUID == CTImageStorage and ds.Modality == "CT"
        assert ds.Manufacturer == MANUFACTURER
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
        assert len(ds.PixelData) == ds.Rows * ds.Columns * 2


def test_uids_are_fresh_and_valid(small):
    sop_uids = {ds.SOPInstanceUID for ds in small}
    assert len(sop_uids) == len(small)
    assert all(len(uid) <= 64 and set(uid) <= set("0123456789.") for uid in sop_uids)


def test_series_share_study_and_patient_and_number_instances(small):
    series = _by_series(small)
    assert len(series) >= 3
    for members in series.values():
        assert len({ds.StudyInstanceUID for ds in members}) == 1
        assert len({ds.PatientID for ds in members}) == 1
        assert [ds.InstanceNumber for ds in members] == list(range(1, len(members) + 1))


def test_studies_have_one_to_four_series_from_a_few_patients(small):
    studies = defaultdict(set)
    for ds in small:
        studies[(ds.PatientID, ds.StudyInstanceUID)].add(ds.SeriesInstanceUID)
    assert all(1 <= len(series) <= 4 for series in studies.values())
    patients = {patient for patient, _ in studies}
    assert len(studies) >= 2 and 1 <= len(patients) <= 5


def test_axial_slices_step_by_thickness(small):
    axial = [m for m in _by_series(small).values() if "AXIAL" in m[0].ImageType]
    assert any(len(m) >= 40 for m in axial)
    for members in axial:
        step = float(members[0].SliceThickness)
        z = [float(ds.ImagePositionPatient[2]) for ds in members]
        assert all(a - b == pytest.approx(step) for a, b in zip(z, z[1:]))
        assert [float(ds.SliceLocation) for ds in members] == pytest.approx(z)


def test_same_seed_same_structure_fresh_uids():
    first = list(small_instances(400, seed=11))
    second = list(small_instances(400, seed=11))
    assert [_structure(ds) for ds in first] == [_structure(ds) for ds in second]
    assert not {ds.SOPInstanceUID for ds in first} & {ds.SOPInstanceUID for ds in second}


def test_different_seed_differs():
    first = [_structure(ds) for ds in small_instances(20, seed=1)]
    assert first != [_structure(ds) for ds in small_instances(20, seed=2)]


def test_both_pixel_representations_occur():
    found = {ds.PixelRepresentation for seed in range(8)
             for ds in islice(small_instances(400, seed=seed), 0, None, 50)}
    assert found == {0, 1}


def test_pixel_values_fit_twelve_bits():
    for seed in range(4):
        ds = next(small_instances(1, seed=seed))
        signed, data = bool(ds.PixelRepresentation), ds.PixelData
        words = [int.from_bytes(data[i:i + 2], "little", signed=signed)
                 for i in range(0, len(data), 2)]
        low, high = (-2048, 2047) if ds.PixelRepresentation else (0, 4095)
        assert low <= min(words) and max(words) <= high
        assert max(words) - min(words) > 500  # an image, not a blank


def test_files_round_trip_and_have_the_promised_sizes(tmp_path):
    small = list(small_instances(5, seed=3))
    large = list(synthetic_instances(2, seed=3))
    paths = write_instances(small + large, tmp_path / "out")
    assert [p.name for p in paths] == [f"{ds.SOPInstanceUID}.dcm" for ds in small + large]
    sizes = [p.stat().st_size for p in paths]
    assert all(36_000 < size < 46_000 for size in sizes[:5])
    assert all(515_000 < size < 540_000 for size in sizes[5:])
    for path, sent in zip(paths, small + large):
        read = pydicom.dcmread(path)
        assert read.SOPInstanceUID == sent.SOPInstanceUID
        assert read.PatientName == sent.PatientName
        assert read.PixelData == sent.PixelData
        assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_does_not_import_textual():
    import subprocess
    import sys

    code = "import sys, dicomtui.dicom.synthetic; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
