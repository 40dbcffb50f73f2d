"""Damaged state that was set aside: found by its files, reported until someone acts.

A damaged file that can be rebuilt or lost is moved to `<name>.corrupt-<time>` (never
deleted). Those files are the record: status, the Status screen and `dicomtui doctor`
list each with what was lost and what to do, until an operator deals with it and
removes (or restores from) the set-aside copy.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

SET_ASIDE = re.compile(r"(?P<name>.+)\.corrupt-(?P<stamp>\d{8}T\d{6})(-\d+)?$")
FOLDERS = ("", "log", "index", "anonymization")  # where state files live
CONSEQUENCES = (  # (file name pattern, what was lost and what to do)
    (
        r"uploads\.json",
        "uploads it listed are no longer queued: queue their zips "
        "again with `dicomtui upload ZIP`",
    ),
    (
        r"studies\.json",
        "studies being received then were not zipped: upload their "
        "folders with `dicomtui upload FOLDER`",
    ),
    (r"studies-[0-9a-f]{2}\.json", "the index was rebuilt from the stored files"),
    (r"tx-\d+\.json", "its transaction records are no longer in `dicomtui log`"),
)
CACHE_S = 5.0  # status is polled often; the folders are listed at most this often


class SetAside:
    """Lists set-aside state files, each with its consequence (cached briefly)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._cached: tuple[float, list[str]] = (0.0, [])

    def report(self) -> list[str]:
        """One line per set-aside file: what it was, what was lost, what to do."""
        with self._lock:
            taken, lines = self._cached
            if time.monotonic() - taken > CACHE_S:
                lines = [describe(path) for path in self.files()]
                self._cached = (time.monotonic(), lines)
            return list(lines)

    def files(self) -> list[Path]:
        found = []
        for folder in FOLDERS:
            try:
                entries = sorted((self.data_dir / folder).iterdir())
            except (FileNotFoundError, NotADirectoryError):
                continue
            found += [p for p in entries if SET_ASIDE.match(p.name)]
        return found


def describe(path: Path) -> str:
    match = SET_ASIDE.match(path.name)
    name = match.group("name") if match else path.name
    lost = next(
        (text for pattern, text in CONSEQUENCES if re.fullmatch(pattern, name)),
        "what it held was not used",
    )
    return (
        f"{name} was damaged and set aside as {path}: {lost}; delete the set-aside "
        "copy once dealt with (`dicomtui doctor` explains)"
    )
