"""The archive index: studies and their series in memory, instances in a file per study.

The index holds counts per study and series, never a document per instance (see
ARCHITECTURE.md, "Data"):
- `index/studies-NN.json` (64 TinyDB-format shards by a hash of the Study Instance UID):
  one document per study with its series embedded. A receiving study dirties one shard,
  so a save rewrites 1/64 of the index, whatever its size.
- `index/instances/HH/<study uid>.jsonl`: one appended line per stored instance (what
  C-MOVE/C-GET and IMAGE-level C-FIND need: SOP UIDs, path, transfer syntax, size); a
  re-sent instance appends again and the last line wins.

Handlers update memory under one lock (microseconds); the DB writer saves once a second.
Up to ~1 s of bookkeeping may be lost in a crash; `dicomtui reindex` rebuilds all of it
from the files, which are the truth.
"""

from __future__ import annotations

import threading
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import orjson

from dicomtui.db.state import load, set_aside
from dicomtui.db.storage import (
    atomic_write,
    remove_stale_temps,
)
from dicomtui.dicom.identify import Identity
from dicomtui.service.core.records import StoredInstance

SHARDS = 64
TABLE = "studies"
STUDY_FIELDS = (
    "patient_id",
    "patient_name",
    "birth_date",
    "sex",
    "study_date",
    "study_time",
    "accession",
    "study_id",
    "description",
    "referring",
)


class Instance(tuple):
    """One line of a study's instance file."""

    __slots__ = ()
    sop_uid = property(lambda self: self[0])
    sop_class = property(lambda self: self[1])
    series_uid = property(lambda self: self[2])
    number = property(lambda self: self[3])
    path = property(lambda self: self[4])
    syntax = property(lambda self: self[5])
    size = property(lambda self: self[6])


def shard_of(study_uid: str) -> int:
    return zlib.crc32(study_uid.encode()) % SHARDS


def new_study(uid: str, when: str, facility: str) -> dict:
    return {
        "uid": uid,
        **dict.fromkeys(STUDY_FIELDS, ""),
        "facility": facility,
        "first_received": when,
        "last_received": when,
        "instances": 0,
        "bytes": 0,
        "series": {},
    }


def apply_instance(
    doc: dict, ident: Identity, added: int, duplicate: bool, when: str
) -> None:
    """Count one stored instance into its study document (the caller holds the lock)."""
    values = (
        ident.patient_id,
        ident.patient_name,
        ident.birth_date,
        ident.sex,
        ident.study_date,
        ident.study_time,
        ident.accession,
        ident.study_id,
        ident.study_description,
        ident.referring,
    )
    for name, value in zip(STUDY_FIELDS, values, strict=True):
        if value:
            doc[name] = value
    series = doc["series"].get(ident.series_uid)
    if series is None:
        series = doc["series"][ident.series_uid] = {
            "number": ident.series_number,
            "modality": ident.modality,
            "description": ident.series_description,
            "instances": 0,
            "bytes": 0,
        }
    else:
        series["modality"] = ident.modality or series["modality"]
        series["description"] = ident.series_description or series["description"]
        if ident.series_number is not None:
            series["number"] = ident.series_number
    if not duplicate:
        doc["instances"] += 1
        series["instances"] += 1
    doc["bytes"] += added
    series["bytes"] += added
    doc["first_received"] = min(doc["first_received"] or when, when)
    doc["last_received"] = max(doc["last_received"], when)


def instance_line(ident: Identity, path: str, syntax: str, size: int) -> bytes:
    return (
        orjson.dumps(
            [
                ident.sop_uid,
                ident.sop_class_uid,
                ident.series_uid,
                ident.instance_number,
                path,
                syntax,
                size,
            ]
        )
        + b"\n"
    )


class ArchiveIndex:
    """Every indexed study in memory; safe to use from any thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.studies: dict[str, dict] = {}
        self._dirty: set[int] = set()
        self._lines: dict[str, list[bytes]] = defaultdict(list)
        self.io_lock = threading.Lock()  # instance files: appends vs. removal
        self._members: list[set[str]] = [set() for _ in range(SHARDS)]
        self.damaged = False  # a shard was set aside: the archive reindexes
        self._compact: set[str] = set()  # studies with a re-sent instance
        for shard in range(SHARDS):
            self._load(shard)

    # -- loading and saving -----------------------------------------------------------
    def shard_path(self, shard: int) -> Path:
        return self.folder / f"studies-{shard:02x}.json"

    def instances_path(self, study_uid: str) -> Path:
        return (
            self.folder / "instances" / f"{shard_of(study_uid):02x}" / f"{study_uid}.jsonl"
        )

    def _load(self, shard: int) -> None:
        path = self.shard_path(shard)
        remove_stale_temps(path)
        loaded = load(path)
        if loaded.damaged:
            self.damaged = True
            set_aside(loaded, "the index is rebuilt from the stored files (reindex)")
            return
        for doc in (loaded.tables or {}).get(TABLE, {}).values():
            if isinstance(doc.get("uid"), str) and isinstance(doc.get("series"), dict):
                self.studies[doc["uid"]] = doc
                self._members[shard_of(doc["uid"])].add(doc["uid"])

    def save(self) -> None:
        """Rewrite the shards that changed and append the new instance lines."""
        # io_lock (always taken before lock) keeps lines taken here visible to
        # instances() until they are in their files
        with self.io_lock:
            with self.lock:
                payloads = {shard: self._encode(shard) for shard in self._dirty}
                lines, self._lines = self._lines, defaultdict(list)
                self._dirty = set()
            with self.lock:
                compact, self._compact = self._compact, set()
            try:
                for uid in list(lines):
                    if uid in self.studies:  # not removed meanwhile (cleanup)
                        self._append(uid, lines[uid], uid in compact)
                    del lines[uid]
                for shard, payload in payloads.items():
                    atomic_write(self.shard_path(shard), payload)
            except OSError:
                with self.lock:  # saved again on the next tick
                    self._dirty |= set(payloads)
                    for uid, chunk in lines.items():
                        self._lines[uid][:0] = chunk
                raise

    def _append(self, uid: str, chunk: list[bytes], compact: bool) -> None:
        """New lines at the end; when an instance was re-sent, the file is written
        again with one line per SOP Instance UID, so re-sends never grow it."""
        path = self.instances_path(uid)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if compact:
            latest = {raw[0]: raw for raw in _read_lines(path, chunk)}
            atomic_write(path, b"".join(orjson.dumps(r) + b"\n" for r in latest.values()))
            return
        with open(path, "ab") as fh:
            fh.write(b"".join(chunk))

    def _encode(self, shard: int) -> bytes:
        docs = [self.studies[uid] for uid in self._members[shard]]
        return orjson.dumps({TABLE: {str(n): d for n, d in enumerate(docs, 1)}})

    # -- changes --------------------------------------------------------------------------
    def add(self, stored: StoredInstance) -> None:
        """One stored instance (from the receive path: memory only)."""
        ident = stored.ident
        uid = ident.study_uid
        line = instance_line(ident, stored.path, stored.syntax, stored.size)
        with self.lock:
            doc = self.studies.get(uid)
            if doc is None:
                doc = self.studies[uid] = new_study(uid, stored.when, stored.facility)
                self._members[shard_of(uid)].add(uid)
            apply_instance(doc, ident, stored.added, stored.duplicate, stored.when)
            if stored.duplicate:
                self._compact.add(uid)
            self._lines[uid].append(line)
            self._dirty.add(shard_of(uid))

    def recover(self, replayed: list[StoredInstance]) -> int:
        """Journaled instances after an unclean stop: those the index lacks are added,
        then each study touched is counted again from its instance lines, so a line
        saved without its shard (or a shard without its line) ends up right. Returns
        how many were added."""
        added = 0
        for uid, stored in _by_study(replayed).items():
            present = {(row.sop_uid, row.path) for row in self.instances(uid)}
            for one in stored:
                if (one.ident.sop_uid, one.path) not in present:
                    self.add(one)
                    present.add((one.ident.sop_uid, one.path))
                    added += 1
            self._recount(uid)
        return added

    def _recount(self, uid: str) -> None:
        """A study's counts and sizes from its instances (the newest line per SOP)."""
        rows = self.instances(uid)
        with self.lock:
            doc = self.studies.get(uid)
            if doc is None:
                return
            doc["instances"], doc["bytes"] = len(rows), sum(r.size for r in rows)
            for series_uid, series in list(doc["series"].items()):
                mine = [r for r in rows if r.series_uid == series_uid]
                series["instances"], series["bytes"] = len(mine), sum(r.size for r in mine)
                if not mine:
                    del doc["series"][series_uid]
            self._dirty.add(shard_of(uid))

    def forget_missing(self, uid: str, root: Path) -> None:
        """Files of a study were removed: keep the lines of those still there (a copy
        received since a cleanup was planned), the study only if any is left."""
        rows = self.instances(uid)
        kept = [row for row in rows if (root / row.path).exists()]
        if not kept:
            self.remove(uid)
        elif len(kept) < len(rows):
            self._rewrite(uid, kept)

    def _rewrite(self, uid: str, rows: list[Instance]) -> None:
        """A study's instance file with exactly `rows` (atomic), and its counts."""
        with self.io_lock:
            with self.lock:
                self._lines.pop(uid, None)
            payload = b"".join(orjson.dumps(list(row)) + b"\n" for row in rows)
            path = self.instances_path(uid)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, payload)
        self._recount(uid)

    def remove(self, study_uid: str) -> dict | None:
        with self.io_lock:
            with self.lock:
                doc = self.studies.pop(study_uid, None)
                if doc is not None:
                    self._members[shard_of(study_uid)].discard(study_uid)
                    self._dirty.add(shard_of(study_uid))
                    self._lines.pop(study_uid, None)
            if doc is not None:
                self.instances_path(study_uid).unlink(missing_ok=True)
        return doc

    def replace_all(self, studies: dict[str, dict]) -> None:
        """Take a rebuilt index (reindex); every shard is saved again."""
        with self.lock:
            self.studies = studies
            self._members = [set() for _ in range(SHARDS)]
            for uid in studies:
                self._members[shard_of(uid)].add(uid)
            self._dirty = set(range(SHARDS))
            self._lines = defaultdict(list)

    # -- reading ------------------------------------------------------------------------
    def study(self, uid: str) -> dict | None:
        with self.lock:
            doc = self.studies.get(uid)
            return copy_doc(doc) if doc else None

    def all_studies(self) -> list[dict]:
        """Shallow copies safe to read outside the lock (series dicts are copied)."""
        with self.lock:
            return [copy_doc(d) for d in self.studies.values()]

    def live_docs(self) -> list[dict]:
        """The documents themselves, for a read-only scan: the receive path may change
        their values meanwhile, so copy what you keep (copy_doc)."""
        with self.lock:
            return list(self.studies.values())

    def instances(self, study_uid: str) -> list[Instance]:
        """The study's instances, the newest line per SOP Instance UID."""
        with self.io_lock:
            with self.lock:
                pending = list(self._lines.get(study_uid, ()))
                known = study_uid in self.studies
            if not known:
                return []
            rows = list(_read_lines(self.instances_path(study_uid), pending))
        latest: dict[str, Instance] = {}
        for raw in rows:
            latest[raw[0]] = Instance(raw)
        return list(latest.values())


def _by_study(stored: list[StoredInstance]) -> dict[str, list[StoredInstance]]:
    groups: dict[str, list[StoredInstance]] = {}
    for one in stored:
        if one.ident.study_uid and not one.kept_old_copy:
            groups.setdefault(one.ident.study_uid, []).append(one)
    return groups


def copy_doc(doc: dict) -> dict:
    series = list(doc["series"].items())  # one step: safe against a concurrent add
    return {**doc, "series": {k: dict(v) for k, v in series}}


def _read_lines(path: Path, pending: Iterable[bytes]) -> Iterable[list]:
    try:
        with open(path, "rb") as fh:
            saved = fh.read()
    except FileNotFoundError:
        saved = b""
    for line in saved.splitlines() + [p.rstrip(b"\n") for p in pending]:
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line torn by a crash: that instance is found again by reindex
        if isinstance(raw, list) and len(raw) == 7:
            yield raw
