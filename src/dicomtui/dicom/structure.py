"""Is a received dataset well formed? One walk over every element header, no values.

A store is acknowledged only if its file can be read back. Identification reads a few
elements at the top; this walk checks the rest of the structure the way a reader will
meet it: every explicit VR is one PS3.5 defines, every length fits inside its parent,
undefined lengths appear only where PS3.5 allows them (sequences, UN, encapsulated pixel
data), items and delimiters are where they belong, and nesting is bounded. It costs a
few microseconds per element; pixel data is skipped by its length, never read.

The problems it names hold tags and VRs only, never a value, so they may be shown to
the peer (an Error Comment) and logged.
"""

from __future__ import annotations

from struct import error as StructError
from struct import unpack_from

from pydicom.datadict import DicomDictionary

KNOWN_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM "
    b"UC UI UL UN UR US UT UV".split()
)
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MAX_DEPTH = 32  # sequences nested deeper than this are refused


class Malformed(ValueError):
    """The dataset's structure is broken; the message names where (tags, VRs only)."""


def structure_problem(buf, implicit: bool, little: bool) -> str | None:
    """None if every element of `buf` (a dataset without file meta) is well formed,
    else what is wrong, in at most 64 characters."""
    walker = _Walker(buf, "<" if little else ">")
    if not implicit and _implicit_after_all(buf):
        implicit = True  # as readers do: an explicit syntax whose first VR is no VR
    try:
        walker.elements(0, len(buf), 0, implicit)
    except Malformed as exc:
        return str(exc)[:64]
    except (StructError, IndexError):
        return "dataset ends inside an element header"
    return None


def _implicit_after_all(buf) -> bool:
    """True when the first element has no VR at all where an explicit VR should be
    (not two upper-case letters): pydicom then reads the dataset as implicit VR."""
    vr = bytes(buf[4:6])
    return len(vr) == 2 and not (vr.isalpha() and vr.isupper())


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Walker:
    def __init__(self, buf, endian: str) -> None:
        self.buf, self.endian = buf, endian

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, position of the value) at `pos`."""
        if implicit:
            group, elem, length = unpack_from(self.endian + "HHI", self.buf, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, short = unpack_from(self.endian + "HH2sH", self.buf, pos)
        tag = group << 16 | elem
        if group == 0xFFFE:  # items and delimiters have no VR
            return tag, None, unpack_from(self.endian + "I", self.buf, pos + 4)[0], pos + 8
        if vr in LONG_VRS:
            return tag, vr, unpack_from(self.endian + "I", self.buf, pos + 8)[0], pos + 12
        if vr not in KNOWN_VRS:
            shown = vr.decode("latin-1") if vr.isalnum() else vr.hex()
            raise Malformed(f"element {_tag(tag)} has an invalid VR '{shown}'")
        return tag, vr, short, pos + 8

    def elements(self, pos: int, end: int, depth: int, implicit: bool) -> int:
        """Walk elements from `pos` to `end`; where the walk ended (== end)."""
        header = self.header
        while pos < end:
            tag, vr, length, start = header(pos, implicit)
            stop = start + length
            if stop <= end and vr is not None and vr != b"SQ":  # the common case
                pos = stop
                continue
            if tag >> 16 == 0xFFFE:
                raise Malformed(f"item tag {_tag(tag)} outside a sequence")
            pos = self.value(tag, vr, length, start, end, depth, implicit)
        if pos != end:
            raise Malformed("an element runs past the end of its parent")
        return pos

    def value(
        self,
        tag: int,
        vr: bytes | None,
        length: int,
        start: int,
        end: int,
        depth: int,
        implicit: bool,
    ) -> int:
        """Check one element's value; the position after it."""
        if length == UNDEFINED:
            if vr == b"UN" or (implicit and tag != PIXEL_DATA) or vr == b"SQ":
                return self.items(start, end, depth + 1, implicit or vr == b"UN")
            if tag == PIXEL_DATA and vr in (b"OB", b"OW", None):
                return self.fragments(start, end)
            raise Malformed(f"element {_tag(tag)} ({_vr(vr)}) has an undefined length")
        stop = start + length
        if stop > end:
            raise Malformed(f"element {_tag(tag)} runs past the end of the dataset")
        if vr == b"SQ" or (vr is None and _is_sequence(tag)):
            self.defined_items(start, stop, depth + 1, implicit)
        return stop

    def items(self, pos: int, end: int, depth: int, implicit: bool) -> int:
        """An undefined-length sequence: items up to the sequence delimiter."""
        _deep(depth)
        while True:
            tag, _, length, start = self.header(pos, True)
            if tag == SEQ_END:
                return start
            pos = self.item(tag, length, start, end, depth, implicit)

    def defined_items(self, pos: int, end: int, depth: int, implicit: bool) -> None:
        _deep(depth)
        while pos < end:
            tag, _, length, start = self.header(pos, True)
            pos = self.item(tag, length, start, end, depth, implicit)
        if pos != end:
            raise Malformed("a sequence item runs past the end of its sequence")

    def item(
        self, tag: int, length: int, start: int, end: int, depth: int, implicit: bool
    ) -> int:
        if tag != ITEM:
            raise Malformed(f"{_tag(tag)} where a sequence item should start")
        if length != UNDEFINED:
            if start + length > end:
                raise Malformed("a sequence item runs past the end of its sequence")
            return self.elements(start, start + length, depth, implicit)
        pos = start
        while True:
            tag, vr, length, begin = self.header(pos, implicit)
            if tag == ITEM_END:
                return begin
            if tag >> 16 == 0xFFFE:
                raise Malformed(f"item tag {_tag(tag)} inside an item")
            pos = self.value(tag, vr, length, begin, end, depth, implicit)

    def fragments(self, pos: int, end: int) -> int:
        """Encapsulated pixel data: items of defined length, then the delimiter."""
        while True:
            tag, _, length, start = self.header(pos, True)
            if tag == SEQ_END:
                return start
            if tag != ITEM or length == UNDEFINED or start + length > end:
                raise Malformed("encapsulated pixel data is not a list of fragments")
            pos = start + length


def _deep(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Malformed(f"sequences nested deeper than {MAX_DEPTH}")


def _is_sequence(tag: int) -> bool:
    entry = DicomDictionary.get(tag)
    return entry is not None and entry[0] == "SQ"


def _vr(vr: bytes | None) -> str:
    return vr.decode("latin-1") if vr else "implicit VR"
