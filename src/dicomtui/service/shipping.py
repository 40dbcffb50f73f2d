"""Engine mixin: completed studies, their zips, and the upload queue.

The completion and upload threads run while the receiver runs; the queue is on disk,
so a CLI verb without a running service can list it or add to it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

from dicomtui.models import UploadItem
from dicomtui.service.studies import Completion, StudyTracker
from dicomtui.service.upload_queue import QueueError, QueueMissing, UploadQueue
from dicomtui.service.upload_worker import UploadWorker
from dicomtui.service.zipper import zip_folder

LOG = logging.getLogger("dicomtui.uploads")


class ShippingError(ValueError):
    """A request about uploads that cannot be done as asked; the message says why."""


class Shipping:
    """Mixed into Engine, which provides settings, data_dir, storage and _warn."""

    def _open_shipping(self) -> None:
        self.studies = StudyTracker(self.data_dir / "studies.json")
        self.uploads = UploadQueue(self.data_dir / "uploads.json")
        for warning in (self.studies.warning, self.uploads.warning):
            self._warn(warning)
        settings = lambda: self.settings  # noqa: E731 (always the current values)
        self.completion = Completion(self.studies, self.uploads, settings,
                                     self.storage.root, self.zip_dir)
        self.upload_worker = UploadWorker(self.uploads, settings, self.storage.root,
                                          self.storage.release, self.study_files_removed)

    def _start_shipping(self) -> None:
        self.completion.start()
        self.upload_worker.start()

    def _stop_shipping(self) -> None:
        self.completion.stop()
        self.upload_worker.stop()

    def _close_shipping(self) -> None:
        self.studies.save()
        self.uploads.close()

    def zip_dir(self) -> Path:
        configured = self.settings.zip_dir
        return Path(configured).expanduser() if configured else self.data_dir / "zips"

    def study_stored(self, study_uid: str, relative: str, size: int, facility: str) -> None:
        """From record_store: only while zip_studies is on (a study is zipped whole)."""
        if study_uid and relative and self.settings.zip_studies:
            self.studies.stored(study_uid, relative, size, facility)

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
                size, _ = zip_folder(source, target)
            except OSError as exc:
                raise ShippingError(f"cannot zip {source}: {exc.strerror or exc}") from None
            if size <= 22:  # an empty zip is its end record alone
                target.unlink(missing_ok=True)
                raise ShippingError(f"{source} has no files to upload")
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
