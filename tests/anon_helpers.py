"""What a test must look for after anonymization: the identifying strings of a dataset."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomtui.dicom.deid_profile import action_for

_TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "DT", "TM", "AS", "CS", "AE",
             "UR", "IS", "DS"}
MIN_LEN = 4  # shorter strings ("M", "CT", "1") occur by chance in any file


def identifying_strings(ds: Dataset, uids: bool = False) -> set[str]:
    """Every text value the profile removes or replaces (and the UIDs when `uids`)."""
    found: set[str] = set()
    _walk(ds, uids, found, False)
    return {s for s in found if len(s) >= MIN_LEN}


def _walk(ds: Dataset, uids: bool, found: set[str], inside_removed: bool) -> None:
    for elem in ds:
        tag = int(elem.tag)
        action = action_for(tag)
        removed = inside_removed or elem.tag.is_private or action in ("X", "Z", "D") \
            or tag in (0x00100010, 0x00100020)
        if elem.VR == "SQ":
            for item in elem.value or []:
                _walk(item, uids, found, removed)
            continue
        if elem.VR == "UI" and uids and action == "U":
            found.update(_strings(elem.value))
        elif removed and elem.VR in _TEXT_VRS:
            found.update(_strings(elem.value))


def _strings(value) -> set[str]:
    if value is None:
        return set()
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == \
        "MultiValue" else [value]
    out = set()
    for v in values:
        text = str(v).strip().rstrip("\x00")
        if text:
            out.add(text)
    return out


def leaks(data: bytes, strings: set[str], kept: set[str] = frozenset()) -> list[str]:
    """The identifying strings still present in `data`, except those that are part of a
    value the anonymized file legitimately keeps (`kept`: e.g. "TOSHIBA" of a removed
    station name inside the kept Manufacturer "TOSHIBA_MEC", or a date inside a UID
    that the Retain UIDs option keeps)."""
    hits = []
    for text in sorted(strings):
        if any(text in value for value in kept):
            continue
        forms = {text.encode("utf-8"), text.encode("latin-1", "ignore")}
        if any(form and form in data for form in forms):
            hits.append(text)
    return hits


def kept_strings(ds: Dataset) -> set[str]:
    """Every text value left in the anonymized dataset (a removed value that equals one of
    these, e.g. a series date equal to a kept calibration date, is not a leak)."""
    found: set[str] = set()

    def walk(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    walk(item)
            elif elem.VR in _TEXT_VRS | {"UI"}:
                found.update(_strings(elem.value))
    walk(ds)
    return found
