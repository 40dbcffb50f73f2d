"""What a DIMSE status means, in words fit for an Error Comment (PS3.7 C, PS3.4 B/C).

Used when a failure is answered without a more specific reason (pynetdicom answers
some failures by itself): the peer's log then still says what kind of failure it was.
"""

from __future__ import annotations

EXACT = {
    0x0110: "processing failure",
    0x0112: "no such SOP instance",
    0x0117: "invalid object instance",
    0x0122: "SOP class not supported",
    0x0211: "unrecognized operation",
    0x0212: "mistyped argument",
    0xA700: "out of resources",
    0xA701: "out of resources: unable to calculate the number of matches",
    0xA702: "out of resources: unable to perform sub-operations",
    0xA801: "move destination unknown or not reachable",
    0xA900: "identifier or dataset does not match the SOP Class",
    0xC210: "cannot understand the dataset",
    0xC211: "refused: duplicate SOP Instance",
}
RANGES = (
    (0xA700, 0xA7FF, "out of resources"),
    (0xA900, 0xA9FF, "dataset or identifier does not match the SOP Class"),
    (0xC000, 0xCFFF, "unable to process"),
)


def failure_comment(status: int) -> str:
    """A short, general reason for a failure status (at most 64 characters)."""
    if status in EXACT:
        return EXACT[status]
    for low, high, text in RANGES:
        if low <= status <= high:
            return text
    return f"failed with status 0x{status:04X}"
