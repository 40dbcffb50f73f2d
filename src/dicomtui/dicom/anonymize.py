"""De-identify a dataset with the Basic Application Level Confidentiality Profile, and undo it.

`anonymize` changes a pydicom Dataset in place and returns what it needs to put back:
for every top-level attribute it changed, removed or added, the original element as
DICOM JSON (PS3.18 F.2), or None when the attribute was not there before. A sequence
with anything changed inside is kept whole, so `restore` puts back exactly what came
in. Pixel data is never touched; private attributes are removed (and not kept: vendor
blocks can be tens of kilobytes per instance, and the profile removes them).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomtui.dicom.deid_profile import action_for

PATIENT_NAME, PATIENT_ID, ISSUER = 0x00100010, 0x00100020, 0x00100021
IDENTITY_REMOVED, METHOD, METHOD_CODES = 0x00120062, 0x00120063, 0x00120064
METHOD_TEXT = "DICOM PS3.15 E.1 Basic Profile (dicomtui)"
DUMMY_TEXT = "ANON"
_DUMMIES: dict[str, Any] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "OB": b"",
    "OW": b"",
    "OF": b"",
    "OD": b"",
    "OL": b"",
    "OV": b"",
    "UN": b"",
    "AT": None,
}
# CID 7050 codes describing what was done (PS3.16).
_BASIC = ("113100", "Basic Application Confidentiality Profile")
_RETAIN_UIDS = ("113110", "Retain UIDs Option")

Originals = dict[str, Any]  # "GGGGEEEE" -> DICOM JSON element, or None (was absent)


class AnonymizeError(ValueError):
    """The dataset holds a value we cannot keep for restoring; nothing was stored."""


def subject_key(ds: Dataset) -> tuple[str, str, str]:
    """Who the instance is about: PatientID plus IssuerOfPatientID (the name only when
    there is no ID at all, so ID-less patients are not merged into one subject)."""
    pid = _text(ds.get(PATIENT_ID))
    issuer = _text(ds.get(ISSUER))
    return pid, issuer, "" if pid else _text(ds.get(PATIENT_NAME))


def anonymize(ds: Dataset, subject: str, uid_secret: str | None = None) -> Originals:
    """Apply the profile to `ds` (in place); PatientName and PatientID become `subject`.

    `uid_secret` None keeps every UID (the Retain UIDs option); otherwise each UID the
    profile marks U is replaced by one derived from the original and the secret, so the
    same original always maps to the same new UID, across instances and restarts.
    """
    cleaner = _Cleaner(uid_secret)
    originals: Originals = {}
    for tag in list(ds.keys()):
        number = int(tag)
        if number in (PATIENT_NAME, PATIENT_ID):
            continue
        if tag.is_private:  # removed, not kept (see the module docstring)
            del ds[tag]
            continue
        if not _may_change(ds, number):
            continue  # left as it came: not even decoded
        elem = ds[tag]
        before = _json(elem)
        if cleaner.element(ds, elem, number):
            originals[_key(number)] = before
    _mark(ds, subject, uid_secret is None, originals)
    return originals


def restore(ds: Dataset, originals: Originals) -> None:
    """Put the original attributes back (in place): the inverse of `anonymize`."""
    present = {k: v for k, v in originals.items() if v is not None}
    back = Dataset.from_json(present) if present else Dataset()
    for key, value in originals.items():
        if value is None and int(key, 16) in ds:
            del ds[int(key, 16)]
    for elem in back:
        ds[elem.tag] = elem


def new_uid(secret: str, original: str) -> str:
    """The replacement for `original`: stable for one secret, unguessable without it
    (a name-based UUID under the 2.25 root, PS3.5 B.2; at most 44 characters)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{secret}:{original}').int}"


def _may_change(ds: Dataset, tag: int) -> bool:
    """Whether the profile may touch this top-level attribute, from its tag and VR alone
    (deciding it must not decode every value: most are kept as they came)."""
    return action_for(tag) is not None or tag & 0xFFFF == 0 or _vr(ds, tag) in ("SQ", "UN")


def _vr(ds: Dataset, tag: int) -> str:
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


class _Cleaner:
    """Applies the profile's actions, recursing into sequence items."""

    def __init__(self, uid_secret: str | None) -> None:
        self.uid_secret = uid_secret

    def element(self, ds: Dataset, elem: DataElement, tag: int) -> bool:
        """Apply the action for one element of `ds`; True if anything changed."""
        if elem.tag.is_private:
            del ds[elem.tag]
            return True
        action = action_for(tag)
        if action == "X" or tag & 0xFFFF == 0:  # group lengths would be wrong after
            del ds[elem.tag]
            return True
        if elem.VR == "SQ":
            if action == "Z":
                changed = len(elem.value) > 0
                elem.value = Sequence()
                return changed
            return self.sequence(elem)
        if action == "Z":
            return self._set(elem, None)
        if action == "D":
            return self._set(elem, self._dummy(elem))
        if action == "U" and self.uid_secret is not None and elem.VR == "UI":
            return self._set(elem, self._uids(elem.value))
        return False

    def sequence(self, elem: DataElement) -> bool:
        changed = False
        for item in elem.value:
            for child in list(item):
                changed |= self.element(item, child, int(child.tag))
        return changed

    def _dummy(self, elem: DataElement) -> Any:
        if elem.VR == "UI":
            return self._uids(elem.value) if self.uid_secret is not None else elem.value
        return _DUMMIES.get(elem.VR, DUMMY_TEXT)

    def _uids(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        if isinstance(value, str):
            return new_uid(self.uid_secret or "", value)
        return [new_uid(self.uid_secret or "", str(v)) for v in value]

    @staticmethod
    def _set(elem: DataElement, value: Any) -> bool:
        if elem.is_empty and value in (None, "", b""):
            return False
        if _same(elem.value, value):
            return False
        elem.value = value
        return True


def _same(old: Any, new: Any) -> bool:
    try:
        return bool(old == new) and type(old) is type(new)
    except Exception:  # e.g. numpy arrays
        return False


def _mark(ds: Dataset, subject: str, uids_kept: bool, originals: Originals) -> None:
    """Set the subject code and say how the dataset was de-identified (PS3.15 E.1)."""
    for tag in (PATIENT_NAME, PATIENT_ID, IDENTITY_REMOVED, METHOD, METHOD_CODES):
        if _key(tag) not in originals:
            originals[_key(tag)] = _json(ds[tag]) if tag in ds else None
    ds.PatientName = subject
    ds.PatientID = subject
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD_TEXT
    codes = [_BASIC] + ([_RETAIN_UIDS] if uids_kept else [])
    ds.DeidentificationMethodCodeSequence = Sequence([_code(v, m) for v, m in codes])


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _json(elem: DataElement) -> dict:
    try:
        return elem.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=2**62)
    except Exception as exc:  # a value pydicom cannot express: refuse, never lose it
        raise AnonymizeError(
            f"cannot keep {elem.tag} ({elem.keyword or 'private'}) for restoring: {exc}"
        ) from exc


def _key(tag: int) -> str:
    return f"{tag:08X}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, DataElement):
        value = value.value
    return "" if value is None else str(value).strip()
