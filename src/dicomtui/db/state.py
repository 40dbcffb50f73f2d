"""One loader for every state file: it tells a new file from a damaged one.

A state file is new (absent, and the data dir never had it), fine, or damaged: missing
although the data dir had it (the manifest says so), empty, truncated (valid JSON cut
short), garbled, or sealed with a key we do not have. What a caller does with damage
depends on what the file protects (ARCHITECTURE.md, "Damaged state"): settings, access
and the anonymization map fail closed; the rest is moved aside and rebuilt or reported.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
from tinydb import TinyDB

from dicomtui.db.storage import (
    AtomicJSONStorage,
    CorruptDatabase,
    ExplicitFlush,
    atomic_write,
    check_tables,
    move_aside,
    remove_stale_temps,
)

LOG = logging.getLogger("dicomtui.db")
MANIFEST = "manifest.json"
FERNET = b"gAAAAA"  # how every Fernet token starts (version byte 0x80, base64)


class Condition(enum.Enum):
    NEW = "new"
    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    GARBLED = "garbled"
    SEALED = "sealed"  # encrypted, and no key (or the wrong one) to open it

    @property
    def damaged(self) -> bool:
        return self not in (Condition.NEW, Condition.OK)


@dataclass(frozen=True)
class Loaded:
    """A state file as read: its tables (None unless OK), and what is wrong with it."""

    path: Path
    condition: Condition
    tables: dict | None = None
    detail: str = ""

    @property
    def damaged(self) -> bool:
        return self.condition.damaged

    def describe(self) -> str:
        """One line: which file and what is wrong."""
        words = {
            Condition.MISSING: "is missing although this data dir used it",
            Condition.EMPTY: "is empty (0 bytes of data)",
            Condition.TRUNCATED: "is truncated",
            Condition.GARBLED: "is garbled",
            Condition.SEALED: "cannot be decrypted",
        }
        what = words.get(self.condition, self.condition.value)
        return f"{self.path} {what}" + (f" ({self.detail})" if self.detail else "")


def load(path: Path, *, used: bool = False, key: bytes | None = None) -> Loaded:
    """Read a TinyDB-format state file (plain, or sealed with Fernet when `key` or the
    content says so). `used`: the data dir had this file, so its absence is damage."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Loaded(path, Condition.MISSING if used else Condition.NEW)
    if not raw.strip():
        return Loaded(path, Condition.EMPTY)
    if raw.lstrip().startswith(FERNET):
        opened = _unseal(raw, key)
        if isinstance(opened, str):
            return Loaded(path, Condition.SEALED, detail=opened)
        raw = opened
    return _parse(path, raw)


def open_tinydb(loaded: Loaded, mode: int = 0o600) -> TinyDB:
    """A TinyDB on the file `loaded` read (its tables, or none when new), saving
    atomically and only on flush (db/storage.py)."""
    remove_stale_temps(loaded.path)
    db = TinyDB(str(loaded.path), mode=mode, storage=ExplicitFlush(AtomicJSONStorage))
    db.storage.cache = loaded.tables if loaded.tables is not None else {}
    return db


def set_aside(loaded: Loaded, consequence: str) -> str:
    """Move a damaged file to `<name>.corrupt-<time>` (never deleted) and say so: the
    one line status, the Status screen and `dicomtui doctor` show."""
    moved = f"; moved to {move_aside(loaded.path).name}" if loaded.path.exists() else ""
    message = f"{loaded.describe()}{moved}: {consequence}"
    LOG.error(message)
    return message


def open_or_set_aside(
    path: Path, consequence: str, mode: int = 0o600
) -> tuple[TinyDB, str | None]:
    """A state file that may be rebuilt or lost: damaged, it is set aside and a new
    one started; the warning says what was lost (`consequence`)."""
    loaded = load(path)
    if loaded.damaged:
        return open_tinydb(Loaded(loaded.path, Condition.NEW), mode), set_aside(
            loaded, consequence
        )
    return open_tinydb(loaded, mode), None


def _parse(path: Path, raw: bytes) -> Loaded:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        cut = "end of data" in exc.msg
        condition = Condition.TRUNCATED if cut else Condition.GARBLED
        return Loaded(path, condition, detail=f"JSON error at byte {exc.pos}: {exc.msg}")
    try:
        check_tables(data)
    except CorruptDatabase as exc:
        return Loaded(path, Condition.GARBLED, detail=str(exc))
    return Loaded(path, Condition.OK, data)


def _unseal(token: bytes, key: bytes | None) -> bytes | str:
    """The plain bytes, or why not."""
    from cryptography.fernet import Fernet, InvalidToken

    if key is None:
        return "it is encrypted: set anonymization_key_file to its key file"
    try:
        return Fernet(key).decrypt(token.strip())
    except InvalidToken:
        return "wrong key file, or the file is damaged"


class Manifest:
    """Which state files this data dir has had, so a missing one is known as lost.

    A small JSON list beside them, saved atomically when a file is first used. Lost or
    damaged, it is rebuilt from the files present (and that is reported).
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / MANIFEST
        self.problem = ""
        self._names = self._read()

    def _read(self) -> set[str]:
        try:
            names = orjson.loads(self.path.read_bytes())
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return set(names)
            self.problem = f"{self.path} is garbled (not a list of file names)"
        except FileNotFoundError:
            return set()
        except (OSError, orjson.JSONDecodeError) as exc:
            self.problem = f"{self.path} is damaged ({exc}); rebuilt from the files"
        return set()

    def used(self, name: str) -> bool:
        return name in self._names

    def mark(self, *names: str) -> None:
        """These files exist now: from here on, their absence is damage."""
        if set(names) <= self._names and not self.problem:
            return
        self._names |= set(names)
        atomic_write(self.path, orjson.dumps(sorted(self._names)), 0o600)
        self.problem = ""

    def adopt_existing(self, *names: str) -> None:
        """A data dir from before the manifest: what exists now counts as used."""
        present = [n for n in names if os.path.exists(self.path.parent / n)]
        if present:
            self.mark(*present)
