"""Storage SOP classes and transfer syntaxes by UID, keyword or name (pydicom's UID
dictionary), and the retired ones peers still send.

Settings name classes and syntaxes the way people read them (CTImageStorage, "JPEG
Baseline (Process 1)", 1.2.840.10008.1.2.4.50); everything below the settings works
with UIDs only.
"""

from __future__ import annotations

from functools import cache

from pydicom._uid_dict import UID_dictionary

# Storage classes pynetdicom 3.0 does not list but Orthanc 1.10 (dcmtk's list) accepts:
# retired ones old modalities and archives still send, and a few newer families.
# Measured by proposing each to Orthanc 1.10.1 (README, "What it receives").
EXTRA_STORAGE_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.1.27",  # Stored Print Storage (retired)
    "1.2.840.10008.5.1.1.29",  # Hardcopy Grayscale Image Storage (retired)
    "1.2.840.10008.5.1.1.30",  # Hardcopy Color Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.5",  # Nuclear Medicine Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.8",  # Standalone Overlay Storage (retired)
    "1.2.840.10008.5.1.4.1.1.9",  # Standalone Curve Storage (retired)
    "1.2.840.10008.5.1.4.1.1.9.1",  # Waveform Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.10",  # Standalone Modality LUT Storage (retired)
    "1.2.840.10008.5.1.4.1.1.11",  # Standalone VOI LUT Storage (retired)
    "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane Image (retired)
    "1.2.840.10008.5.1.4.1.1.77.1",  # VL Image Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.77.2",  # VL Multi-frame Image Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.88.1",  # Text SR Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.88.2",  # Audio SR Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.88.3",  # Detail SR Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.88.4",  # Comprehensive SR Storage - Trial (retired)
    "1.2.840.10008.5.1.4.1.1.129",  # Standalone PET Curve Storage (retired)
    "1.2.840.10008.5.1.4.1.1.501.1",  # DICOS CT Image Storage
    "1.2.840.10008.5.1.4.1.1.501.2.1",  # DICOS Digital X-Ray (For Presentation)
    "1.2.840.10008.5.1.4.1.1.501.2.2",  # DICOS Digital X-Ray (For Processing)
    "1.2.840.10008.5.1.4.1.1.501.3",  # DICOS Threat Detection Report Storage
    "1.2.840.10008.5.1.4.1.1.501.4",  # DICOS 2D AIT Storage
    "1.2.840.10008.5.1.4.1.1.501.5",  # DICOS 3D AIT Storage
    "1.2.840.10008.5.1.4.1.1.501.6",  # DICOS Quadrupole Resonance Storage
    "1.2.840.10008.5.1.4.1.1.601.1",  # Eddy Current Image Storage
    "1.2.840.10008.5.1.4.1.1.601.2",  # Eddy Current Multi-frame Image Storage
    "1.2.840.10008.5.1.4.34.1",  # RT Beams Delivery Instruction Storage - Trial
)

# The retired JPEG processes (PS3.5 A.4.1 before 2006): pynetdicom offers none, Orthanc
# accepts them all; JPEG progressive (4.55) is the one seen from real modalities.
RETIRED_JPEG_SYNTAXES: tuple[str, ...] = tuple(
    f"1.2.840.10008.1.2.4.{n}" for n in (*range(52, 57), *range(58, 67))
)

# Storage classes newer than pydicom 3.0's dictionary (pynetdicom 3.0 accepts them).
NEWER_STORAGE_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.9.100.1": "WaveformPresentationStateStorage",
    "1.2.840.10008.5.1.4.1.1.9.100.2": "WaveformAcquisitionPresentationStateStorage",
    "1.2.840.10008.5.1.4.1.1.66.7": "LabelMapSegmentationStorage",
    "1.2.840.10008.5.1.4.1.1.66.8": "HeightMapSegmentationStorage",
}

ALL = "all"
NONE = "none"
SERVICES = ("echo", "store", "find", "move", "get")


class UnknownName(ValueError):
    """A name that is not a storage SOP class or transfer syntax we know."""


def _normal(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == ".")


@cache
def _lookup(kind: str) -> dict[str, str]:
    """Normalised UID, keyword and name -> UID, for one kind of UID."""
    table: dict[str, str] = {}
    for uid, (name, uid_type, _info, _retired, keyword) in UID_dictionary.items():
        if uid_type != kind or (kind == "SOP Class" and not _is_storage(name)):
            continue
        for key in (uid, keyword, name):
            if key:
                table[_normal(key)] = uid
    if kind == "SOP Class":
        for uid, keyword in NEWER_STORAGE_CLASSES.items():
            table[_normal(uid)] = table[_normal(keyword)] = uid
    return table


def _is_storage(name: str) -> bool:
    return "Storage" in name and not name.startswith(("Storage Commitment", "Media"))


def storage_class_uid(text: str) -> str:
    """The UID of a storage SOP class given by UID, keyword or name (UnknownName)."""
    return _resolve(text, "SOP Class", "a storage SOP class")


def transfer_syntax_uid(text: str) -> str:
    """The UID of a transfer syntax given by UID, keyword or name (UnknownName)."""
    return _resolve(text, "Transfer Syntax", "a transfer syntax")


def _resolve(text: str, kind: str, what: str) -> str:
    uid = _lookup(kind).get(_normal(text))
    if uid is None:
        raise UnknownName(f"{text.strip()!r} is not {what} this receiver knows")
    return uid


def items(text: str) -> list[str]:
    """The entries of a comma-separated list setting (blank ones dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def uid_set(text: str, resolve) -> frozenset[str] | None:
    """The UIDs a list setting names; None for "all" (UnknownName for a bad entry)."""
    if text.strip().lower() in ("", ALL):
        return None
    if text.strip().lower() == NONE:
        return frozenset()
    return frozenset(resolve(item) for item in items(text))


def list_problem(text: str, resolve) -> str | None:
    """Why a list setting cannot be used, naming the first bad entry; None if fine."""
    try:
        uid_set(text, resolve)
    except UnknownName as exc:
        return str(exc)
    return None


def service_set(text: str) -> frozenset[str]:
    """The services a `services` value names ("all", "none" or a list of SERVICES)."""
    word = text.strip().lower()
    if word in ("", ALL):
        return frozenset(SERVICES)
    if word == NONE:
        return frozenset()
    named = [item.lower() for item in items(text)]
    unknown = [item for item in named if item not in SERVICES]
    if unknown:
        raise UnknownName(
            f"{unknown[0]!r} is not a service: use {', '.join(SERVICES)}, all or none"
        )
    return frozenset(named)


def services_problem(text: str) -> str | None:
    try:
        service_set(text)
    except UnknownName as exc:
        return str(exc)
    return None


def name_of(uid: str) -> str:
    """A UID's name for people ("CT Image Storage"), else the UID itself."""
    entry = UID_dictionary.get(uid)
    return entry[0] if entry else NEWER_STORAGE_CLASSES.get(uid, uid)
