"""The anonymization map: subject codes, and the originals needed to re-identify.

`anonymization.json` (mode 0600, Fernet-encrypted when a key is set) holds one document
per subject (code, original PatientID/issuer/name, counts) and per study (the originals
its first instance had: the values most instances share). What differs per instance
(times, instance UIDs, references) goes to one small file per study under
`anonymization/`, so recording an instance never rewrites a file that grows with the
archive (ARCHITECTURE.md, "Data").

A new subject or study is saved before the instance is acknowledged, so a code is never
handed out twice, even after a crash; per-instance values are saved by the DB writer
within a second, like the rest of the bookkeeping.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson
from tinydb import TinyDB

from dicomtui.db.sealed import PRIVATE, SealedStorage, read_sealed
from dicomtui.db.state import load
from dicomtui.db.storage import ExplicitFlush, flush_database
from dicomtui.dicom.anonymize import Originals

KEEP = "="  # in a per-instance diff: this attribute was not changed in this instance
MAX_OPEN_STUDIES = 64


class MapError(Exception):
    """The map cannot answer (unreadable, wrong key, unknown code); says which."""


class OriginalsSource(Protocol):
    """Where restore gets originals: this map, or the running service's (the Backend)."""

    def originals_many(self, keys: list[tuple[str, str, str]]) -> list[dict]: ...


class AnonymizationMap:
    """Thread-safe: handlers allocate codes, the DB writer saves, front ends read."""

    def __init__(
        self,
        path: Path,
        key: bytes | None = None,
        writable: bool = True,
        used: bool = False,
    ) -> None:
        """`used`: the data dir has had this map, so a missing file is damage."""
        self.path = Path(path)
        self.writable = writable
        self.folder = self.path.with_name(self.path.stem)  # anonymization/
        self.key = key
        self._lock = threading.RLock()
        self._db = _open_db(self.path, key, used or _has_study_files(self.folder))
        self._codes: dict[tuple, str] = {}
        self._subjects: dict[str, tuple[int, dict]] = {}
        self._studies: dict[str, tuple[int, dict]] = {}
        self._dirty: set[tuple[str, str]] = set()  # (table, code or study UID)
        self._open: dict[int, TinyDB] = {}
        self._touched: set[int] = set()
        self._index: dict[int, dict[str, dict]] = {}  # file -> sop -> values (reads)
        self._saved_files: set[int] = set()
        self.uid_secret = self._load()  # keys anonymize_uids' new UIDs

    # -- loading -------------------------------------------------------------------
    def _load(self) -> str:
        for doc in self._db.table("subjects").all():
            self._subjects[doc["code"]] = (doc.doc_id, dict(doc))
            self._codes[_key_of(doc)] = doc["code"]
        for doc in self._db.table("studies").all():
            self._studies[_study_key(doc["subject"], doc["uid"])] = (doc.doc_id, dict(doc))
        # a study counted with instances had its file saved first (flush() saves the
        # study files, then the counts): that file must be there
        self._saved_files = {
            d["file"] for _, d in self._studies.values() if d.get("instances", 0) > 0
        }
        meta = self._db.table("meta")
        if not meta.all() and self.writable:
            meta.insert({"uid_secret": secrets.token_hex(16), "version": 1})
            self._save()
        if self.key is not None and self.writable:
            self._seal_plain_files()
        return meta.all()[0]["uid_secret"] if meta.all() else ""

    def _seal_plain_files(self) -> None:
        """A key set on a map that was plain: encrypt every file of it now."""
        files = [self.path] + sorted(self.folder.glob("study-*.json"))
        for path in files:
            if path.is_file() and path.read_bytes().lstrip().startswith(b"{"):
                data = read_sealed(path, None)
                SealedStorage(path, key=self.key).write(data or {})

    # -- recording (handler threads) -------------------------------------------------
    def subject_for(self, key: tuple[str, str, str], name: str, now: str) -> str:
        """The code of this patient; a new one is saved before it is returned."""
        with self._lock:
            code = self._codes.get(key)
            if code is not None:
                return code
            code = self._next_code()
            doc = {
                "code": code,
                "patient_id": key[0],
                "issuer": key[1],
                "patient_name": name,
                "first_seen": now,
                "last_seen": now,
                "studies": 0,
                "instances": 0,
            }
            doc_id = self._insert_saved("subjects", doc)
            self._subjects[code], self._codes[key] = (doc_id, doc), code
            return code

    def add_instance(
        self, code: str, study_uid: str, sop_uid: str, originals: Originals, now: str
    ) -> dict:
        """Keep the originals of one instance; the per-instance part (what differs from
        the study's shared values) is returned for the DB writer."""
        with self._lock:
            known = self._studies.get(_study_key(code, study_uid))
            entry = (
                self._new_study(code, study_uid, originals, now) if known is None else known
            )
            study = entry[1]
            self._subjects[code][1]["last_seen"] = study["last_seen"] = now
            diff = _diff(study["common"], originals)
            return {
                "file": study["file"],
                "sop": sop_uid,
                "values": diff,
                "code": code,
                "study": study_uid,
            }

    def _new_study(self, code: str, uid: str, originals: Originals, now: str):
        doc = {
            "uid": uid,
            "subject": code,
            "file": len(self._studies) + 1,
            "common": originals,
            "first_seen": now,
            "last_seen": now,
            "instances": 0,
        }
        doc_id = self._insert_saved("studies", doc)
        self._studies[_study_key(code, uid)] = (doc_id, doc)
        return doc_id, doc

    def _insert_saved(self, table: str, doc: dict) -> int:
        """Insert and save now; a failed save takes the document back out."""
        doc_id = self._db.table(table).insert(doc)
        try:
            self._save()
        except BaseException:
            self._db.table(table).remove(doc_ids=[doc_id])
            raise
        return doc_id

    def _next_code(self) -> str:
        n = len(self._subjects) + 1
        while f"sub-{n:03d}" in self._subjects:
            n += 1
        return f"sub-{n:03d}"

    # -- saving (the DB writer thread) -------------------------------------------------
    def record_instance(self, item: dict, once: bool = False) -> bool:
        """Keep one instance's own originals (what add_instance returned) in its study
        file, in memory until flush(); with `once`, only if that instance is not there
        yet (a journal replay). True if it was added."""
        with self._lock:
            known = self._instances(item["file"])
            if once and item["sop"] in known:
                return False
            doc = {"sop": item["sop"], "values": item["values"]}
            self._study_db(item["file"]).table("instances").insert(doc)
            known[item["sop"]] = item["values"]
            self._touched.add(item["file"])
            self._count(item)
            return True

    def _count(self, item: dict) -> None:
        """An instance is counted when its originals are in its study file, never
        before: a flush can then never save a count whose study file does not exist
        yet (the start-up check would take that for lost originals), and a store that
        failed after add_instance counts nothing."""
        key = _study_key(item.get("code", ""), item.get("study", ""))
        if key not in self._studies:  # a journal line from before counts were here
            return
        study = self._studies[key][1]
        subject = self._subjects[item["code"]][1]
        subject["instances"] += 1
        subject["studies"] += int(study["instances"] == 0)
        study["instances"] += 1
        self._dirty.update({("subjects", item["code"]), ("studies", key)})

    def flush(self) -> None:
        """Save what write_batch and the counters changed."""
        with self._lock:
            self._apply_counts()
            for file in sorted(self._touched):
                flush_database(self._open[file])
            self._touched.clear()
            self._save()
            if len(self._open) > MAX_OPEN_STUDIES:
                for db in self._open.values():
                    db.close()
                self._open.clear()

    def _apply_counts(self) -> None:
        for table, key in self._dirty:
            source = self._subjects if table == "subjects" else self._studies
            doc_id, doc = source[key]
            self._db.table(table).update(_counts(doc), doc_ids=[doc_id])
        self._dirty.clear()

    def _save(self) -> None:
        flush_database(self._db)

    def _study_db(self, file: int) -> TinyDB:
        db = self._open.get(file)
        if db is None:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            db = self._open[file] = _open_db(
                self._study_path(file), self.key, used=file in self._saved_files
            )
        return db

    def _study_path(self, file: int) -> Path:
        return self.folder / f"study-{file:06d}.json"

    def check_study_files(self) -> list[str]:
        """Study files the map names that are missing or empty: the originals of
        their instances are lost (a stat each; `dicomtui doctor` reads them whole)."""
        problems = []
        for file in sorted(self._saved_files):
            path = self._study_path(file)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                problems.append(f"{path} is missing although the map names it")
                continue
            if size == 0:
                problems.append(f"{path} is empty (0 bytes of data)")
        return problems

    # -- reading (front ends, restore) -----------------------------------------------
    def subjects(self) -> list[dict]:
        with self._lock:
            return [dict(doc) for _, doc in self._subjects.values()]

    def originals_for(self, code: str, study_uid: str, sop_uid: str) -> Originals:
        """Everything `restore` needs for one instance; MapError names what is missing."""
        with self._lock:
            if code not in self._subjects:
                raise MapError(f"subject code {code!r} is not in this map")
            entry = self._studies.get(_study_key(code, study_uid))
            if entry is None:
                raise MapError(f"study {study_uid} of {code} is not in this map")
            study = entry[1]
            values = self._instances(study["file"]).get(sop_uid)
        if values is None:
            raise MapError(
                f"instance {sop_uid} of {code} is not in this map (was it "
                "anonymized with another map?)"
            )
        merged = {**study["common"], **values}
        return {k: v for k, v in merged.items() if v != KEEP}

    def originals_many(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        """originals_for() of each (code, study, SOP): {"originals": ...} or {"error":
        why}, in order (the shape the control API carries)."""
        answers: list[dict[str, Any]] = []
        for code, study_uid, sop_uid in keys:
            try:
                answers.append({"originals": self.originals_for(code, study_uid, sop_uid)})
            except MapError as exc:
                answers.append({"error": str(exc)})
        return answers

    def _instances(self, file: int) -> dict[str, dict]:
        index = self._index.get(file)
        if index is None:
            docs = self._study_db(file).table("instances").all()
            index = self._index[file] = {d["sop"]: d["values"] for d in docs}
        return index

    def export(self, path: Path) -> int:
        """Write the identities (code, originals, counts) as JSON to a new 0600 file."""
        rows = sorted(self.subjects(), key=lambda d: d["code"])
        payload = orjson.dumps({"subjects": rows}, option=orjson.OPT_INDENT_2)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self.flush()
            for db in self._open.values():
                db.close()
            self._open.clear()


def _open_db(path: Path, key: bytes | None, used: bool = False) -> TinyDB:
    """A map file; damaged (or missing although used), MapError: it is left as it is,
    since a new map would hand out subject codes again (it fails closed)."""
    try:
        loaded = load(path, used=used, key=key)
    except OSError as exc:
        raise MapError(f"cannot read {path}: {exc.strerror or exc}") from None
    if loaded.damaged:
        raise MapError(
            f"{loaded.describe()}. It is left as it is: a new map would give patients "
            "codes already given. Restore it from a backup (see `dicomtui doctor`)"
        )
    db = TinyDB(str(path), storage=ExplicitFlush(SealedStorage), key=key)
    db.storage.cache = loaded.tables if loaded.tables is not None else {}
    return db


def _has_study_files(folder: Path) -> bool:
    """Per-study files exist: the map itself must too."""
    return folder.is_dir() and any(folder.glob("study-*.json"))


def _diff(common: Originals, originals: Originals) -> dict[str, Any]:
    """What this instance's originals say beyond the study's shared ones."""
    diff = {k: v for k, v in originals.items() if common.get(k, KEEP) != v}
    diff.update({k: KEEP for k in common if k not in originals})
    return diff


def _study_key(code: str, study_uid: str) -> str:
    return f"{code}|{study_uid}"


def _counts(doc: dict) -> dict:
    return {k: doc[k] for k in ("instances", "studies", "last_seen") if k in doc}


def _key_of(doc: dict) -> tuple[str, str, str]:
    pid = doc.get("patient_id", "")
    return pid, doc.get("issuer", ""), "" if pid else doc.get("patient_name", "")
