"""Which SOP Instance UIDs a storage folder already holds, to resolve names and duplicates.

With `sop-uid` naming the file name is the answer. With the other rules a folder is read
once (file meta only) and then kept up to date in memory; a bounded LRU keeps memory flat.
Callers hold the folder's lock.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydicom.filereader import read_file_meta_info

from dicomtui.dicom.identify import Identity

_SEQ = re.compile(r"(\d+)(?:-\d+)?\.dcm")


class _Folder:
    def __init__(self) -> None:
        self.by_uid: dict[str, str] = {}
        self.last_seq = 0


class DirectoryIndex:
    """An LRU of per-folder maps SOP Instance UID -> file name."""

    def __init__(self, capacity: int = 256) -> None:
        self._folders: OrderedDict[Path, _Folder] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()  # the LRU is shared by all folder locks

    def find(self, folder: Path, sop_uid: str, naming: str) -> str | None:
        """The file name already holding `sop_uid` in `folder`, if any."""
        if naming == "sop-uid":
            name = f"{sop_uid}.dcm"
            return name if (folder / name).exists() else None
        entry = self._load(folder)
        found = entry.by_uid.get(sop_uid)
        if found is not None and not (folder / found).exists():  # the disk decides:
            entry.by_uid.pop(sop_uid, None)  # a cleanup removed it since it was seen
            return None
        return found

    def claim_name(
        self,
        folder: Path,
        ident: Identity,
        naming: str,
        received: datetime,
        stem_rule: Callable[..., str],
    ) -> str:
        """A file name in `folder` that no other instance uses."""
        sequence = 0
        if naming == "sequential":
            entry = self._load(folder)
            entry.last_seq += 1
            sequence = entry.last_seq
        stem = stem_rule(naming, ident, received, sequence)
        name, n = f"{stem}.dcm", 0
        while (folder / name).exists():
            n += 1
            name = f"{stem}-{n}.dcm"
        return name

    def record(self, folder: Path, sop_uid: str, name: str) -> None:
        with self._lock:
            entry = self._folders.get(folder)
        if entry is not None:
            entry.by_uid[sop_uid] = name

    def _load(self, folder: Path) -> _Folder:
        with self._lock:
            entry = self._folders.get(folder)
            if entry is None:
                entry = _scan(folder)
                self._folders[folder] = entry
                if len(self._folders) > self._capacity:
                    self._folders.popitem(last=False)
            self._folders.move_to_end(folder)
            return entry


def _scan(folder: Path) -> _Folder:
    entry = _Folder()
    for path in folder.glob("*.dcm"):
        uid = _stored_uid(path)
        if uid:
            entry.by_uid[uid] = path.name
        match = _SEQ.fullmatch(path.name)
        if match:
            entry.last_seq = max(entry.last_seq, int(match.group(1)))
    return entry


def _stored_uid(path: Path) -> str:
    try:
        return str(read_file_meta_info(path).get("MediaStorageSOPInstanceUID", ""))
    except Exception:  # an unreadable file cannot be a duplicate of anything
        return ""
