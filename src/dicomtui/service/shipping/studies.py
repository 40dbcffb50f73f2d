"""Study completion: which files each receiving study got, and when it is complete.

A study is complete when no instance came for `study_timeout` seconds, or at the latest
`study_max_age` after its first. Then it is zipped (zip_studies) and queued for upload
(auto_upload). A late instance opens it again as version 2, 3, ...: a new zip with what
came since, never merged silently into one already sent.

The tracker is saved to `<data-dir>/studies.json` by the DB writer; what it misses after
a crash comes back from the journal (idempotently: a file is listed once). Completing is
crash-safe too: a due study is first "closing" (saved as such), the journal is
checkpointed, then it is zipped and queued, and only then completed; a restart finishes
a closing study, and a version already queued is never queued twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dicomtui.db.state import open_or_set_aside
from dicomtui.db.storage import flush_database
from dicomtui.service.core.background import Background
from dicomtui.service.receiving.store import StorageWriter
from dicomtui.service.shipping.upload_queue import UploadQueue
from dicomtui.service.shipping.zipper import NothingToZip, zip_files
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.studies")
RETRY_S = 60  # a study whose zip failed is tried again after this
LOST_STUDIES = (
    "studies being received then are not zipped when they complete; zip and upload "
    "their folders by hand (`dicomtui upload FOLDER`)"
)


@dataclass
class OpenStudy:
    uid: str
    first: float  # epoch seconds
    last: float
    files: dict[str, int] = field(default_factory=dict)  # relative path -> size
    facility: str = ""
    version: int = 1
    closing: bool = False  # due: being zipped and queued

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


class StudyTracker:
    """Handlers report stored files; the completion thread takes complete studies."""

    def __init__(self, path: Path, changed: Callable[[], None] = lambda: None) -> None:
        self._db, self.warning = open_or_set_aside(path, LOST_STUDIES)
        self._changed = changed  # tells the DB writer to save
        self._lock = threading.Lock()
        self._open: dict[str, OpenStudy] = {}  # uid -> the version receiving now
        self._closing: dict[tuple[str, int], OpenStudy] = {}
        self._versions: dict[str, int] = {}  # uid -> last completed version
        self._completed: dict[str, float] = {}  # uid -> when (epoch), for expiry
        now = time.time()
        for doc in self._db.table("open").all():
            study = _parse(doc)
            study.last = now  # the timeout counts from the restart
            if study.closing:
                self._closing[(study.uid, study.version)] = study
            else:
                self._open[study.uid] = study
        for doc in self._db.table("versions").all():
            self._versions[doc["uid"]] = int(doc["version"])
            self._completed[doc["uid"]] = float(doc.get("completed", now))

    def stored(self, uid: str, relative: str, size: int, facility: str) -> None:
        """One acknowledged file; the same file told twice (a replay) counts once."""
        now = time.time()
        with self._lock:
            # a replayed file a closing version lists is that version's, even when a
            # later version is open meanwhile (it would be shipped twice otherwise)
            study = self._replayed_into(uid, relative) or self._open.get(uid)
            if study is None:
                study = self._open[uid] = OpenStudy(
                    uid, now, now, facility=facility, version=self._next_version(uid)
                )
            study.files[relative] = size
            study.last = now
        self._changed()

    def _replayed_into(self, uid: str, relative: str) -> OpenStudy | None:
        """A closing version that already lists the file (caller holds the lock)."""
        for (closing_uid, _), study in self._closing.items():
            if closing_uid == uid and relative in study.files:
                return study
        return None

    def _next_version(self, uid: str) -> int:
        closing = [v for (u, v) in self._closing if u == uid]
        return max([self._versions.get(uid, 0), *closing]) + 1

    def open_uids(self) -> set[str]:
        """Studies still receiving, or being zipped and queued."""
        with self._lock:
            return set(self._open) | {uid for uid, _ in self._closing}

    def due(self, timeout: float, max_age: float) -> list[OpenStudy]:
        """Studies to complete now: those that just became due (now closing: a late
        instance opens the next version) and those a previous try left closing."""
        now = time.time()
        with self._lock:
            for study in [
                s
                for s in self._open.values()
                if now - s.last >= timeout or now - s.first >= max_age
            ]:
                del self._open[study.uid]
                study.closing = True
                self._closing[(study.uid, study.version)] = study
            due = list(self._closing.values())
        if due:
            self._changed()
        return due

    def complete(self, study: OpenStudy) -> None:
        """Zipped and queued (or nothing to do): the version is done."""
        with self._lock:
            self._closing.pop((study.uid, study.version), None)
            self._versions[study.uid] = max(self._versions.get(study.uid, 0), study.version)
            self._completed[study.uid] = time.time()
        self._changed()

    def expire(self, days: float) -> int:
        """Forget completed versions older than `days` (a study sent again after that
        starts from version 1 again); how many were forgotten."""
        cutoff = time.time() - days * 86400
        with self._lock:
            old = [u for u, when in self._completed.items() if when < cutoff]
            for uid in old:
                self._versions.pop(uid, None)
                self._completed.pop(uid, None)
        if old:
            self._changed()
        return len(old)

    def save(self) -> None:
        """Save the open and closing studies and the completed versions (DB writer)."""
        with self._lock:
            open_docs = [asdict(s) for s in [*self._open.values(), *self._closing.values()]]
            versions = [
                {"uid": u, "version": v, "completed": self._completed.get(u, 0.0)}
                for u, v in self._versions.items()
            ]
        for name, docs in (("open", open_docs), ("versions", versions)):
            table = self._db.table(name)
            table.truncate()
            table.insert_multiple(docs)
        flush_database(self._db)


def _parse(doc: dict) -> OpenStudy:
    """A saved study; files were a list (with a byte total) before they had sizes."""
    files = doc.get("files", {})
    if isinstance(files, list):
        each = int(doc.get("bytes", 0)) // max(1, len(files))
        files = dict.fromkeys(files, each)
    fields = {
        k: doc[k]
        for k in ("uid", "first", "last", "facility", "version", "closing")
        if k in doc
    }
    return OpenStudy(files=dict(files), **fields)


class Completion(Background):
    """The thread that completes studies, zips them and queues the zips."""

    NAME = "dicomtui-studies"

    def __init__(
        self,
        tracker: StudyTracker,
        queue: UploadQueue,
        settings: Callable[[], Resolved],
        storage: StorageWriter,
        zip_dir: Callable[[], Path],
        durable: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__()
        self.tracker, self.queue, self._settings = tracker, queue, settings
        self.storage = storage  # the zips it makes count as storage used
        self.storage_root = storage.root
        self._zip_dir = zip_dir
        self._durable = durable  # every acknowledged instance saved (a checkpoint)
        self._retry_at: dict[tuple[str, int], float] = {}  # a failed zip waits a while

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(1.0):
            self.tick()

    def tick(self) -> None:
        s = self._settings()
        now = time.monotonic()
        due = [
            study
            for study in self.tracker.due(s.study_timeout, s.study_max_age)
            if self._retry_at.get((study.uid, study.version), 0.0) <= now
        ]
        if not due or not self._durable():
            return  # the closing studies are tried again on the next tick
        for study in due:
            try:
                self._complete(study, s)
            except Exception as exc:  # disk full, ... : say so, keep the thread alive
                LOG.error(
                    "study %s complete, but zipping it failed: %s (its files are "
                    "kept; tried again in %d s)",
                    study.uid,
                    exc,
                    RETRY_S,
                )
                self._retry_at[(study.uid, study.version)] = now + RETRY_S
                continue
            self._retry_at.pop((study.uid, study.version), None)
            self.tracker.complete(study)

    def _complete(self, study: OpenStudy, s) -> None:
        if not s.zip_studies:
            LOG.info(
                "study %s complete (version %d): %d instance(s), %d bytes",
                study.uid,
                study.version,
                len(study.files),
                study.bytes,
            )
            return
        if s.auto_upload and self.queue.of_study(study.uid, study.version):
            return  # zipped and queued before a crash: done already
        LOG.info(
            "study %s complete (version %d): %d instance(s), %d bytes",
            study.uid,
            study.version,
            len(study.files),
            study.bytes,
        )
        name = (
            f"{study.uid}.zip"
            if study.version == 1
            else f"{study.uid}.v{study.version}.zip"
        )
        target = self._zip_dir() / name
        replaced = target.stat().st_size if target.exists() else 0
        try:
            done = zip_files(
                [self.storage_root / f for f in study.files],
                self.storage_root,
                target,
                0o640 if s.group_read else 0o600,
            )
        except NothingToZip as exc:
            LOG.warning(
                "study %s version %d: no zip made: %s", study.uid, study.version, exc
            )
            return
        self.storage.outside(done.size - replaced)
        if done.missing:
            LOG.warning(
                "study %s: %d file(s) were gone before zipping",
                study.uid,
                len(done.missing),
            )
        LOG.info("study %s zipped: %s (%d bytes)", study.uid, target, done.size)
        if s.auto_upload:
            item = self.queue.add(
                target, done.size, study.uid, "auto", study.version, done.files
            )
            LOG.info("study %s queued for upload as %d", study.uid, item.id)
