"""Read just the identifying elements of a received dataset, without decoding the rest.

The receive path needs a handful of values (UIDs for the path, patient and study keys
for the log and the index); decoding stops before group 0x0028 so pixel data is never
touched. The whole dataset's structure is checked first (dicom/structure.py: element
headers only), so what is acknowledged can be read back, and every value is bounded in
length, so no sender can make the index or the log grow by megabytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO

from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID

from dicomtui.dicom.rawscan import scan
from dicomtui.dicom.structure import structure_problem

_LAST_TAG = 0x00200013  # InstanceNumber: everything we need sits at or before it
_WANTED = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "InstanceNumber",
    "Modality",
    "StudyDate",
    "AccessionNumber",
    "PatientBirthDate",
    "PatientSex",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "ReferringPhysicianName",
)


_TAGS = {int(Tag(name)): name for name in _WANTED}
MAX_TEXT = 64  # characters kept of a value (see _bounded)
_LIMITS = {
    "PatientName": 3 * 64 + 2,  # three component groups
    "ReferringPhysicianName": 3 * 64 + 2,
    "SOPClassUID": 65,
    "SOPInstanceUID": 65,
    "StudyInstanceUID": 65,
    "SeriesInstanceUID": 65,
}


class UnreadableDataset(ValueError):
    """The received bytes are not a dataset we can parse in this transfer syntax.

    `comment` says why in at most 64 characters without any value of the dataset (it
    may go to the peer); the message may say more (it goes to our log)."""

    def __init__(self, message: str, comment: str = "dataset cannot be parsed") -> None:
        super().__init__(message)
        self.comment = comment


@dataclass(frozen=True)
class Identity:
    """The values of one instance that decide where it goes and how it is logged."""

    sop_class_uid: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    instance_number: int | None = None
    modality: str = ""
    study_date: str = ""
    accession: str = ""
    # for the archive index (C-FIND keys), read in the same walk
    birth_date: str = ""
    sex: str = ""
    study_time: str = ""
    study_id: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    referring: str = ""


def _stop(tag, vr, length) -> bool:
    return tag > _LAST_TAG


def identify(encoded: bytes | BinaryIO, transfer_syntax: str) -> Identity:
    """Parse the identifying elements of `encoded` (a dataset without file meta)."""
    syntax = UID(transfer_syntax)
    stream = encoded if hasattr(encoded, "read") else BytesIO(encoded)
    if syntax.is_deflated:
        stream = BytesIO(_inflate(_all_bytes(stream)))
    _check_structure(stream, syntax)
    values = _fast(stream, syntax)
    if values is None:
        values = _with_pydicom(stream, syntax)
    return _identity(values)


def _check_structure(stream, syntax: UID) -> None:
    """Every element well formed, or UnreadableDataset: what is stored is readable."""
    with stream.getbuffer() as view:
        problem = structure_problem(view, syntax.is_implicit_VR, syntax.is_little_endian)
    if problem:
        raise UnreadableDataset(f"dataset cannot be parsed: {problem}", problem)


def identity_of(ds) -> Identity:
    """The same values from a decoded pydicom Dataset (anonymized instances, reindex)."""
    return _identity({name: _text(ds.get(name)) for name in _WANTED})


def _identity(raw: dict[str, str]) -> Identity:
    values = {name: _bounded(name, value) for name, value in raw.items()}
    return Identity(
        sop_class_uid=values["SOPClassUID"],
        sop_uid=values["SOPInstanceUID"],
        study_uid=values["StudyInstanceUID"],
        series_uid=values["SeriesInstanceUID"],
        patient_id=values["PatientID"],
        patient_name=values["PatientName"],
        instance_number=_as_int(values["InstanceNumber"]),
        modality=values["Modality"],
        study_date=values["StudyDate"],
        accession=values["AccessionNumber"],
        birth_date=values["PatientBirthDate"],
        sex=values["PatientSex"],
        study_time=values["StudyTime"],
        study_id=values["StudyID"],
        study_description=values["StudyDescription"],
        series_description=values["SeriesDescription"],
        series_number=_as_int(values["SeriesNumber"]),
        referring=values["ReferringPhysicianName"],
    )


def _bounded(name: str, value: str) -> str:
    """`value` cut to a length the index, the log and the paths can afford.

    PS3.5 allows 64 characters for most of these (16 for some; a PN 64 per component
    group): real senders overrun the short ones a little, hostile ones by megabytes.
    UIDs are cut above 64 so an overlong one stays overlong and is refused."""
    limit = _LIMITS.get(name, MAX_TEXT)
    return value if len(value) <= limit else value[:limit]


def _fast(stream, syntax: UID) -> dict[str, str] | None:
    with stream.getbuffer() as view:
        found = scan(view, syntax.is_implicit_VR, syntax.is_little_endian, _TAGS, _LAST_TAG)
    if found is None:
        return None
    return {name: found.get(name, "") for name in _WANTED}


def _with_pydicom(stream, syntax: UID) -> dict[str, str]:
    stream.seek(0)
    try:
        ds = read_dataset(
            stream, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_stop
        )
        return {name: _text(ds.get(name)) for name in _WANTED}
    except Exception as exc:  # pydicom raises many kinds on garbage input
        raise UnreadableDataset(f"dataset cannot be parsed: {exc}") from exc


def _all_bytes(stream) -> bytes:
    stream.seek(0)
    return stream.read()


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise UnreadableDataset(f"deflated dataset cannot be inflated: {exc}") from exc


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().rstrip("\x00")


def _as_int(text: str) -> int | None:
    try:
        return int(text.split("\\")[0])
    except ValueError:
        try:  # IS values such as "1.0" or " 3" from older modalities
            return int(float(text.split("\\")[0]))
        except (ValueError, OverflowError):
            return None
