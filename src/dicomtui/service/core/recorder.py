"""The Recorder: where every transaction goes, the transaction log and the live stream.

Components build typed records (core/records.py) and hand them here. A record is in
the log (memory) the moment it is recorded, so a query right after a store sees it;
the one DB writer thread saves the log on its tick, and the journal covers the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter
from dicomtui.service.core.events import EventRing
from dicomtui.service.core.records import Transaction

LOG = logging.getLogger("dicomtui.service")
RECOVERED = "after an unclean stop"  # the "recovered" field of a replayed record


class Recorder:
    """Owns the transaction log; safe to call from any thread."""

    def __init__(self, log_dir: Path, writer: DBWriter, ring: EventRing) -> None:
        self.log = TransactionLog(log_dir)
        self._writer, self._ring = writer, ring
        self._observers: list[Callable[[Transaction], None]] = []
        writer.register("tx", lambda batch: None, self.log.flush)  # items: "save me"

    def observe(self, observer: Callable[[Transaction], None]) -> None:
        """`observer` hears every record from now on (metrics); never a replayed one."""
        self._observers.append(observer)

    def record(self, tx: Transaction, persist: bool = True) -> dict:
        """Log `tx` (unless `persist` is off: a good store with log_instances off) and
        show it live; returns the record as saved."""
        record = tx.to_dict()
        if persist:
            (record,) = self.log.append_many([record]) or [record]
            self._writer.put("tx", None)
        self._ring.emit(
            "transaction", "WARNING" if tx.is_problem else "INFO", tx.summary(), record
        )
        for observer in self._observers:
            try:
                observer(tx)
            except Exception:  # a count is not worth a failed store
                LOG.exception("a transaction observer failed")
        return record

    def expire(self, days: int) -> None:
        """log_retention_days: the oldest log files go (0 keeps them all)."""
        if days > 0:
            gone = self.log.expire(days)
            if gone:
                LOG.info(
                    "transaction log: %d file(s) older than %d days deleted", gone, days
                )

    def recover(self, records: list[dict]) -> int:
        """Journaled records an unclean stop kept from the log, each once (by its
        "jid"); marked as recovered. Returns how many were missing."""
        present = self.log.recent_values("jid")
        missing = [
            {**r, "recovered": RECOVERED} for r in records if r.get("jid") not in present
        ]
        if missing:
            self.log.append_many(missing)
            self._writer.put("tx", None)
        return len(missing)
