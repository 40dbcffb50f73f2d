"""Synthetic CT studies for tests, demos, `dicomtui send --synthetic` and the benchmark.

The studies have a realistic shape (a few patients; per study a scout and axial series
whose positions step by the slice thickness) so storage layouts and study completion see
real structure. Pixels are a noisy body outline cut from a few pre-built rows: no numpy,
about a millisecond per 512x512 image.
"""

from __future__ import annotations

import math
import random
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

MANUFACTURER = "dicomtui synthetic"
SMALL_ROWS, SMALL_COLUMNS = 128, 160
FIELD_OF_VIEW_MM = 350.0
NOISE_ROWS = 32

_FAMILY = (
    "Smith",
    "Garcia",
    "Nguyen",
    "Muller",
    "Rossi",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "Larsen",
    "Dubois",
    "Silva",
    "Novak",
)
_GIVEN = {
    "F": ("Anna", "Maria", "Yuki", "Chioma", "Ingrid", "Claire"),
    "M": ("John", "Luis", "Minh", "Piotr", "Marco", "Lars"),
}
_DOCTORS = ("House^Gregory", "Grey^Meredith", "Kildare^James", "Quinn^Michaela")
_STUDIES = ("CT THORAX", "CT ABDOMEN PELVIS", "CT THORAX ABDOMEN", "CT CHEST LOW DOSE")
# (series description, window centre, window width)
_PROTOCOLS = (
    ("Soft tissue", 40, 400),
    ("Lung", -600, 1500),
    ("Bone", 300, 1500),
    ("Venous phase", 50, 350),
)
_THICKNESSES = (0.625, 1.0, 1.25, 2.5, 3.0, 5.0)
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
_SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
# Hounsfield units of the phantom's materials.
_AIR, _TISSUE, _BONE = -1000, 40, 700


@dataclass(frozen=True)
class Patient:
    name: str
    patient_id: str
    birth_date: str
    sex: str


@dataclass(frozen=True)
class Study:
    patient: Patient
    study_uid: str
    frame_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    referring: str
    description: str
    signed: bool


@dataclass(frozen=True)
class Series:
    study: Study
    series_uid: str
    number: int
    description: str
    scout: bool
    size: int
    thickness: float
    start_z: float
    window: tuple[int, int]


# --- public API -------------------------------------------------------------------------


def synthetic_instances(
    count: int, *, rows: int = 512, columns: int = 512, seed: int | None = None
) -> Iterator[Dataset]:
    """Yield `count` CT instances grouped in studies; same seed, same structure and values.

    UIDs are always fresh, so a re-run never collides with instances already stored.
    """
    rng = random.Random(seed)
    remaining = count
    for series in _all_series(rng):
        if remaining <= 0:
            return
        phantom = _Phantom(rng, rows, columns, series)
        for index in range(min(series.size, remaining)):
            yield _instance(series, index, rows, columns, phantom.image(index))
        remaining -= series.size


def small_instances(count: int, seed: int | None = None) -> Iterator[Dataset]:
    """`synthetic_instances` with 128x160 images: files of about 40 KB."""
    return synthetic_instances(count, rows=SMALL_ROWS, columns=SMALL_COLUMNS, seed=seed)


def write_instances(datasets: Iterable[Dataset], folder: Path) -> list[Path]:
    """Write each dataset as a DICOM file `<folder>/<SOPInstanceUID>.dcm`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


# --- structure --------------------------------------------------------------------------


def _all_series(rng: random.Random) -> Iterator[Series]:
    """Series after series, study after study, cycling over a few patients."""
    patients = [_patient(rng) for _ in range(rng.randint(3, 5))]
    number = 0
    while True:
        study = _study(rng, patients[number % len(patients)])
        number += 1
        yield from _study_series(rng, study)


def _patient(rng: random.Random) -> Patient:
    sex = rng.choice("FM")
    name = f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN[sex])}".upper()
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 65))
    return Patient(name, f"SYN{rng.randrange(10**6):06d}", born.strftime("%Y%m%d"), sex)


def _study(rng: random.Random, patient: Patient) -> Study:
    day = date(2024, 1, 1) + timedelta(days=rng.randrange(700))
    time = f"{rng.randint(7, 19):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
    return Study(
        patient=patient,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        study_date=day.strftime("%Y%m%d"),
        study_time=time,
        accession=f"A{rng.randrange(10**8):08d}",
        study_id=str(rng.randint(1, 9999)),
        referring=rng.choice(_DOCTORS),
        description=rng.choice(_STUDIES),
        signed=rng.random() < 0.5,
    )


def _study_series(rng: random.Random, study: Study) -> list[Series]:
    """1-4 series: usually a 2-3 image scout, then 1-3 axial series of 40-300 slices."""
    series = []
    if rng.random() < 0.8:
        series.append(
            Series(
                study,
                generate_uid(),
                1,
                "Topogram",
                True,
                rng.randint(2, 3),
                0.6,
                0.0,
                (40, 400),
            )
        )
    for _ in range(rng.randint(1, 3)):
        name, centre, width = rng.choice(_PROTOCOLS)
        thickness = rng.choice(_THICKNESSES)
        start_z = round(rng.uniform(-50.0, 200.0), 1)
        series.append(
            Series(
                study,
                generate_uid(),
                len(series) + 1,
                f"{name} {thickness} mm",
                False,
                rng.randint(40, 300),
                thickness,
                start_z,
                (centre, width),
            )
        )
    return series


# --- datasets ---------------------------------------------------------------------------


def _instance(
    series: Series, index: int, rows: int, columns: int, pixels: bytes
) -> Dataset:
    ds = Dataset()
    _add_patient_study(ds, series.study)
    _add_series(ds, series)
    _add_geometry(ds, series, index, columns)
    _add_image(ds, series, rows, columns, pixels)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = index + 1
    ds.file_meta = _file_meta(ds)
    return ds


def _add_patient_study(ds: Dataset, study: Study) -> None:
    patient = study.patient
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = study.description
    ds.FrameOfReferenceUID = study.frame_uid


def _add_series(ds: Dataset, series: Series) -> None:
    ds.Modality = "CT"
    ds.Manufacturer = MANUFACTURER
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if series.scout else "AXIAL"]
    ds.SliceThickness = _ds(series.thickness)


def _add_geometry(ds: Dataset, series: Series, index: int, columns: int) -> None:
    """Axial slices step down by the slice thickness; scouts alternate coronal/lateral."""
    corner = -FIELD_OF_VIEW_MM / 2
    ds.PixelSpacing = [_ds(FIELD_OF_VIEW_MM / columns)] * 2
    if series.scout:
        orientation = _CORONAL if index % 2 == 0 else _SAGITTAL
        ds.ImageOrientationPatient = [_ds(v) for v in orientation]
        ds.ImagePositionPatient = [_ds(corner), _ds(corner), _ds(250.0)]
        return
    z = series.start_z - index * series.thickness
    ds.ImageOrientationPatient = [_ds(v) for v in _AXIAL]
    ds.ImagePositionPatient = [_ds(corner), _ds(corner), _ds(z)]
    ds.SliceLocation = _ds(z)


def _add_image(ds: Dataset, series: Series, rows: int, columns: int, pixels: bytes) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = int(series.study.signed)
    ds.RescaleIntercept = "0" if series.study.signed else "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = (str(v) for v in series.window)
    ds.add_new(0x7FE00010, "OW", pixels)


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _ds(value: float) -> str:
    """A decimal string short enough for DS (16 characters)."""
    return f"{value:.6g}"


# --- pixels -----------------------------------------------------------------------------


class _Phantom:
    """A noisy body ellipse with a bone disk, in stored values for one series.

    A few noise rows are built once; each image is cut from them row by row, shifted by
    the slice index, and the body's size breathes along the series so slices differ.
    """

    def __init__(self, rng: random.Random, rows: int, columns: int, series: Series):
        self.rows, self.columns = rows, columns
        self.scout = series.scout
        self.phase = rng.uniform(0, math.tau)
        offset = 0 if series.study.signed else 1024
        typecode = "h" if series.study.signed else "H"
        self.air = _row_bytes(typecode, [_AIR + offset] * columns)
        self.tissue = [
            _noise_row(rng, typecode, _TISSUE + offset, columns) for _ in range(NOISE_ROWS)
        ]
        self.bone = [
            _noise_row(rng, typecode, _BONE + offset, columns) for _ in range(NOISE_ROWS)
        ]

    def image(self, index: int) -> bytes:
        scale = 0.9 + 0.08 * math.sin(self.phase + index * 0.05)
        half_x = self.columns * (0.30 if self.scout else 0.44) * scale
        half_y = self.rows * (0.46 if self.scout else 0.32) * scale
        radius = min(self.rows, self.columns) * 0.07
        return b"".join(
            piece
            for y in range(self.rows)
            for piece in self._row(y, index, half_x, half_y, radius)
        )

    def _row(
        self, y: int, index: int, half_x: float, half_y: float, radius: float
    ) -> list[bytes]:
        cx, cy = self.columns / 2, self.rows / 2
        x0, x1 = _chord(self.columns, cx, (y - cy) / half_y, half_x)
        if x0 >= x1:
            return [self.air]
        b0, b1 = _chord(self.columns, cx, (y - cy - half_y * 0.6) / radius, radius)
        b0, b1 = max(b0, x0), min(b1, x1)
        tissue = self.tissue[(y + index) % NOISE_ROWS]
        if b0 >= b1:
            return [self.air[: 2 * x0], tissue[2 * x0 : 2 * x1], self.air[2 * x1 :]]
        bone = self.bone[(3 * y + index) % NOISE_ROWS]
        return [
            self.air[: 2 * x0],
            tissue[2 * x0 : 2 * b0],
            bone[2 * b0 : 2 * b1],
            tissue[2 * b1 : 2 * x1],
            self.air[2 * x1 :],
        ]


def _chord(columns: int, centre: float, dy: float, half: float) -> tuple[int, int]:
    """Columns [x0, x1) covered by an ellipse row `dy` (in semi-axes) from its centre."""
    if abs(dy) >= 1:
        return 0, 0
    width = half * math.sqrt(1 - dy * dy)
    return max(0, int(centre - width)), min(columns, int(centre + width))


def _noise_row(rng: random.Random, typecode: str, level: int, columns: int) -> bytes:
    return _row_bytes(typecode, [level + rng.randint(-25, 25) for _ in range(columns)])


def _row_bytes(typecode: str, values: list[int]) -> bytes:
    """16-bit little-endian bytes, whatever the machine's byte order."""
    row = array(typecode, values)
    if sys.byteorder == "big":
        row.byteswap()
    return row.tobytes()
