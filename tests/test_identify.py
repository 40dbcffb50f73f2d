"""The fast identifying-element walker agrees with pydicom on every sample."""

from io import BytesIO
from pathlib import Path

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from dicomtui.dicom import identify as identify_module
from dicomtui.dicom.identify import UnreadableDataset, identify

LOCAL = Path(pydicom.data.__file__).parent / "test_files"


def _encoded_samples():
    for path in sorted(p for p in LOCAL.rglob("*.dcm")):
        try:
            ds = dcmread(path)
            syntax = ds.file_meta.TransferSyntaxUID
            if syntax.is_deflated:
                continue
            fp = DicomBytesIO()
            fp.is_little_endian, fp.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
            write_dataset(fp, ds)
            yield pytest.param(fp.getvalue(), str(syntax), id=path.name)
        except Exception:
            continue


@pytest.mark.parametrize("encoded,syntax", list(_encoded_samples()))
def test_fast_walk_matches_pydicom(encoded, syntax):
    slow = identify_module._with_pydicom(BytesIO(encoded), UID(syntax))
    fast = identify_module._fast(BytesIO(encoded), UID(syntax))
    if fast is not None:  # None means "unsure": pydicom decides, which is also fine
        assert fast == slow


def test_most_samples_take_the_fast_path():
    samples = list(_encoded_samples())
    fast = [s for s in samples if identify_module._fast(BytesIO(s.values[0]),
                                                        UID(s.values[1])) is not None]
    assert len(fast) >= 0.9 * len(samples)


@pytest.mark.parametrize("garbage", [b"\x08\x00\x18\x00UI\xff\xff" + b"\x00" * 7,
                                     b"\xff" * 3, b"\x08\x00\x16\x00UI\x40\x00abc"])
def test_garbage_is_unreadable_or_empty_never_a_crash(garbage):
    try:
        ident = identify(garbage, "1.2.840.10008.1.2.1")
    except UnreadableDataset:
        return
    assert ident.sop_uid == "" or ident.sop_uid.isprintable()
