"""How every front end writes sizes and clock times for people.

The command line and the console share these so a size or a time reads the same in both.
"""

from __future__ import annotations

from datetime import datetime

import humanize


def size(n: int | None) -> str:
    """Bytes in decimal units: '1.5 MB'."""
    return humanize.naturalsize(n or 0, binary=False)


def clock(iso: str | None, with_date: bool = True) -> str:
    """The wall-clock part of an ISO time, in the zone it was written in."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
