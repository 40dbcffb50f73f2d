"""Saving what a screen shows to a file the operator can attach to a ticket.

Tab-separated, a header line first, every cell whole (the screen cuts, the file does
not). Mode 0600 and never over an existing file: a log view can name patients.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


def save_table(stem: str, titles: Iterable[str], rows: Iterable[Iterable[str]],
               folders: Iterable[Path], now: datetime) -> Path:
    """Write the rows to '<stem>-YYYYmmdd-HHMMSS.tsv' in the first folder that takes
    it; the path. OSError (the last folder's) when none does."""
    lines = ["\t".join(titles)] + ["\t".join(_clean(c) for c in row) for row in rows]
    data = ("\n".join(lines) + "\n").encode()
    name = f"{stem}-{now:%Y%m%d-%H%M%S}.tsv"
    error: OSError = OSError("no folder to save in")
    for folder in folders:
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            error = exc
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return path
    raise error


def _clean(cell: str) -> str:
    return str(cell).replace("\t", " ").replace("\n", " ")
