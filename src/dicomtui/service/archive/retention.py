"""Cleanup: which studies may go (oldest first), and removing one study consistently.

A study being received, or whose zip waits for upload, is never removed: its files are
still needed. Files go first, then the study's index entry, so a crash in between leaves
an index entry whose files are gone (reindex drops it), never files the index forgot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from dicomtui.models import CleanupCandidate, CleanupPlan
from dicomtui.service.archive.index import ArchiveIndex
from dicomtui.service.receiving.store import StorageWriter


def candidate(doc: dict, reason: str = "") -> CleanupCandidate:
    return CleanupCandidate(
        doc["uid"],
        doc["patient_id"],
        doc["study_date"],
        doc.get("facility", ""),
        doc["last_received"],
        doc["instances"],
        doc["bytes"],
        reason,
    )


def plan(
    index: ArchiveIndex,
    older_than_days: float,
    protected: dict[str, str],
    now: datetime | None = None,
) -> CleanupPlan:
    """Studies last received more than `older_than_days` ago, oldest first."""
    now = now or datetime.now().astimezone()
    cutoff = (now - timedelta(days=older_than_days)).isoformat()
    out = CleanupPlan(older_than_days)
    old = sorted(
        (d for d in index.all_studies() if d["last_received"] < cutoff),
        key=lambda d: d["last_received"],
    )
    for doc in old:
        reason = protected.get(doc["uid"], "")
        if reason:
            out.keep.append(candidate(doc, reason))
        else:
            out.remove.append(candidate(doc))
            out.bytes += doc["bytes"]
    return out


def remove_study(
    index: ArchiveIndex, storage: StorageWriter, uid: str, planned: int
) -> tuple[int, int]:
    """Delete a study's files placed before `planned` (ns), prune empty folders, and
    drop from the index what is gone: (files, bytes). Files go first, so a crash in
    between leaves index lines without files (reindex drops them), never files the
    index forgot."""
    files = freed = 0
    folders: set[Path] = set()
    for inst in index.instances(uid):
        size = storage.remove_if_settled(inst.path, planned)
        if size or not (storage.root / inst.path).exists():
            files, freed = files + bool(size), freed + size
            folders.add((storage.root / inst.path).parent)
    index.forget_missing(uid, storage.root)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        prune_empty(folder, storage.root)
    return files, freed


def prune_empty(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents while empty, never `root` itself."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
