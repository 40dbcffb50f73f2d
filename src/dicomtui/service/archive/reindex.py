"""Rebuild the archive index from the storage tree (the files are the truth).

Each file's identity is read the way the receive path reads it (file meta by hand, then
the element walk up to InstanceNumber), so a rebuilt index has the same content as the
live one. An unreadable file is reported and skipped, never fatal.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path

from dicomtui.dicom.filemeta import NotDicomFile, read_file_meta
from dicomtui.dicom.identify import Identity, UnreadableDataset, identify
from dicomtui.service.archive.index import (
    ArchiveIndex,
    apply_instance,
    instance_line,
    new_study,
    shard_of,
)
from dicomtui.service.core.records import StoredInstance

LOG = logging.getLogger("dicomtui.archive")
HEAD = 256 * 1024  # bytes read first; enough for the identifying elements of nearly all
FLUSH_LINES = 50_000  # instance lines kept in memory before they are written out

Progress = Callable[[int, int, str], None]


@dataclass
class Rebuilt:
    studies: dict[str, dict] = field(default_factory=dict)
    files: int = 0
    indexed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    folder: Path = Path()  # the new instance files


def storage_files(root: Path) -> list[str]:
    """Every file under `root` we may have written (relative), temp and dot files aside."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = os.path.relpath(dirpath, root)
        for name in sorted(files):
            if not name.startswith("."):
                found.append(name if base == "." else f"{base}/{name}")
    return found


def read_identity(path: Path) -> tuple[Identity, str]:
    """(identity, transfer syntax) of one stored file; UnreadableDataset says why not."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
            whole = len(head) < HEAD
            try:
                syntax, offset = read_file_meta(head)
                return identify(BytesIO(head[offset:]), syntax), syntax
            except UnreadableDataset:
                if whole:
                    raise
            head += fh.read()
    except OSError as exc:
        raise UnreadableDataset(f"cannot read: {exc.strerror or exc}") from None
    except NotDicomFile as exc:
        raise UnreadableDataset(str(exc)) from None
    syntax, offset = read_file_meta(head)
    return identify(BytesIO(head[offset:]), syntax), syntax


def rebuild(
    root: Path,
    folder: Path,
    facility_for: Callable[[str, str], str],
    progress: Progress,
    cancelled: Callable[[], bool],
) -> Rebuilt:
    """Index every file under `root`; instance files go to `folder` (new, empty)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    out = Rebuilt(folder=folder)
    names = storage_files(root)
    out.files = len(names)
    progress(0, out.files, f"{out.files} files to read")
    lines: dict[str, list[bytes]] = defaultdict(list)
    buffered = 0
    for n, name in enumerate(names, 1):
        if cancelled():
            break
        path = root / name
        try:
            ident, syntax = read_identity(path)
            stat = path.stat()
        except (UnreadableDataset, OSError) as exc:
            out.unreadable.append((name, str(exc)))
            LOG.warning("reindex: %s skipped: %s", name, exc)
            continue
        if not ident.sop_uid:
            out.unreadable.append((name, "no SOP Instance UID"))
            continue
        when = datetime.fromtimestamp(stat.st_mtime).astimezone().isoformat()
        doc = out.studies.get(ident.study_uid)
        if doc is None:
            doc = out.studies[ident.study_uid] = new_study(
                ident.study_uid, when, facility_for(ident.study_uid, name)
            )
        apply_instance(doc, ident, stat.st_size, False, when)
        lines[ident.study_uid].append(instance_line(ident, name, syntax, stat.st_size))
        out.indexed += 1
        buffered += 1
        if buffered >= FLUSH_LINES:
            _write_lines(folder, lines)
            buffered = 0
        if n % 200 == 0 or n == out.files:
            progress(n, out.files, f"{n} of {out.files} files read")
    _write_lines(folder, lines)
    return out


def _write_lines(folder: Path, lines: dict[str, list[bytes]]) -> None:
    for uid, chunk in lines.items():
        path = folder / f"{shard_of(uid):02x}" / f"{uid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(b"".join(chunk))
    lines.clear()


def install(index: ArchiveIndex, rebuilt: Rebuilt, during: list[StoredInstance]) -> int:
    """Put the rebuilt index in place of the live one, plus what arrived meanwhile.

    `during` holds the instances stored while the tree was read; those the walk did
    not see are added again. Returns how many were.
    """
    live = index.folder / "instances"
    old = index.folder / "instances.old"
    with index.io_lock, index.lock:  # this order, as everywhere
        if old.exists():
            shutil.rmtree(old)
        if live.exists():
            os.replace(live, old)
        os.replace(rebuilt.folder, live)
        index.replace_all(rebuilt.studies)
    # stores from now on go to the new index (and to `during`: seen below, skipped)
    seen: dict[str, set[str]] = {}
    added = 0
    for stored in list(during):
        uid = stored.ident.study_uid
        if uid not in seen:
            seen[uid] = {i.path for i in index.instances(uid)}
        if stored.path not in seen[uid]:
            index.add(stored)
            seen[uid].add(stored.path)
            added += 1
    shutil.rmtree(old, ignore_errors=True)
    return added
