"""The Recorder: where every transaction goes, the transaction log and the live stream.

Components build typed records (core/records.py) and hand them here; the log is written
by the one DB writer thread, the event ring feeds the front ends at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter
from dicomtui.service.core.events import EventRing
from dicomtui.service.core.records import Transaction

LOG = logging.getLogger("dicomtui.service")


class Recorder:
    """Owns the transaction log; safe to call from any thread."""

    def __init__(self, log_dir: Path, writer: DBWriter, ring: EventRing) -> None:
        self.log = TransactionLog(log_dir)
        self._writer, self._ring = writer, ring
        writer.register("tx", self.log.append_many, self.log.flush)

    def record(self, tx: Transaction, persist: bool = True) -> dict:
        """Log `tx` (unless `persist` is off: a good store with log_instances off) and
        show it live; returns the record as saved."""
        record = tx.to_dict()
        if persist:
            self._writer.put("tx", record)
        self._ring.emit(
            "transaction", "WARNING" if tx.is_problem else "INFO", tx.summary(), record
        )
        return record
