"""`dicomtui doctor`: what is wrong with a data dir, and what to do about it.

Read-only and without the data dir's lock, so it works beside a running service and
when the receiver refuses to start. Every state file goes through the same loader the
engine uses (db/state.py); the findings say which file, what is wrong, and the fix.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import orjson
from tinydb import TinyDB
from tinydb.storages import MemoryStorage

from dicomtui.db.sealed import SealError, load_key
from dicomtui.db.state import Condition, Manifest, load
from dicomtui.service.core.damage import SetAside
from dicomtui.service.sites.access import CallerList
from dicomtui.service.sites.facilities import FacilityRegistry
from dicomtui.settings import SPEC_BY_NAME, SettingError, parse_value, resolve

ERROR, WARNING = "error", "warning"  # error: the receiver does not start (fails closed)
RESTORE = "restore it from a backup"


@dataclass(frozen=True)
class Finding:
    severity: str
    what: str
    fix: str


def examine(data_dir: Path, environ=None) -> list[Finding]:
    """Every problem found in `data_dir`, the worst first."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return [
            Finding(
                ERROR,
                f"{data_dir} is not a data dir (it does not exist)",
                "give the right --data-dir, or DICOMTUI_DATA_DIR",
            )
        ]
    manifest = Manifest(data_dir)
    found = _settings(data_dir, manifest)
    key, key_problem = _key(data_dir, environ)
    found += key_problem + _map(data_dir, manifest, key)
    found += _rebuildable(data_dir) + _journal(data_dir) + _set_aside(data_dir)
    found += _permissions(data_dir)
    if manifest.problem:
        found.append(Finding(WARNING, manifest.problem, "it is rebuilt at the next start"))
    return sorted(found, key=lambda f: f.severity != ERROR)


def _settings(data_dir: Path, manifest: Manifest) -> list[Finding]:
    loaded = load(data_dir / "dicomtui.json", used=manifest.used("dicomtui.json"))
    if loaded.damaged:
        return [
            Finding(
                ERROR,
                loaded.describe() + " (settings, facilities, allowed "
                "callers): the receiver does not start",
                f"{RESTORE}; without one, move it aside and enter settings, "
                "facilities and callers again",
            )
        ]
    db = TinyDB(storage=MemoryStorage)  # doctor never writes
    db.storage.write(loaded.tables or {})
    problems = FacilityRegistry().load(db) + CallerList().load(db)
    stored: dict = next(iter(db.table("settings").all()), {})
    for name, value in stored.items():
        try:
            if name in SPEC_BY_NAME:
                parse_value(SPEC_BY_NAME[name], value)
        except SettingError as exc:
            problems.append(f"the stored setting {name} cannot be used ({exc})")
    return [
        Finding(
            ERROR,
            f"dicomtui.json: {p}: the receiver does not start",
            f"{RESTORE}, or correct it (`dicomtui config set` for a setting)",
        )
        for p in problems
    ]


def _key(data_dir: Path, environ) -> tuple[bytes | None, list[Finding]]:
    """The map's key (settings, environment), or why it cannot be had."""
    try:
        tables = (load(data_dir / "dicomtui.json").tables or {}).get("settings", {})
        stored: dict = next(iter(tables.values()), {})
        key_file = resolve({}, environ, stored).anonymization_key_file
    except (SettingError, StopIteration, AttributeError):
        key_file = ""
    if not key_file:
        return None, []
    try:
        return load_key(key_file), []
    except SealError as exc:
        return None, [
            Finding(ERROR, str(exc), "set anonymization_key_file to the map's key file")
        ]


def _map(data_dir: Path, manifest: Manifest, key: bytes | None) -> list[Finding]:
    folder = data_dir / "anonymization"
    studies = sorted(folder.glob("study-*.json")) if folder.is_dir() else []
    used = manifest.used("anonymization.json") or bool(studies)
    loaded = load(data_dir / "anonymization.json", used=used, key=key)
    fix = (
        f"{RESTORE} (with anonymization/): a new map would give patients codes "
        "already given, and restore could not re-identify what is stored"
    )
    found = []
    if loaded.damaged:
        found.append(Finding(ERROR, loaded.describe() + " (the anonymization map)", fix))
    for path in studies:
        study = load(path, used=True, key=key)
        if study.damaged:
            found.append(
                Finding(ERROR, study.describe() + " (per-instance originals)", fix)
            )
    return found + _named_study_files(loaded.tables or {}, folder, fix)


def _named_study_files(tables: dict, folder: Path, fix: str) -> list[Finding]:
    """Study files the map counts instances in, that are not there."""
    found = []
    for doc in tables.get("studies", {}).values():
        path = folder / f"study-{doc.get('file', 0):06d}.json"
        if doc.get("instances", 0) > 0 and not path.exists():
            found.append(
                Finding(
                    ERROR,
                    f"{path} is missing although the map names it (per-instance originals)",
                    fix,
                )
            )
    return found


def _rebuildable(data_dir: Path) -> list[Finding]:
    """Files the next start sets aside (and rebuilds, or reports what was lost)."""
    files = [data_dir / "uploads.json", data_dir / "studies.json"]
    files += sorted((data_dir / "index").glob("studies-*.json"))
    files += sorted((data_dir / "log").glob("tx-*.json"))
    found = []
    for path in files:
        loaded = load(path)
        if loaded.damaged and loaded.condition is not Condition.MISSING:
            found.append(
                Finding(
                    WARNING,
                    loaded.describe(),
                    "the next start sets it "
                    "aside (and rebuilds the index); nothing else to do now",
                )
            )
    return found


def _journal(data_dir: Path) -> list[Finding]:
    found = []
    for path in sorted((data_dir / "journal").glob("*.jsonl")):
        lines = path.read_bytes().splitlines()
        for n, line in enumerate(lines[:-1], 1):  # the last may be torn by a crash
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                found.append(
                    Finding(
                        WARNING,
                        f"{path} line {n} is garbled",
                        "its instance is not recovered at the next start; "
                        "run `dicomtui reindex` afterwards",
                    )
                )
    return found


def _set_aside(data_dir: Path) -> list[Finding]:
    return [Finding(WARNING, line, "") for line in SetAside(data_dir).report()]


def _permissions(data_dir: Path) -> list[Finding]:
    """A data dir or state file others may read (a start narrows them)."""
    open_to = [
        p
        for p in [data_dir, *data_dir.glob("*.json"), *data_dir.glob("*/*.json")]
        if stat.S_IMODE(os.stat(p).st_mode) & 0o077
    ]
    if not open_to:
        return []
    return [
        Finding(
            WARNING,
            f"{len(open_to)} file(s) or folder(s) of the data dir can "
            f"be read by other users (e.g. {open_to[0]})",
            "start the service once (it narrows them), or `chmod -R go-rwx` the data dir",
        )
    ]
