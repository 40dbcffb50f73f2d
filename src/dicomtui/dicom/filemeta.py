"""Encode the DICOM file preamble and file meta group (PS3.10) straight to bytes.

Received datasets are written exactly as they came; only this header is ours. Encoding it
by hand avoids building a pydicom FileMetaDataset for every image on the hot path.
"""

from __future__ import annotations

import struct

from pydicom.uid import generate_uid

from dicomtui import __version__

IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["dicomtui implementation"])
IMPLEMENTATION_VERSION = ("DICOMTUI_" + __version__.replace(".", ""))[:16]
PREAMBLE = b"\x00" * 128 + b"DICM"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    header = struct.pack("<HH", 0x0002, element) + vr
    if vr in (b"OB", b"UN", b"OW", b"SQ", b"UT"):
        return header + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return header + struct.pack("<H", len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def file_header(
    sop_class_uid: str, sop_uid: str, transfer_syntax: str, source_ae: str = ""
) -> bytes:
    """Preamble, 'DICM' and the encoded file meta group for one instance."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _padded(sop_class_uid, b"\x00")),
            _element(0x0003, b"UI", _padded(sop_uid, b"\x00")),
            _element(0x0010, b"UI", _padded(transfer_syntax, b"\x00")),
            _element(0x0012, b"UI", _padded(IMPLEMENTATION_CLASS_UID, b"\x00")),
            _element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION, b" ")),
        )
    )
    if source_ae.strip():
        body += _element(0x0016, b"AE", _padded(source_ae.strip()[:16], b" "))
    group_length = _element(0x0000, b"UL", struct.pack("<I", len(body)))
    return PREAMBLE + group_length + body


class NotDicomFile(ValueError):
    """Bytes that do not start like a DICOM file (preamble, 'DICM', file meta)."""


def read_file_meta(buf: bytes) -> tuple[str, int]:
    """(transfer syntax UID, offset of the dataset) of a DICOM file's first bytes.

    The file meta group is always explicit VR little endian (PS3.10 7.1); walking it by
    hand spares pydicom a second open of every file during a reindex.
    """
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise NotDicomFile("no DICM prefix (not a DICOM Part 10 file)")
    pos, syntax = 132, ""
    while pos + 8 <= len(buf):
        group, element = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4 : pos + 6]
        if vr in (b"OB", b"UN", b"OW", b"SQ", b"UT"):
            length, start = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", buf, pos + 6)[0], pos + 8
        if element == 0x0010:
            syntax = buf[start : start + length].decode("ascii", "replace").strip(" \x00")
        pos = start + length
    if not syntax:
        raise NotDicomFile("file meta has no Transfer Syntax UID")
    return syntax, pos
