"""The structural check of received datasets (dicom/structure.py) and the bounds on
identifying values (dicom/identify.py): pure functions over bytes."""

from __future__ import annotations

import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomtui.dicom.identify import UnreadableDataset, identify
from dicomtui.dicom.structure import structure_problem
from helpers import encode_dataset, fresh_ct
from test_receive import SAMPLES
from test_truthful import encode_implicit, with_invalid_vr


def explicit(ds: Dataset) -> bytes:
    return encode_dataset(ds)


def element(group: int, elem: int, vr: bytes, value: bytes, length: int | None = None):
    size = len(value) if length is None else length
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, size) + value
    return struct.pack("<HH2sH", group, elem, vr, size) + value


def test_well_formed_datasets_pass_in_both_encodings():
    ds = fresh_ct()
    assert structure_problem(explicit(ds), False, True) is None
    assert structure_problem(encode_implicit(ds), True, True) is None


def test_nested_sequences_of_defined_and_undefined_length_pass():
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "113100", "Basic Application Confidentiality"
    ds = fresh_ct()
    ds.DeidentificationMethodCodeSequence = Sequence([inner, inner])
    ds.ReferencedImageSequence = Sequence([Dataset()])
    assert structure_problem(explicit(ds), False, True) is None
    assert structure_problem(encode_implicit(ds), True, True) is None


@pytest.mark.parametrize("data, problem", [
    (element(0x0009, 0x0010, b"ZZ", b"ABCD"), "invalid VR 'ZZ'"),
    (element(0x0010, 0x0010, b"PN", b"DOE", length=400), "runs past the end"),
    (element(0x0010, 0x0010, b"PN", b"", length=0xFFFF) [:6], "ends inside"),
    (struct.pack("<HH2sHI", 0x0010, 0x1010, b"UT", 0, 0xFFFFFFFF), "undefined length"),
    (struct.pack("<HHI", 0xFFFE, 0xE000, 0), "outside a sequence"),
    (element(0x0008, 0x1140, b"SQ", struct.pack("<HHI", 0x0010, 0x0010, 4) + b"ABCD"),
     "where a sequence item should start"),
    (struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
     + struct.pack("<HHI", 0xFFFE, 0xE000, 1000), "not a list of fragments"),
])
def test_broken_structures_are_named(data, problem):
    found = structure_problem(data, False, True)
    assert found is not None and problem in found and len(found) <= 64


def test_a_nesting_bomb_is_refused():
    item_start = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    sequence = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    data = (sequence + item_start) * 100
    assert "nested deeper" in structure_problem(data, False, True)


def test_an_implicit_dataset_under_an_explicit_syntax_is_read_as_readers_do():
    assert structure_problem(encode_implicit(fresh_ct()), False, True) is None


def test_every_complete_sample_passes():
    from pydicom import dcmread
    for path in SAMPLES:
        ds = dcmread(path)
        syntax = ds.file_meta.TransferSyntaxUID
        if syntax.is_deflated or not syntax.is_little_endian:
            continue
        data = encode_implicit(ds) if syntax.is_implicit_VR else explicit(ds)
        assert structure_problem(data, syntax.is_implicit_VR, True) is None, path


def test_identify_refuses_an_invalid_vr_with_a_comment_for_the_peer():
    with pytest.raises(UnreadableDataset) as caught:
        identify(with_invalid_vr(fresh_ct()), ExplicitVRLittleEndian)
    assert caught.value.comment == "element (0009,0010) has an invalid VR 'ZZ'"


def test_identifying_values_are_bounded():
    ds = fresh_ct(PatientName="N" * 100_000, StudyDescription="D" * 100_000,
                  AccessionNumber="A" * 5000)
    ident = identify(encode_implicit(ds), ImplicitVRLittleEndian)
    assert len(ident.patient_name) == 194 and len(ident.study_description) == 64
    assert len(ident.accession) == 64 and ident.sop_uid == ds.SOPInstanceUID


def test_an_overlong_uid_stays_overlong_so_it_is_refused():
    ds = fresh_ct(StudyInstanceUID="1." * 5000 + "1")
    ident = identify(encode_implicit(ds), ImplicitVRLittleEndian)
    assert len(ident.study_uid) == 65
