"""UID validation, path sanitizing and the layout presets."""

from datetime import datetime
from pathlib import PurePosixPath

import pytest

from dicomtui.dicom.aetitle import ae_title_problem
from dicomtui.dicom.identify import Identity
from dicomtui.dicom.layout import file_stem, folder_for
from dicomtui.dicom.paths import InvalidUID, check_uid, safe_part, uid_problem

IDENT = Identity(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_uid="1.2.3.4",
                 study_uid="1.2.3", series_uid="1.2.3.1", patient_id="PAT 01",
                 instance_number=7)
WHEN = datetime(2026, 11, 23, 8, 30, 5, 123456)


@pytest.mark.parametrize("value", ["../1.2", "1.2/3", "1.2\\3", "1.2\x003", "1." * 150,
                                   "", None, "1..2", ".1.2", "1.2.", "1.2a"])
def test_bad_uids_are_refused(value):
    assert uid_problem(value) is not None
    with pytest.raises(InvalidUID):
        check_uid("StudyInstanceUID", value)


def test_good_uid_passes():
    assert check_uid("SOPInstanceUID", "1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"
    assert uid_problem("1" + ".2" * 31) is None  # 63 chars


@pytest.mark.parametrize("value", ["../../etc/passwd", "/abs/path", "a\\b\\..\\c",
                                   "x\x00y", "..", ".", "A" * 300, "con/../..", " ",
                                   "名前"])
def test_safe_part_never_escapes(value):
    part = safe_part(value)
    assert part and "/" not in part and "\\" not in part and "\x00" not in part
    assert part not in (".", "..") and not part.startswith(".")
    assert len(part) <= 64


def test_safe_part_keeps_ordinary_ids_readable():
    assert safe_part("PAT-001") == "PAT-001"
    assert safe_part("Doe^John") == "Doe^John"
    assert safe_part("") == "UNKNOWN"


@pytest.mark.parametrize("layout,expected", [
    ("flat", "."), ("patient", "PAT_01"), ("study", "1.2.3"),
    ("series", "PAT_01/1.2.3/1.2.3.1"), ("date", "2026/11/23")])
def test_layout_presets(layout, expected):
    assert folder_for(layout, IDENT, WHEN) == PurePosixPath(expected)


def test_facility_prefix_is_sanitized():
    assert folder_for("study", IDENT, WHEN, facility="../Main") == PurePosixPath(
        "Main/1.2.3")


@pytest.mark.parametrize("naming,expected", [
    ("sop-uid", "1.2.3.4"), ("instance-number", "0007"),
    ("timestamp", "20261123T083005123456"), ("sequential", "000042")])
def test_naming_rules(naming, expected):
    assert file_stem(naming, IDENT, WHEN, sequence=42) == expected


def test_hostile_patient_id_cannot_leave_the_folder():
    hostile = Identity(patient_id="../../../../tmp/x", study_uid="1.2", series_uid="1.3")
    folder = folder_for("series", hostile, WHEN)
    assert ".." not in folder.parts and not folder.is_absolute()


@pytest.mark.parametrize("title,ok", [("DICOMTUI", True), ("A" * 16, True), ("A" * 17, False),
                                      ("", False), ("BAD\\AE", False), ("TAB\tX", False)])
def test_ae_title_rules(title, ok):
    assert (ae_title_problem(title) is None) is ok
