"""The transaction log, sharded by record count so one record costs the same at any size.

Each shard is a TinyDB file of at most `shard_size` records; only the newest is open and
written, closed shards are read-only. Ids are global and increase across shards.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from dicomtui.db.storage import CorruptDatabase, check_file, flush_database, move_aside
from dicomtui.db.storage import open_database

LOG = logging.getLogger("dicomtui.db")
TABLE = "transactions"
_SHARD = re.compile(r"tx-(\d{6})\.json")


@dataclass
class _Summary:
    """What a closed shard holds, so queries can skip it without reading it."""

    first_id: int
    last_id: int
    last_time: str


class TransactionLog:
    """Append from the writer thread; query from any thread."""

    def __init__(self, log_dir: Path, *, shard_size: int = 10_000) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self._lock = threading.Lock()
        self._summaries: dict[Path, _Summary | None] = {}
        self._changed = False
        shards = self._shard_paths()
        self._number = _number(shards[-1]) if shards else 1
        self._open_current()
        self._next_id = self._last_id_on_disk() + 1

    # -- shards -------------------------------------------------------------------------
    def _shard_paths(self) -> list[Path]:
        return sorted(p for p in self.log_dir.iterdir() if _SHARD.fullmatch(p.name))

    def _path(self, number: int) -> Path:
        return self.log_dir / f"tx-{number:06d}.json"

    def _open_current(self) -> None:
        self._db, warning = open_database(self._path(self._number))
        if warning:
            LOG.error("transaction log: %s", warning)
        self._table = self._db.table(TABLE)
        self._current = list(self._table.all())

    def _last_id_on_disk(self) -> int:
        if self._current:
            return max(r["id"] for r in self._current)
        for path in reversed(self._shard_paths()[:-1]):
            summary = self._summary(path)
            if summary is not None:
                return summary.last_id
        return 0

    def _rotate(self) -> None:
        flush_database(self._db)
        self._db.close()
        self._summaries[self._path(self._number)] = _summarize(self._current)
        self._number += 1
        self._open_current()

    # -- writing (writer thread only) -----------------------------------------------------
    def append_many(self, records: list[dict]) -> None:
        """Give each record the next id and add it to the current shard."""
        pending = list(records)
        while pending:
            room = self.shard_size - len(self._current)
            if room <= 0:
                with self._lock:
                    self._rotate()
                continue
            chunk, pending = pending[:room], pending[room:]
            for record in chunk:
                record["id"] = self._next_id
                self._next_id += 1
            with self._lock:
                self._table.insert_multiple(chunk)
                self._current.extend(chunk)
                self._changed = True

    def flush(self) -> None:
        """One atomic save of the current shard, if it changed."""
        if self._changed:
            with self._lock:
                flush_database(self._db)
                self._changed = False

    def count(self) -> int:
        return self._next_id - 1

    # -- reading (any thread) -----------------------------------------------------------
    def query(self, *, types=None, outcomes=None, statuses=None, ae=None, since=None,
              after_id=None, limit: int = 200) -> list[dict]:
        """Matching records: newest first, or oldest first after `after_id` (tailing)."""
        match = _matcher(types, outcomes, statuses, ae, since)
        found: list[dict] = []
        for records in self._newest_first(since, after_id):
            found.extend(r for r in records if match(r) and
                         (after_id is None or r["id"] > after_id))
            if after_id is None and len(found) >= limit:
                break
        if after_id is not None:
            return sorted(found, key=lambda r: r["id"])[:limit]
        return sorted(found, key=lambda r: r["id"], reverse=True)[:limit]

    def _newest_first(self, since, after_id) -> Iterator[list[dict]]:
        with self._lock:
            current = [dict(r) for r in self._current]
            closed = [p for p in self._shard_paths() if p != self._path(self._number)]
        yield current
        for path in reversed(closed):
            summary = self._summary(path)
            if summary is None:
                continue
            if after_id is not None and summary.last_id <= after_id:
                return
            if since is not None and _time(summary.last_time) < since:
                return
            yield _read_shard(path)

    def _summary(self, path: Path) -> _Summary | None:
        if path not in self._summaries:
            self._summaries[path] = _summarize(_read_shard(path))
        return self._summaries[path]


def _number(path: Path) -> int:
    return int(_SHARD.fullmatch(path.name).group(1))


def _read_shard(path: Path) -> list[dict]:
    """A closed shard's records; a corrupt one is moved aside and read as empty."""
    try:
        check_file(path)
        data = orjson.loads(path.read_bytes() or b"{}")
    except CorruptDatabase as exc:
        LOG.error("transaction log: %s", move_aside(path, str(exc)))
        return []
    except FileNotFoundError:
        return []
    return list((data.get(TABLE) or {}).values())


def _summarize(records: list[dict]) -> _Summary | None:
    if not records:
        return None
    newest = max(records, key=lambda r: r["id"])
    return _Summary(min(r["id"] for r in records), newest["id"], newest.get("time", ""))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _matcher(types, outcomes, statuses, ae, since):
    types_ = set(types) if types else None
    outcomes_ = set(outcomes) if outcomes else None
    statuses_ = set(statuses) if statuses else None
    ae_ = ae.strip().upper() if ae else None

    def match(r: dict) -> bool:
        return ((types_ is None or r.get("type") in types_)
                and (outcomes_ is None or r.get("outcome") in outcomes_)
                and (statuses_ is None or r.get("status") in statuses_)
                and (ae_ is None or ae_ in (str(r.get("calling_ae", "")).upper(),
                                            str(r.get("called_ae", "")).upper()))
                and (since is None or _time(r["time"]) >= since))
    return match


def iter_records(log_dir: Path) -> Iterable[dict]:
    """Every record, oldest first (for tools that rebuild things from the log)."""
    for path in sorted(p for p in Path(log_dir).iterdir() if _SHARD.fullmatch(p.name)):
        yield from sorted(_read_shard(path), key=lambda r: r["id"])
