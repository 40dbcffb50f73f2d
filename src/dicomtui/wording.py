"""How every front end writes sizes and clock times for people.

The command line and the console share these so a size or a time reads the same in both.
"""

from __future__ import annotations

import re
from datetime import datetime

import humanize


def size(n: int | None) -> str:
    """Bytes in decimal units: '1.5 MB'."""
    return humanize.naturalsize(n or 0, binary=False)


def duration(seconds: float) -> str:
    """'3 h 12 m', '1 m 34 s', '2 d 4 h': an uptime or age, the same on every screen and
    in the CLI, to the two units that matter."""
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    return f"{minutes} m {secs} s" if minutes else f"{secs} s"


def count(n: int, noun: str) -> str:
    """'1 row', '1,000 rows': a number and its noun, agreeing."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def setting_value(value) -> str:
    """A setting's value as `config set` takes it: true/false, never Python's True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def clock(iso: str | None, with_date: bool = True) -> str:
    """The wall-clock part of an ISO time, in the zone it was written in."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


# PS3.8 9.3.4 (A-ASSOCIATE-RJ): what result, source and reason/diag. mean, in the words
# dcmtk's tools print, so an engineer comparing our log with storescu's reads the same.
REJECT_RESULTS = {1: "Rejected Permanent", 2: "Rejected Transient"}
REJECT_SOURCES = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE)",
    3: "DICOM UL service-provider (Presentation)",
}
REJECT_DIAGNOSTICS = {
    (1, 1): "No Reason Given",
    (1, 2): "Application Context Name Not Supported",
    (1, 3): "Calling AE Title Not Recognized",
    (1, 7): "Called AE Title Not Recognized",
    (2, 1): "No Reason Given",
    (2, 2): "Protocol Version Not Supported",
    (3, 1): "Temporary Congestion",
    (3, 2): "Local Limit Exceeded",
}
_CODES = re.compile(r"\(result (\d+), source (\d+), diagnostic (\d+)\)")


def rejection(result: int | None, source: int | None, diagnostic: int | None) -> str:
    """'Rejected Permanent by DICOM UL service-user: Calling AE Title Not Recognized'."""
    said = REJECT_RESULTS.get(result or 0, f"Result {result}")
    by = REJECT_SOURCES.get(source or 0, f"source {source}")
    why = REJECT_DIAGNOSTICS.get((source or 0, diagnostic or 0), f"reason {diagnostic}")
    return f"{said} by {by}: {why}"


def in_words(reason: str | None) -> str:
    """A reason with any '(result R, source S, diagnostic D)' written in words: records
    logged before the words were stored keep their codes, and read the same anyway."""
    return _CODES.sub(
        lambda m: f"({rejection(*(int(g) for g in m.groups()))})", reason or ""
    )
