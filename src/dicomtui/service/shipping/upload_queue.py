"""The durable upload queue: what waits in `uploads.json`, what ended in a history.

Every state change is saved (atomically) before it takes effect, under one lock: an
item is `uploading` on disk before a byte goes out and `done` on disk as soon as the
server said 2xx, so a crash can repeat an unfinished upload but never one that
succeeded. `uploads.json` holds only the items still in play (queued, uploading,
failed), so a change costs the same after 10,000 uploads as after 10; an item that
ends (done, cancelled) moves to `uploads-history.jsonl`, one line each, kept for
history_days. Each zip's list of study files, with what each file was when zipped,
is a file of its own under `uploads/`: cleanup removes only files still as zipped.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from dicomtui.db.state import open_or_set_aside
from dicomtui.db.storage import atomic_write, flush_database, fsync_dir
from dicomtui.models import UploadItem, UploadSummary
from dicomtui.service.core.events import now_iso

TABLE, META = "uploads", "meta"
ENDED = ("done", "cancelled")
INTERRUPTED = "interrupted by a restart while uploading; queued again"
LOST_UPLOADS = (
    "uploads it listed are no longer queued; queue their zips again by hand "
    "(`dicomtui upload ZIP`; the zips are in zip_dir)"
)
Fingerprints = dict[str, list[int]]  # relative path -> [size, mtime_ns, inode]


class QueueError(ValueError):
    """A change the item's state does not allow; the message says why."""


class QueueMissing(LookupError):
    """No item with that id."""


class UploadQueue:
    """Items in memory; the ones in play saved whole on each change, ended ones
    appended to the history."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db, self.warning = open_or_set_aside(path, LOST_UPLOADS)
        self._history = self.path.with_name("uploads-history.jsonl")
        self._manifests = self.path.with_name("uploads")
        self._lock = threading.RLock()
        self._items: dict[int, UploadItem] = {}
        self._sent: dict[int, int] = {}
        self.wake = threading.Event()
        self._load_history()
        changed = self._load_active()
        meta = self._db.table(META).all()
        self._next_id = max(
            [meta[0]["next_id"] if meta else 1, *[i + 1 for i in self._items]]
        )
        if changed:
            self._save_active()

    def _load_active(self) -> bool:
        """The items in play (True if some must be saved again: requeued, migrated)."""
        changed = False
        for doc in self._db.table(TABLE).all():
            item = _item(int(doc["id"]) if "id" in doc else doc.doc_id, doc)
            if item.state == "uploading":
                item = replace(
                    item, state="queued", next_attempt=None, last_error=INTERRUPTED
                )
                changed = True
            if isinstance(doc.get("files"), list):  # saved by an older version:
                # no fingerprints, so cleanup keeps these files
                self._write_manifest(item.id, dict.fromkeys(doc["files"], []))
                changed = True
            if item.state in ENDED and item.id not in self._items:
                self._append_history(item)
            self._items[item.id] = item
        return changed

    def _load_history(self) -> None:
        try:
            raw = self._history.read_bytes()
        except FileNotFoundError:
            return
        for line in raw.splitlines():
            try:
                doc = orjson.loads(line)
                self._items[int(doc["id"])] = _item(int(doc["id"]), doc)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line torn by a crash: that item is simply not listed

    # -- adding and changing ------------------------------------------------------------
    def add(
        self,
        path: Path,
        size: int,
        study_uid: str = "",
        source: str = "auto",
        version: int = 1,
        files: Fingerprints | None = None,
    ) -> UploadItem:
        """Queue a zip; `files`: the study files in it, as they were when zipped."""
        with self._lock:
            item = UploadItem(
                id=self._next_id,
                path=str(path),
                study_uid=study_uid,
                size=size,
                created=now_iso(),
                source=source,
                version=version,
            )
            self._write_manifest(item.id, files or {})
            self._save_active({**self._items, item.id: item}, self._next_id + 1)
            self._items[item.id] = item
            self._next_id += 1
        self.wake.set()
        return item

    def update(self, item_id: int, **changes) -> UploadItem:
        """Save the changes first; only then does the item in memory change."""
        with self._lock:
            changed = replace(self.get(item_id), **changes)
            if changed.state in ENDED:
                self._append_history(changed)
            self._save_active({**self._items, item_id: changed})
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
            if item.state in ENDED:
                raise QueueError(f"upload {item_id} is already {item.state}")
            return self.update(
                item_id, state="cancelled", next_attempt=None, finished=now_iso()
            )

    def expire(self, days: float) -> list[UploadItem]:
        """Items that ended (or failed) over `days` ago leave the queue and the
        history, with their file lists; they are returned (their zips are the
        caller's to remove)."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
        with self._lock:
            old = [
                i
                for i in self._items.values()
                if i.state in ENDED + ("failed",)
                and i.finished
                and _utc(i.finished) < cutoff
            ]
            for item in old:
                del self._items[item.id]
            self._rewrite_history()
            self._save_active()
        for item in old:
            self.manifest_path(item.id).unlink(missing_ok=True)
        return old

    # -- reading --------------------------------------------------------------------
    def get(self, item_id: int) -> UploadItem:
        item = self._items.get(item_id)
        if item is None:
            raise QueueMissing(f"no upload with id {item_id} (see `dicomtui uploads`)")
        return replace(item, bytes_sent=self._sent.get(item_id, 0))

    def files_of(self, item_id: int) -> Fingerprints:
        """The study files in an item's zip, each as it was when zipped."""
        try:
            files = orjson.loads(self.manifest_path(item_id).read_bytes())["files"]
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError):
            return {}
        return files if isinstance(files, dict) else {}

    def manifest_path(self, item_id: int) -> Path:
        return self._manifests / f"{item_id}.json"

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
    def _save_active(
        self, items: dict[int, UploadItem] | None = None, next_id: int | None = None
    ) -> None:
        """uploads.json: the items still in play, and the next id (caller locks)."""
        items = self._items if items is None else items
        table = self._db.table(TABLE)
        table.truncate()
        table.insert_multiple(_doc(i) for i in items.values() if i.state not in ENDED)
        meta = self._db.table(META)
        meta.truncate()
        meta.insert({"next_id": self._next_id if next_id is None else next_id})
        flush_database(self._db)

    def _append_history(self, item: UploadItem) -> None:
        with open(self._history, "ab") as fh:
            fh.write(orjson.dumps(_doc(item)) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _rewrite_history(self) -> None:
        ended = sorted(
            (i for i in self._items.values() if i.state in ENDED), key=lambda i: i.id
        )
        atomic_write(self._history, b"".join(orjson.dumps(_doc(i)) + b"\n" for i in ended))

    def _write_manifest(self, item_id: int, files: Fingerprints) -> None:
        self._manifests.mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.manifest_path(item_id), orjson.dumps({"files": files}))
        fsync_dir(self._manifests)

    def close(self) -> None:
        with self._lock:
            flush_database(self._db)


def _doc(item: UploadItem) -> dict[str, Any]:
    return {k: v for k, v in asdict(item).items() if k != "bytes_sent"}


def _item(item_id: int, doc: dict[str, Any]) -> UploadItem:
    """The item a saved document describes."""
    fields = {k: v for k, v in doc.items() if k in UploadItem.__dataclass_fields__}
    return UploadItem(**{**fields, "id": item_id, "bytes_sent": 0})


def _utc(iso: str) -> str:
    moment = _parse(iso)
    return moment.astimezone(timezone.utc).isoformat() if moment else ""


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
