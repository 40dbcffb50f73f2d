"""The transaction log, sharded by record count so one record costs the same at any size.

Each shard is a TinyDB-format file (`tx-000001.json`, one table `transactions`, keyed by
the record's global id) of at most `shard_size` records. Only the newest shard is held
in memory and written; closed shards are never written again and are read only when a
query needs them, guided by a small per-shard summary.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from dicomtui.db.state import load, set_aside
from dicomtui.db.storage import AtomicJSONStorage, remove_stale_temps

LOG = logging.getLogger("dicomtui.db")
TABLE = "transactions"
_NAME = re.compile(r"tx-(\d{6,})\.json")
_CACHED_SHARDS = 1  # closed shards kept parsed (~14 MB each at 10k records)


@dataclass(frozen=True)
class Summary:
    """What a closed shard holds, so a query can skip it without reading it."""

    first_id: int
    last_id: int
    newest: datetime | None  # the latest record time in the shard
    types: frozenset
    outcomes: frozenset
    statuses: frozenset
    aes: frozenset  # calling and called AE titles, upper case


def summarize(records: list[dict]) -> Summary | None:
    """The summary of a non-empty shard whose records are sorted by id."""
    if not records:
        return None
    times = [t for t in map(_time_of, records) if t is not None]
    return Summary(
        records[0]["id"],
        records[-1]["id"],
        max(times, default=None),
        frozenset(r.get("type") for r in records),
        frozenset(r.get("outcome") for r in records),
        frozenset(_hashable(r.get("status")) for r in records),
        frozenset(_ae(r.get(k)) for r in records for k in ("calling_ae", "called_ae")),
    )


@dataclass(frozen=True)
class Filter:
    """The conditions of one query; None means "any"."""

    types: frozenset | None
    outcomes: frozenset | None
    statuses: frozenset | None
    ae: str | None
    since: datetime | None
    text: str | None = None  # lower case

    @classmethod
    def build(cls, types, outcomes, statuses, ae, since, text=None) -> Filter:
        if since is not None and since.tzinfo is None:
            since = since.astimezone()  # naive: the local time, as a person types it
        return cls(
            _set(types),
            _set(outcomes),
            _set(statuses),
            _ae(ae) if ae else None,
            since,
            text.strip().lower() if text and text.strip() else None,
        )

    def matches(self, r: dict) -> bool:
        if self.types is not None and r.get("type") not in self.types:
            return False
        if self.outcomes is not None and r.get("outcome") not in self.outcomes:
            return False
        if self.statuses is not None and _hashable(r.get("status")) not in self.statuses:
            return False
        if self.ae is not None and self.ae not in (
            _ae(r.get("calling_ae")),
            _ae(r.get("called_ae")),
        ):
            return False
        if self.since is not None and not _after_or_at(_time_of(r), self.since):
            return False
        return self.text is None or _contains(r, self.text)

    def may_match(self, s: Summary) -> bool:
        """False when the summary proves no record in the shard matches."""
        return not (
            _disjoint(self.types, s.types)
            or _disjoint(self.outcomes, s.outcomes)
            or _disjoint(self.statuses, s.statuses)
            or (self.ae is not None and self.ae not in s.aes)
            or (self.since is not None and s.newest is None)
        )

    def before_since(self, s: Summary) -> bool:
        """True when every record in the shard is older than `since`."""
        return self.since is not None and s.newest is not None and s.newest < self.since


def by_id(records) -> list[dict]:
    """Records with an integer id, sorted by it (anything else in a file is ignored)."""
    return sorted((r for r in records if type(r.get("id")) is int), key=_id)


def _time_of(record: dict) -> datetime | None:
    """The record's aware time; None when missing or not ISO 8601 (naive means UTC)."""
    try:
        when = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _contains(record: dict, text: str) -> bool:
    """True when any field's value (a status also as 0xNNNN) holds `text`, any case."""
    for key, value in record.items():
        if value is None or isinstance(value, bool):
            continue
        if text in str(value).lower():
            return True
        if key == "status" and isinstance(value, int) and text in f"0x{value:04x}":
            return True
    return False


def _after_or_at(when: datetime | None, since: datetime) -> bool:
    return when is not None and when >= since


def _disjoint(wanted: frozenset | None, present: frozenset) -> bool:
    return wanted is not None and wanted.isdisjoint(present)


def _set(values) -> frozenset | None:
    return frozenset(values) if values else None


def _ae(value) -> str:
    return str(value or "").strip().upper()


def _hashable(value):
    return value if isinstance(value, (int, str, type(None))) else repr(value)


class _Shard:
    """One shard file and, while it is the one written, its records in memory."""

    def __init__(self, path: Path, number: int, records: list[dict]) -> None:
        self.path, self.number, self.records = path, number, records
        self.table = {str(r["id"]): r for r in records}
        self.storage: AtomicJSONStorage | None = None  # made on first save: no I/O here
        self.dirty = False

    def add(self, records: list[dict]) -> None:
        for record in records:
            self.table[str(record["id"])] = record
        self.records.extend(records)  # one atomic step for readers in other threads
        self.dirty = True

    def save(self, table: dict | None = None) -> None:
        """Write the shard (or a snapshot of its table taken under the append lock)."""
        self.storage = self.storage or AtomicJSONStorage(self.path)
        self.storage.write({TABLE: self.table if table is None else table})
        if table is None:
            self.dirty = False


class TransactionLog:
    """Appended to from any thread (in memory), saved by the DB writer, queried by all."""

    def __init__(self, log_dir: Path, *, shard_size: int = 10_000) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.shard_size = max(1, shard_size)
        self._append_lock = threading.RLock()  # ids, rotation, a save's snapshot
        self._lock = threading.Lock()  # current shard, closed list, unsaved shards
        self._read_lock = threading.Lock()  # summaries, parsed-shard cache, disk reads
        self._summaries: dict[int, Summary | None] = {}
        self._cache: OrderedDict[int, list[dict]] = OrderedDict()
        self._unsaved: dict[int, _Shard] = {}  # closed, but their last records not saved
        numbers = self._numbers_on_disk()
        self._closed = numbers[:-1]
        self._current = self._open_current(numbers[-1] if numbers else 1)
        self._next_id = self._last_id() + 1

    # -- opening ---------------------------------------------------------------------
    def _numbers_on_disk(self) -> list[int]:
        found = (_NAME.fullmatch(p.name) for p in self.log_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _path(self, number: int) -> Path:
        return self.log_dir / f"tx-{number:06d}.json"

    def _open_current(self, number: int) -> _Shard:
        """The newest shard, loaded to append to; a corrupt one is moved aside."""
        path = self._path(number)
        remove_stale_temps(path)
        records = self._read(path, "started a new one")
        return _Shard(path, number, records)

    def _last_id(self) -> int:
        if self._current.records:
            return self._current.records[-1]["id"]
        for number in reversed(self._closed):
            summary = self._summary(number, {})
            if summary is not None:
                return summary.last_id
        return 0

    def _read(self, path: Path, action: str) -> list[dict]:
        """A shard's records by id; a damaged file is set aside and reads as empty."""
        loaded = load(path)
        if loaded.damaged:
            set_aside(loaded, f"its transaction records are gone from the log ({action})")
            return []
        return by_id((loaded.tables or {}).get(TABLE, {}).values())

    # -- writing ---------------------------------------------------------------------
    def append_many(self, records: list[dict]) -> list[dict]:
        """Give each record the next id and add it to the current shard (no disk I/O);
        the records as stored. Queries see them at once; flush() saves them.

        Nothing here can fail half way, so a caller never re-sends appended records;
        disk errors surface in flush(), which the DB writer retries on its own.
        """
        with self._append_lock:
            prepared = [r for r in map(self._prepare, records) if r is not None]
            pending = prepared
            while pending:
                room = self.shard_size - len(self._current.records)
                if room <= 0:
                    self._rotate()
                    continue
                chunk, pending = pending[:room], pending[room:]
                with self._lock:
                    self._current.add(chunk)
        return prepared

    def _prepare(self, record: dict) -> dict | None:
        """A JSON round-tripped copy with the next id: memory holds what the file will.

        A value orjson cannot store is stored as its str(), so one odd value cannot
        block every later save; a record that still fails is dropped, loudly.
        """
        try:
            prepared = _json_copy({**record, "id": self._next_id})
        except TypeError as exc:
            LOG.error("transaction log: dropped a record that is not JSON (%s)", exc)
            return None
        self._next_id += 1
        return prepared

    def _rotate(self) -> None:
        """Close the current shard (saved by the next flush) and start the next one."""
        old = self._current
        summary = summarize(old.records)
        with self._read_lock:  # not kept parsed: memory stays at one shard's worth
            self._summaries[old.number] = summary
        new = _Shard(self._path(old.number + 1), old.number + 1, [])
        with self._lock:
            if old.dirty:
                self._unsaved[old.number] = old
            self._closed.append(old.number)
            self._current = new

    def flush(self) -> None:
        """Save closed shards not yet saved, oldest first, then the current one (a
        snapshot: appends may go on meanwhile, and mark it dirty again)."""
        with self._append_lock:
            closed = sorted(self._unsaved)
            current = self._current
            snapshot = dict(current.table) if current.dirty else None
            current.dirty = False
        for number in closed:
            self._unsaved[number].save()
            with self._lock:
                del self._unsaved[number]
        if snapshot is not None:
            try:
                current.save(snapshot)
            except BaseException:
                current.dirty = True
                raise

    def expire(self, days: float) -> int:
        """Delete closed shards whose newest record is older than `days`; how many.
        The current shard, and any shard not yet saved, always stays."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        with self._lock:
            closed = [n for n in self._closed if n not in self._unsaved]
        gone = []
        for number in closed:  # oldest first: stop at the first one still kept
            summary = self._summary(number, {})
            if summary is not None and (summary.newest is None or summary.newest >= cutoff):
                break
            self._path(number).unlink(missing_ok=True)
            gone.append(number)
        with self._lock:
            self._closed = [n for n in self._closed if n not in gone]
        with self._read_lock:
            for number in gone:
                self._summaries.pop(number, None)
                self._cache.pop(number, None)
        return len(gone)

    def recent_values(self, key: str) -> set:
        """The values of `key` in the newest records (this shard and the one before):
        what the journal's replay checks a line against."""
        with self._lock:
            current = self._current.records[:]
            closed = self._closed[-1:]
            unsaved = {n: s.records for n, s in self._unsaved.items()}
        older = [r for n in closed for r in self._records(n, unsaved)]
        return {r[key] for r in current + older if key in r}

    def count(self) -> int:
        """Records ever appended (ids are never reused)."""
        return self._next_id - 1

    # -- reading (any thread) ----------------------------------------------------------
    def query(
        self,
        *,
        types=None,
        outcomes=None,
        statuses=None,
        ae=None,
        since=None,
        after_id=None,
        before_id=None,
        text=None,
        limit: int = 200,
    ) -> list[dict]:
        """Matching records, newest first; with `after_id`, the oldest ones after it.

        `types`/`outcomes`/`statuses` match any of their values, `ae` the calling or
        called AE (any case), `since` an aware datetime (naive means local time),
        `before_id` pages backwards (ids below it), `text` any field's value (any case).
        """
        flt = Filter.build(types, outcomes, statuses, ae, since, text)
        if limit <= 0:
            return []
        with self._lock:
            current = self._current.records[:]
            closed = self._closed[:]
            unsaved = {n: s.records for n, s in self._unsaved.items()}
        if after_id is None:
            found = self._newest(flt, current, closed, unsaved, limit, before_id)
        else:
            found = self._after(flt, after_id, current, closed, unsaved, limit)
        return [dict(r) for r in found]

    def _newest(
        self, flt: Filter, current, closed, unsaved, limit, before_id: int | None = None
    ) -> list[dict]:
        found: list[dict] = []
        for records in self._newest_shards(flt, current, closed, unsaved, before_id):
            end = (
                len(records)
                if before_id is None
                else bisect.bisect_left(records, before_id, key=_id)
            )
            for index in range(end - 1, -1, -1):
                record = records[index]
                if flt.matches(record):
                    found.append(record)
                    if len(found) >= limit:
                        return found
        return found

    def _newest_shards(self, flt: Filter, current, closed, unsaved, before_id=None):
        """Record lists newest shard first, skipping shards the summary rules out.

        Records are appended in time order, so a shard whose newest record is before
        `since` ends the walk: every older shard is older still.
        """
        yield current
        for number in reversed(closed):
            summary = self._summary(number, unsaved)
            if summary is None:
                continue
            if flt.before_since(summary):
                return
            if before_id is not None and summary.first_id >= before_id:
                continue
            if flt.may_match(summary):
                yield self._records(number, unsaved)

    def _after(
        self, flt: Filter, after_id: int, current, closed, unsaved, limit
    ) -> list[dict]:
        """The oldest `limit` matches with id > after_id, ascending (log --follow)."""
        found: list[dict] = []
        for records in self._shards_after(flt, after_id, current, closed, unsaved):
            start = bisect.bisect_right(records, after_id, key=_id)
            for record in records[start:]:
                if flt.matches(record):
                    found.append(record)
                    if len(found) >= limit:
                        return found
        return found

    def _shards_after(self, flt: Filter, after_id: int, current, closed, unsaved):
        """Record lists oldest first, from the shard holding after_id + 1 onwards."""
        wanted = []
        for number in reversed(closed):
            summary = self._summary(number, unsaved)
            if summary is None:
                continue
            if summary.last_id <= after_id:
                break
            if flt.may_match(summary) and not flt.before_since(summary):
                wanted.append(number)
            if summary.first_id <= after_id:
                break  # this shard holds after_id: older ones hold only smaller ids
        for number in reversed(wanted):
            yield self._records(number, unsaved)
        yield current

    def _summary(self, number: int, unsaved) -> Summary | None:
        """What a closed shard holds (None when empty or unreadable), read once."""
        with self._read_lock:
            if number in self._summaries:
                return self._summaries[number]
        if number in unsaved:
            return summarize(unsaved[number])
        self._records(number, unsaved)
        return self._summaries.get(number)

    def _records(self, number: int, unsaved) -> list[dict]:
        """A closed shard's records: from memory if recent, else from its file."""
        if number in unsaved:
            return unsaved[number]
        with self._read_lock:
            if number in self._cache:
                self._cache.move_to_end(number)
                return self._cache[number]
            records = self._read_closed(number)
            self._summaries[number] = summarize(records)
            self._remember(number, records)
            return records

    def _read_closed(self, number: int) -> list[dict]:
        path = self._path(number)
        try:
            return self._read(path, "left its records out of the log")
        except OSError as exc:
            LOG.error("transaction log: cannot read %s (%s); leaving it out", path, exc)
            return []

    def _remember(self, number: int, records: list[dict]) -> None:
        """Keep a parsed closed shard; caller holds the read lock."""
        self._cache[number] = records
        self._cache.move_to_end(number)
        while len(self._cache) > _CACHED_SHARDS:
            self._cache.popitem(last=False)


def _json_copy(record: dict) -> dict:
    """The record as it will read back from the file (TypeError if it cannot)."""
    try:
        return orjson.loads(orjson.dumps(record))
    except TypeError as exc:
        LOG.warning(
            "transaction log: record %s stored with str() values (%s)",
            record.get("id"),
            exc,
        )
    return orjson.loads(orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS))


def _id(record: dict) -> int:
    return record["id"]
