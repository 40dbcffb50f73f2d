"""Convert a dataset to an uncompressed Little Endian syntax (or, last, to RLE
Lossless) for a peer that accepts none of the syntax it is stored in.

Only when it must: stored bytes go out as stored whenever the peer accepts their
syntax (ARCHITECTURE.md, "Sending and retrieving"). Compressed pixel data is decoded by
pydicom's pixel handlers with the pylibjpeg plugins (JPEG, JPEG-LS, JPEG 2000, RLE);
Big Endian values are swapped. What cannot be converted raises TranscodeError with a
reason fit for an Error Comment (no path, no patient data).
"""

from __future__ import annotations

import array

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

# What we can convert to, in the order we prefer it: explicit keeps the VRs; RLE
# (lossless, pydicom's own encoder) only for a peer that takes nothing uncompressed.
TARGETS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless)
# Binary VRs whose value is a run of numbers of this width (swapped from Big Endian).
_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_ARRAY = {2: "H", 4: "I", 8: "Q"}


class TranscodeError(ValueError):
    """The dataset cannot be converted; the message says why in a few words."""


def name_of(syntax: str) -> str:
    """A transfer syntax's name (its UID when pydicom does not know it)."""
    uid = UID(syntax)
    return uid.name if uid.is_transfer_syntax else str(syntax)


def short_name(syntax: str) -> str:
    """A transfer syntax's name without its parenthesis, for an Error Comment."""
    return name_of(syntax).split(" (")[0][:40]


def can_convert(source: str, target: str) -> bool:
    """Whether transcode() can try `source` to `target` (decoding may still fail)."""
    src = UID(source)
    if target not in TARGETS or not src.is_transfer_syntax:
        return False
    return not src.is_compressed or _has_decoder(src)


def transcode(ds: Dataset, target: str) -> Dataset:
    """`ds` (read from its file, file_meta included) converted in place to `target`."""
    source = UID(ds.file_meta.TransferSyntaxUID)
    if source == target:
        return ds
    if not can_convert(source, target):
        raise TranscodeError(f"cannot convert {name_of(source)} to {name_of(target)}")
    _decode_all(ds)
    if source.is_compressed:
        _decompress(ds, source)
    elif source == ExplicitVRBigEndian:
        _swap_binary_values(ds)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)
    if target == RLELossless:
        _compress_rle(ds)
    ds.file_meta.TransferSyntaxUID = UID(target)
    ds.set_original_encoding(UID(target).is_implicit_VR, True)
    return ds


def _decode_all(ds: Dataset) -> None:
    """Decode every element, items included: pydicom writes an element it has not
    decoded as its raw bytes, which are in the source's encoding (a sequence left raw
    would go out explicit VR inside an implicit VR dataset)."""
    try:
        for _elem in ds.iterall():
            pass
    except Exception:  # a value pydicom cannot decode: nothing sound to convert
        raise TranscodeError("an element cannot be decoded") from None


def _decompress(ds: Dataset, source: UID) -> None:
    if "PixelData" not in ds:
        return
    try:
        # The same instance in another syntax: its SOP Instance UID stays.
        ds.decompress(generate_instance_uid=False)
    except Exception:  # pydicom raises several kinds; its messages name files
        raise TranscodeError(f"cannot decode {short_name(source)}") from None


def _compress_rle(ds: Dataset) -> None:
    if "PixelData" not in ds:
        return
    try:
        ds.compress(RLELossless, generate_instance_uid=False)
    except Exception:  # pydicom's encoder refuses some pixel formats (float, 1 bit, ...)
        raise TranscodeError("cannot encode its pixel data as RLE Lossless") from None


def _swap_binary_values(ds: Dataset) -> None:
    """Big to Little Endian: numbers pydicom decodes it re-encodes by itself; the
    binary VRs keep their bytes, so those are swapped here, item by item."""
    bits = int(ds.get("BitsAllocated", 16) or 16)
    for elem in ds.iterall():
        width = _WIDTH.get(elem.VR)
        if width is None or not isinstance(elem.value, bytes) or not elem.value:
            continue
        if elem.tag == 0x7FE00010 and bits in (32, 64):
            width = bits // 8
        if len(elem.value) % width:
            raise TranscodeError(f"odd length in a Big Endian {elem.VR} value")
        values = array.array(_ARRAY[width], elem.value)
        values.byteswap()
        elem.value = values.tobytes()


def _has_decoder(syntax: UID) -> bool:
    try:
        from pydicom.pixels.decoders.base import get_decoder

        return bool(get_decoder(syntax).is_available)
    except Exception:  # no decoder registered for this syntax at all
        return False
