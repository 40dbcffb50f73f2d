"""A private TinyDB storage: mode 0600, optionally encrypted whole with Fernet.

For the anonymization map, which holds the identities anonymization removed. The key
is a Fernet key in a file of its own (`anonymization_key_file`); without one the file
is plain JSON that only the service's user can read.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from dicomtui.db.storage import AtomicJSONStorage, atomic_write, parse_tables

PRIVATE = 0o600


class SealError(Exception):
    """The key is missing, malformed or wrong for this file; the message says which."""


def load_key(path: str | Path) -> bytes:
    """The Fernet key in `path` (SealError if unreadable or not a Fernet key)."""
    from cryptography.fernet import Fernet

    path = Path(path).expanduser()
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SealError(
            f"cannot read the anonymization key file {path}: {exc.strerror or exc}"
        ) from None
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise SealError(
            f"{path} does not hold a Fernet key (44 characters of url-safe "
            "base64; make one with `dicomtui anon keygen PATH`)"
        ) from None
    return key


def new_key_file(path: str | Path) -> Path:
    """Write a fresh Fernet key to a new file, mode 0600 (SealError if it exists)."""
    from cryptography.fernet import Fernet

    path = Path(path).expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        raise SealError(f"{path} already exists; a key is never overwritten") from None
    except OSError as exc:
        raise SealError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_sealed(path: Path, key: bytes | None) -> dict | None:
    """The tables in `path` (None if missing/empty); SealError or CorruptDatabase."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    if not raw.strip():
        return None
    if not raw.lstrip().startswith(b"{"):
        raw = _open(raw, key, path)
    return parse_tables(raw)


def _open(token: bytes, key: bytes | None, path: Path) -> bytes:
    from cryptography.fernet import Fernet, InvalidToken

    if key is None:
        raise SealError(f"{path} is encrypted: set anonymization_key_file to its key file")
    try:
        return Fernet(key).decrypt(token.strip())
    except InvalidToken:
        raise SealError(
            f"{path} cannot be decrypted with this key (wrong key file, or "
            "the file is damaged)"
        ) from None


class SealedStorage(AtomicJSONStorage):
    """Atomic saves, mode 0600, encrypted when a key is given."""

    def __init__(self, path, *, key: bytes | None = None) -> None:
        super().__init__(path, mode=PRIVATE)
        self.key = key

    def read(self) -> dict | None:
        return read_sealed(self.path, self.key)

    def write(self, data) -> None:
        payload = orjson.dumps(data)
        if self.key is not None:
            from cryptography.fernet import Fernet

            payload = Fernet(self.key).encrypt(payload)
        atomic_write(self.path, payload, PRIVATE)
