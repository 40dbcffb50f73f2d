"""Study completion: which files each receiving study got, and when it is complete.

A study is complete when no instance came for `study_timeout` seconds, or at the latest
`study_max_age` after its first. Then it is zipped (zip_studies) and queued for upload
(auto_upload). A late instance opens it again as version 2, 3, ...: a new zip with what
came since, never merged silently into one already sent.

The open studies are saved to `<data-dir>/studies.json` once a second by the completion
thread, so after a restart they complete `study_timeout` after the service is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dicomtui.db.storage import flush_database, open_database
from dicomtui.service.core.background import Background
from dicomtui.service.shipping.upload_queue import UploadQueue
from dicomtui.service.shipping.zipper import zip_files
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.studies")


@dataclass
class OpenStudy:
    uid: str
    first: float  # epoch seconds
    last: float
    files: list[str] = field(default_factory=list)  # relative to the storage root
    bytes: int = 0
    facility: str = ""
    version: int = 1


class StudyTracker:
    """Handlers report stored files; the completion thread takes complete studies."""

    def __init__(self, path: Path) -> None:
        self._db, self.warning = open_database(path)
        self._lock = threading.Lock()
        self._open: dict[str, OpenStudy] = {}
        self._seen: dict[str, set[str]] = {}
        self._versions: dict[str, int] = {}
        self._dirty = False
        now = time.time()
        for doc in self._db.table("open").all():
            study = OpenStudy(**{k: doc[k] for k in OpenStudy.__dataclass_fields__})
            study.last = now  # the timeout counts from the restart
            self._open[study.uid] = study
            self._seen[study.uid] = set(study.files)
        for doc in self._db.table("versions").all():
            self._versions[doc["uid"]] = int(doc["version"])

    def stored(self, uid: str, relative: str, size: int, facility: str) -> None:
        now = time.time()
        with self._lock:
            study = self._open.get(uid)
            if study is None:
                version = self._versions.get(uid, 0) + 1
                study = self._open[uid] = OpenStudy(
                    uid, now, now, facility=facility, version=version
                )
                self._seen[uid] = set()
            if relative not in self._seen[uid]:
                study.files.append(relative)
                self._seen[uid].add(relative)
            study.last, study.bytes = now, study.bytes + size
            self._dirty = True

    def open_uids(self) -> set[str]:
        """Studies still receiving (not complete yet)."""
        with self._lock:
            return set(self._open)

    def due(self, timeout: float, max_age: float) -> list[OpenStudy]:
        """Take the studies that are complete now (each is handed out once)."""
        now = time.time()
        with self._lock:
            done = [
                s
                for s in self._open.values()
                if now - s.last >= timeout or now - s.first >= max_age
            ]
            for study in done:
                del self._open[study.uid]
                self._seen.pop(study.uid, None)
                self._versions[study.uid] = study.version
            self._dirty |= bool(done)
        return done

    def save(self) -> None:
        """Save the open studies and completed versions if anything changed."""
        with self._lock:
            if not self._dirty:
                return
            open_docs = [asdict(s) for s in self._open.values()]
            versions = [{"uid": u, "version": v} for u, v in self._versions.items()]
            self._dirty = False
        for name, docs in (("open", open_docs), ("versions", versions)):
            table = self._db.table(name)
            table.truncate()
            table.insert_multiple(docs)
        flush_database(self._db)


class Completion(Background):
    """The thread that completes studies, zips them and queues the zips."""

    NAME = "dicomtui-studies"

    def __init__(
        self,
        tracker: StudyTracker,
        queue: UploadQueue,
        settings: Callable[[], Resolved],
        storage_root: Path,
        zip_dir: Callable[[], Path],
    ) -> None:
        super().__init__()
        self.tracker, self.queue, self._settings = tracker, queue, settings
        self.storage_root = Path(storage_root)
        self._zip_dir = zip_dir

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.tracker.save()

    def _run(self) -> None:
        while not self._stopping.wait(1.0):
            self.tick()

    def tick(self) -> None:
        s = self._settings()
        for study in self.tracker.due(s.study_timeout, s.study_max_age):
            try:
                self._complete(study, s)
            except Exception as exc:  # disk full, ... : say so, keep the thread alive
                LOG.error(
                    "study %s complete, but zipping it failed: %s (its files are "
                    "kept; `dicomtui upload FOLDER` sends them by hand)",
                    study.uid,
                    exc,
                )
        try:
            self.tracker.save()
        except OSError as exc:
            LOG.error("could not save the open studies: %s", exc)

    def _complete(self, study: OpenStudy, s) -> None:
        LOG.info(
            "study %s complete (version %d): %d instance(s), %d bytes",
            study.uid,
            study.version,
            len(study.files),
            study.bytes,
        )
        if not s.zip_studies:
            return
        name = (
            f"{study.uid}.zip"
            if study.version == 1
            else f"{study.uid}.v{study.version}.zip"
        )
        target = self._zip_dir() / name
        size, missing = zip_files(
            [self.storage_root / f for f in study.files], self.storage_root, target
        )
        if missing:
            LOG.warning(
                "study %s: %d file(s) were gone before zipping", study.uid, len(missing)
            )
        LOG.info("study %s zipped: %s (%d bytes)", study.uid, target, size)
        if s.auto_upload:
            item = self.queue.add(
                target, size, study.uid, "auto", study.version, study.files
            )
            LOG.info("study %s queued for upload as %d", study.uid, item.id)
