"""Retention: which studies cleanup may remove, removing them, and auto_cleanup.

A study being received, or whose zip waits for upload, is never removed: its files are
still needed. Cleanup runs as a job on the archive's job board; auto_cleanup runs on
the store that found the quota full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from dicomtui.db.writer import DBWriter
from dicomtui.models import CleanupPlan, Job
from dicomtui.service.archive.errors import ArchiveError
from dicomtui.service.archive.index import ArchiveIndex
from dicomtui.service.archive.jobs import JobBoard, Reporter
from dicomtui.service.archive.retention import plan, remove_study
from dicomtui.service.core.recorder import Recorder
from dicomtui.service.core.records import Cleanup
from dicomtui.service.receiving.store import StorageWriter, quota_of
from dicomtui.settings import Resolved
from dicomtui.wording import size as in_size

LOG = logging.getLogger("dicomtui.archive")
MAINTENANCE = ("cleanup", "reindex")  # one at a time: both rewrite the index
ROOM_TARGET = 0.9  # auto_cleanup frees down to this share of the quota


class Holds(Protocol):
    """Who else still needs a study's files (shipping)."""

    def receiving(self) -> set[str]: ...
    def waiting(self) -> dict[str, str]: ...


def recently_received(index: ArchiveIndex, timeout: float) -> set[str]:
    """Without zip_studies nothing tracks open studies: an instance within
    study_timeout means the study may still be arriving."""
    recent = datetime.fromtimestamp(time.time() - timeout).astimezone().isoformat()
    return {d["uid"] for d in index.live_docs() if d["last_received"] >= recent}


class Retention:
    """Owns the decision to remove stored studies; the index and storage are handed in."""

    def __init__(
        self,
        index: ArchiveIndex,
        storage: StorageWriter,
        writer: DBWriter,
        settings: Callable[[], Resolved],
        recorder: Recorder,
        jobs: JobBoard,
        holds: Holds,
    ) -> None:
        self._index, self._storage, self._writer = index, storage, writer
        self._settings, self._recorder, self._jobs = settings, recorder, jobs
        self._holds = holds
        self._room_lock = threading.Lock()

    @property
    def settings(self) -> Resolved:
        return self._settings()

    def _protected(self) -> dict[str, str]:
        """Studies cleanup must keep, with the reason."""
        keep = dict.fromkeys(self._holds.receiving(), "being received")
        for uid in recently_received(self._index, self.settings.study_timeout):
            keep.setdefault(uid, "being received (an instance within study_timeout)")
        for uid, why in self._holds.waiting().items():
            keep.setdefault(uid, why)
        return keep

    def cleanup_plan(self, older_than_days: float | None = None) -> CleanupPlan:
        days = self._days(older_than_days)
        return plan(self._index, days, self._protected())

    def start_cleanup(self, older_than_days: float | None = None) -> Job:
        days = self._days(older_than_days)
        return self._jobs.start(
            "cleanup",
            f"cleanup: studies older than {days:g} days",
            lambda r: self._cleanup(r, days),
            MAINTENANCE,
        )

    def _days(self, older_than_days: float | None) -> float:
        days = self.settings.retention_days if older_than_days is None else older_than_days
        try:
            days = float(days)
        except (TypeError, ValueError):
            raise ArchiveError(f"--older-than {days!r} is not a number of days") from None
        if not 0 <= days <= 36500:
            raise ArchiveError(f"--older-than must be 0 to 36500 days (got {days:g})")
        return days

    def _cleanup(self, reporter: Reporter, days: float) -> tuple[str, dict]:
        self._storage.count_usage()
        planned = time.time_ns()
        todo = plan(self._index, days, self._protected())
        files = freed = studies = 0
        reporter.progress(0, len(todo.remove), f"{len(todo.remove)} studies to remove")
        for n, item in enumerate(todo.remove, 1):
            if reporter.cancel_requested:
                break
            removed, size = self._remove(
                item.uid, f"older than {days:g} days", days, planned
            )
            files, freed, studies = files + removed, freed + size, studies + bool(removed)
            reporter.progress(
                n, len(todo.remove), f"{n} of {len(todo.remove)} studies removed"
            )
        self._writer.flush()  # the job is done when its removals are on record
        message = (
            f"removed {studies} studies ({files} files, {in_size(freed)}); "
            f"kept {len(todo.keep)}"
        )
        LOG.info("cleanup: %s", message)
        return message, {
            "studies": studies,
            "files": files,
            "bytes": freed,
            "kept": len(todo.keep),
        }

    def _remove(self, uid: str, why: str, days: float, planned: int) -> tuple[int, int]:
        """Remove a planned study, if it still may go: checked again just before (it
        may have been re-sent since the plan), and never a file placed after it."""
        doc = self._index.study(uid)
        cutoff = datetime.fromtimestamp(time.time() - days * 86400).astimezone()
        if (
            doc is None
            or doc["last_received"] >= cutoff.isoformat()
            or uid in self._protected()
        ):
            LOG.info("cleanup kept study %s: received or claimed since it was planned", uid)
            return 0, 0
        files, freed = remove_study(self._index, self._storage, uid, planned)
        self._writer.put("index", None)
        self._recorder.record(
            Cleanup(
                reason=why,
                study_uid=uid,
                instances=files,
                bytes=freed,
                facility=doc.get("facility", ""),
                last_received=doc.get("last_received", ""),
            )
        )
        LOG.warning(
            "cleanup removed study %s (%s, last received %s): %d files, %d bytes",
            uid,
            why,
            doc.get("last_received", "?"),
            files,
            freed,
        )
        return files, freed

    def make_room(self, needed: int) -> bool:
        """The quota is reached (from a store): free the oldest allowed studies; True if
        something was freed (auto_cleanup)."""
        s = self.settings
        quota = quota_of(s)
        if not s.auto_cleanup or quota <= 0:
            return False
        if any(j.kind == "reindex" for j in self._jobs.running()):
            return False  # the index is being rebuilt: removing now could be undone
        with self._room_lock:
            target = int(quota * ROOM_TARGET) - needed
            if self._storage.used_bytes <= target:
                return True  # another store made room meanwhile
            planned = time.time_ns()
            todo = plan(self._index, s.retention_days, self._protected())
            freed_any = False
            for item in todo.remove:
                if self._storage.used_bytes <= target:
                    break
                files, _ = self._remove(
                    item.uid,
                    f"auto_cleanup: quota reached, older than {s.retention_days} days",
                    s.retention_days,
                    planned,
                )
                freed_any = freed_any or files > 0
            if not freed_any:
                LOG.error(
                    "quota reached and auto_cleanup found no study older than "
                    "%d days that it may remove",
                    s.retention_days,
                )
            return freed_any
