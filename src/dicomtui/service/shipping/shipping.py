"""Shipping: completed studies, their zips, and the upload queue.

The completion and upload threads run while the receiver runs; the queue is on disk,
so a CLI verb without a running service can list it or add to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dicomtui.db.writer import DBWriter
from dicomtui.models import UploadItem, UploadSummary
from dicomtui.service.core.records import StoredInstance
from dicomtui.service.receiving.store import StorageWriter
from dicomtui.service.shipping.studies import Completion, StudyTracker
from dicomtui.service.shipping.upload_queue import QueueError, QueueMissing, UploadQueue
from dicomtui.service.shipping.upload_worker import UploadWorker
from dicomtui.service.shipping.zipper import NothingToZip, zip_folder
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.uploads")


class ShippingError(ValueError):
    """A request about uploads that cannot be done as asked; the message says why."""


class Shipping:
    """Owns the study tracker, the upload queue and the two threads that serve them."""

    def __init__(
        self,
        data_dir: Path,
        writer: DBWriter,
        settings: Callable[[], Resolved],
        storage: StorageWriter,
        files_removed: Callable[[str], None],
        durable: Callable[[], bool],
    ) -> None:
        self.data_dir, self._settings = data_dir, settings
        self.studies = StudyTracker(
            data_dir / "studies.json", lambda: writer.put("studies", None)
        )
        writer.register("studies", lambda batch: None, self.studies.save)  # "save me"
        self.uploads = UploadQueue(data_dir / "uploads.json")
        self.warnings = [w for w in (self.studies.warning, self.uploads.warning) if w]
        # durable: a journal checkpoint, so a completed study's instances never
        # come back from a replay to open it again
        self.completion = Completion(
            self.studies, self.uploads, settings, storage.root, self.zip_dir, durable
        )
        # files_removed: cleanup_after_upload removed a study's files (the index hears)
        self.upload_worker = UploadWorker(self.uploads, settings, storage, files_removed)

    @property
    def settings(self) -> Resolved:
        return self._settings()

    def start(self) -> None:
        self.completion.start()
        self.upload_worker.start()

    def stop(self) -> None:
        self.completion.stop()
        self.upload_worker.stop()

    def close(self) -> None:
        self.uploads.close()

    def zip_dir(self) -> Path:
        configured = self.settings.zip_dir
        return Path(configured).expanduser() if configured else self.data_dir / "zips"

    def instance_stored(self, stored: StoredInstance) -> None:
        """Only while zip_studies is on (a study is zipped whole); a replayed instance
        already listed is not counted twice."""
        uid = stored.ident.study_uid
        if uid and stored.path and self.settings.zip_studies:
            self.studies.stored(uid, stored.path, stored.size, stored.facility)

    # -- what the archive asks ---------------------------------------------------------
    def receiving(self) -> set[str]:
        """Studies still open for zipping."""
        return self.studies.open_uids()

    def upload_states(self) -> dict[str, tuple[str, int]]:
        """The newest upload of each study: (state, upload id)."""
        newest: dict[str, tuple[str, int]] = {}
        for item in self.uploads.all():  # newest first
            if item.study_uid and item.study_uid not in newest:
                newest[item.study_uid] = (item.state, item.id)
        return newest

    def waiting(self) -> dict[str, str]:
        """Studies whose zip still waits for upload, with why (cleanup keeps them)."""
        keep: dict[str, str] = {}
        for item in self.uploads.all():
            if item.study_uid and item.state in ("queued", "uploading", "failed"):
                keep.setdefault(
                    item.study_uid, f"waiting for upload ({item.state}, upload {item.id})"
                )
        return keep

    def summary(self) -> UploadSummary:
        return self.uploads.summary()

    # -- front ends ----------------------------------------------------------------------
    def upload_list(self) -> list[UploadItem]:
        return self.uploads.all()

    def upload_path(self, path: str) -> UploadItem:
        """Queue a zip as it is, or zip a folder first (into zip_dir)."""
        source = Path(path).expanduser()
        if not source.is_absolute():
            raise ShippingError(f"give an absolute path (got {path!r})")
        if source.is_file():
            if source.suffix.lower() != ".zip":
                raise ShippingError(f"{source} is not a .zip; give a zip or a study folder")
            item = self.uploads.add(source, source.stat().st_size, source="manual")
        elif source.is_dir():
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name) or "upload"
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
            target = self.zip_dir() / f"{name}-{stamp}.zip"
            try:
                size = zip_folder(source, target).size
            except NothingToZip:
                raise ShippingError(f"{source} has no files to upload") from None
            except OSError as exc:
                raise ShippingError(f"cannot zip {source}: {exc.strerror or exc}") from None
            item = self.uploads.add(target, size, source="manual")
        else:
            raise ShippingError(f"{source} does not exist")
        LOG.info("upload %d queued by hand: %s (%d bytes)", item.id, item.path, item.size)
        return item

    def retry_upload(self, item_id: int) -> UploadItem:
        return self.uploads.retry(item_id)

    def cancel_upload(self, item_id: int) -> UploadItem:
        item = self.uploads.cancel(item_id)
        LOG.warning("upload %d cancelled", item_id)
        return item


__all__ = ["QueueError", "QueueMissing", "Shipping", "ShippingError"]
