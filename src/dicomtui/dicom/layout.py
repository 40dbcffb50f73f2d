"""Storage layout presets: where a received instance goes, relative to the storage root.

A layout is a folder template plus a file name rule (README, "Storage"). The
result is always a relative path made only of validated UIDs and sanitized parts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

from dicomtui.dicom.identify import Identity
from dicomtui.dicom.paths import safe_part

FOLDERS = {
    "flat": (),
    "patient": ("{patient_id}",),
    "study": ("{study_uid}",),
    "series": ("{patient_id}", "{study_uid}", "{series_uid}"),
    "date": ("{received:%Y}", "{received:%m}", "{received:%d}"),
}
NAMES = {
    "sop-uid": "{sop_uid}",
    "instance-number": "{instance_number:04d}",
    "timestamp": "{received:%Y%m%dT%H%M%S%f}",
    "sequential": "{sequence:06d}",
}


def folder_for(
    layout: str, ident: Identity, received: datetime, facility: str | None = None
) -> PurePosixPath:
    """The folder (relative to the storage root) an instance belongs in."""
    fields = _fields(ident, received, sequence=0)
    parts = [safe_part(t.format(**fields)) for t in FOLDERS[layout]]
    if facility:
        parts.insert(0, safe_part(facility))
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def file_stem(naming: str, ident: Identity, received: datetime, sequence: int = 0) -> str:
    """The file name without suffix, before any collision suffix is added."""
    fields = _fields(ident, received, sequence)
    return safe_part(NAMES[naming].format(**fields), fallback="instance")


def _fields(ident: Identity, received: datetime, sequence: int) -> dict:
    return {
        "patient_id": safe_part(ident.patient_id),
        "study_uid": ident.study_uid or "UNKNOWN-STUDY",
        "series_uid": ident.series_uid or "UNKNOWN-SERIES",
        "sop_uid": ident.sop_uid,
        "instance_number": max(0, ident.instance_number or 0),
        "received": received,
        "sequence": sequence,
    }
