"""The upload thread: takes due items from the queue, one at a time, and settles each.

Retries back off exponentially with jitter (retry_delay, doubled per attempt, x0.5-1.5),
or wait what the server's Retry-After says. Files are cleaned up only after a 2xx has
been saved as `done`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dicomtui.service.archive.retention import prune_empty
from dicomtui.service.core.background import Background
from dicomtui.service.core.events import now_iso
from dicomtui.service.receiving.store import StorageWriter
from dicomtui.service.shipping.upload_client import Outcome, UploadClient
from dicomtui.service.shipping.upload_queue import QueueMissing, UploadQueue
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.uploads")


class UploadWorker(Background):
    """One daemon thread; start() and stop() follow the receiver."""

    NAME = "dicomtui-uploads"

    def __init__(
        self,
        queue: UploadQueue,
        settings: Callable[[], Resolved],
        storage: StorageWriter,
        removed: Callable[[str], None] = lambda study_uid: None,
    ) -> None:
        super().__init__()
        self._removed = removed  # told the study whose files cleanup removed
        self.queue, self._settings = queue, settings
        self.client = UploadClient(settings)
        self._storage = storage  # the owner of stored files: it removes them

    def _wake(self) -> None:
        self.queue.wake.set()

    def _interrupt(self) -> None:
        self.client.abort()  # a request in progress ends now; the item is queued again

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            item, wait = self.queue.next_due()
            if item is None:
                self.queue.wake.wait(min(wait, 1.0))
                self.queue.wake.clear()
                continue
            try:
                self._attempt(item.id, stopping)
            except QueueMissing:
                continue
            except Exception:  # never let the thread die: log and go on
                LOG.exception("upload %d failed unexpectedly", item.id)
                self._settle_failed(item.id, "internal error (see the log)")

    def _attempt(self, item_id: int, stopping: threading.Event) -> None:
        item = self.queue.get(item_id)
        path = Path(item.path)
        if not path.is_file():
            self._settle_failed(item_id, f"{path} is missing")
            return
        item = self.queue.update(
            item_id, state="uploading", attempts=item.attempts + 1, next_attempt=None
        )
        sent = [0]

        def progress(n: int) -> None:
            sent[0] += n
            self.queue.set_sent(item_id, sent[0])

        def cancelled() -> bool:
            return stopping.is_set() or self.queue.get(item_id).state == "cancelled"

        self.queue.set_sent(item_id, 0)
        started = time.monotonic()
        outcome = self.client.send(
            path, progress, cancelled, key=f"dicomtui-{item.id}-{item.created}"
        )
        self._settle(item_id, outcome, time.monotonic() - started)

    def _settle(self, item_id: int, outcome: Outcome, seconds: float) -> None:
        item = self.queue.get(item_id)
        if item.state == "cancelled":
            LOG.warning("upload %d (%s) cancelled", item_id, Path(item.path).name)
            return
        if outcome.kind == "cancelled":  # the service is stopping: try again later
            self.queue.update(
                item_id,
                state="queued",
                attempts=max(0, item.attempts - 1),
                last_error="interrupted: the service stopped",
            )
            return
        if outcome.kind == "done":
            self.queue.update(item_id, state="done", finished=now_iso(), last_error="")
            LOG.info(
                "upload %d (%s, %d bytes) done: %s in %.1f s",
                item_id,
                Path(item.path).name,
                item.size,
                outcome.status,
                seconds,
            )
            self._clean_up(item_id)
            return
        s = self._settings()
        if outcome.kind == "retry" and item.attempts <= s.max_retries:
            delay = outcome.retry_after
            if delay is None:
                delay = s.retry_delay * 2 ** (item.attempts - 1) * random.uniform(0.5, 1.5)
            due = datetime.now(timezone.utc) + timedelta(seconds=delay)
            self.queue.update(
                item_id,
                state="queued",
                last_error=outcome.message,
                next_attempt=due.isoformat(),
            )
            LOG.warning(
                "upload %d (%s) attempt %d: %s; retrying in %.0f s",
                item_id,
                Path(item.path).name,
                item.attempts,
                outcome.message,
                delay,
            )
            self.queue.wake.set()
            return
        gave_up = (
            f" (gave up after {item.attempts} attempts)" if outcome.kind == "retry" else ""
        )
        self._settle_failed(item_id, outcome.message + gave_up)

    def _settle_failed(self, item_id: int, message: str) -> None:
        item = self.queue.update(
            item_id,
            state="failed",
            last_error=message,
            finished=now_iso(),
            next_attempt=None,
        )
        LOG.error("upload %d (%s) failed: %s", item_id, Path(item.path).name, message)

    def _clean_up(self, item_id: int) -> None:
        """After a saved 2xx only: the zip, then the study files in it that are still
        as they were zipped (one received again since is acknowledged: kept)."""
        if not self._settings().cleanup_after_upload:
            return
        item = self.queue.get(item_id)
        files = self.queue.files_of(item_id)
        removed = kept = 0
        for relative, fingerprint in files.items():
            if self._storage.remove_if_unchanged(relative, fingerprint):
                removed += 1
                prune_empty((self._storage.root / relative).parent, self._storage.root)
            elif (self._storage.root / relative).exists():
                kept += 1
        Path(item.path).unlink(missing_ok=True)
        if item.study_uid:
            self._removed(item.study_uid)
        LOG.info(
            "upload %d: removed %s and %d stored file(s) (cleanup_after_upload)%s",
            item_id,
            Path(item.path).name,
            removed,
            f"; kept {kept} received again since zipped" if kept else "",
        )
