"""The durable upload queue: `<data-dir>/uploads.json`, one document per zip.

Every state change is saved (atomically) before it takes effect, under one lock: an
item is `uploading` on disk before a byte goes out and `done` on disk as soon as the
server said 2xx, so a crash can repeat an unfinished upload but never one that
succeeded. Only the bytes sent by the current attempt live in memory.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dicomtui.db.state import open_or_set_aside
from dicomtui.db.storage import flush_database
from dicomtui.models import UploadItem, UploadSummary
from dicomtui.service.core.events import now_iso

TABLE = "uploads"
INTERRUPTED = "interrupted by a restart while uploading; queued again"

LOST_UPLOADS = (
    "uploads it listed are no longer queued; queue their zips again by hand "
    "(`dicomtui upload ZIP`; the zips are in zip_dir)"
)


class QueueError(ValueError):
    """A change the item's state does not allow; the message says why."""


class QueueMissing(LookupError):
    """No item with that id."""


class UploadQueue:
    """Items in memory, saved whole on each change (the queue is small)."""

    def __init__(self, path: Path) -> None:
        self._db, self.warning = open_or_set_aside(path, LOST_UPLOADS)
        self._lock = threading.RLock()
        self._items: dict[int, UploadItem] = {}
        self._files: dict[int, list[str]] = {}  # the study files to clean up after 2xx
        self._sent: dict[int, int] = {}
        self.wake = threading.Event()
        requeued = False
        for doc in self._db.table(TABLE).all():
            files = list(doc.get("files", []))
            item = _item(doc.doc_id, doc)
            if item.state == "uploading":
                item, requeued = (
                    replace(
                        item, state="queued", next_attempt=None, last_error=INTERRUPTED
                    ),
                    True,
                )
            self._items[item.id], self._files[item.id] = item, files
        if requeued:
            self._save_all()

    # -- adding and changing ------------------------------------------------------------
    def add(
        self,
        path: Path,
        size: int,
        study_uid: str = "",
        source: str = "auto",
        version: int = 1,
        files: list[str] | None = None,
    ) -> UploadItem:
        with self._lock:
            doc = {
                "path": str(path),
                "study_uid": study_uid,
                "size": size,
                "state": "queued",
                "attempts": 0,
                "next_attempt": None,
                "last_error": "",
                "created": now_iso(),
                "finished": None,
                "source": source,
                "version": version,
                "files": list(files or []),
            }
            doc_id = self._db.table(TABLE).insert(doc)
            self._flush_or_undo(doc_id)
            item = _item(doc_id, doc)
            self._items[doc_id], self._files[doc_id] = item, list(files or [])
        self.wake.set()
        return item

    def update(self, item_id: int, **changes) -> UploadItem:
        """Save the changes first; only then does the item in memory change."""
        with self._lock:
            item = self.get(item_id)
            changed = replace(item, **changes)
            doc = {
                k: v for k, v in asdict(changed).items() if k not in ("id", "bytes_sent")
            }
            self._db.table(TABLE).update(doc, doc_ids=[item_id])
            flush_database(self._db)
            self._items[item_id] = changed
            return changed

    def retry(self, item_id: int) -> UploadItem:
        with self._lock:
            item = self.get(item_id)
            if item.state not in ("failed", "cancelled"):
                raise QueueError(
                    f"upload {item_id} is {item.state}; only failed or "
                    "cancelled uploads can be retried"
                )
            item = self.update(
                item_id, state="queued", attempts=0, next_attempt=None, finished=None
            )
        self.wake.set()
        return item

    def cancel(self, item_id: int) -> UploadItem:
        with self._lock:
            item = self.get(item_id)
            if item.state in ("done", "cancelled"):
                raise QueueError(f"upload {item_id} is already {item.state}")
            return self.update(
                item_id, state="cancelled", next_attempt=None, finished=now_iso()
            )

    # -- reading --------------------------------------------------------------------
    def get(self, item_id: int) -> UploadItem:
        item = self._items.get(item_id)
        if item is None:
            raise QueueMissing(f"no upload with id {item_id} (see `dicomtui uploads`)")
        return replace(item, bytes_sent=self._sent.get(item_id, 0))

    def files_of(self, item_id: int) -> list[str]:
        return list(self._files.get(item_id, []))

    def of_study(self, study_uid: str, version: int) -> UploadItem | None:
        """The automatic upload of a study's version, if queued already."""
        with self._lock:
            for item in self._items.values():
                if (item.study_uid, item.version, item.source) == (
                    study_uid,
                    version,
                    "auto",
                ):
                    return self.get(item.id)
        return None

    def all(self) -> list[UploadItem]:
        with self._lock:
            return [self.get(i) for i in sorted(self._items, reverse=True)]

    def next_due(self) -> tuple[UploadItem | None, float]:
        """The oldest queued item that is due, else None and seconds until one is."""
        now = datetime.now(timezone.utc)
        wait = 3600.0
        with self._lock:
            for item in sorted(self._items.values(), key=lambda i: i.id):
                if item.state != "queued":
                    continue
                due = _parse(item.next_attempt)
                if due is None or due <= now:
                    return self.get(item.id), 0.0
                wait = min(wait, (due - now).total_seconds())
        return None, wait

    def summary(self) -> UploadSummary:
        counts = UploadSummary()
        with self._lock:
            for item in self._items.values():
                if hasattr(counts, item.state):
                    setattr(counts, item.state, getattr(counts, item.state) + 1)
        return counts

    def set_sent(self, item_id: int, sent: int) -> None:
        self._sent[item_id] = sent

    # -- saving -----------------------------------------------------------------------
    def _flush_or_undo(self, doc_id: int) -> None:
        try:
            flush_database(self._db)
        except BaseException:
            self._db.table(TABLE).remove(doc_ids=[doc_id])
            raise

    def _save_all(self) -> None:
        for item in self._items.values():
            doc = {k: v for k, v in asdict(item).items() if k not in ("id", "bytes_sent")}
            self._db.table(TABLE).update(doc, doc_ids=[item.id])
        flush_database(self._db)

    def close(self) -> None:
        with self._lock:
            flush_database(self._db)


def _item(doc_id: int, doc: dict[str, Any]) -> UploadItem:
    """The item a saved document describes (its file list is kept apart)."""
    fields = {k: v for k, v in doc.items() if k in UploadItem.__dataclass_fields__}
    return UploadItem(**{**fields, "id": doc_id, "bytes_sent": 0})


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None
