"""The one-owner rule: exactly one engine owns a data dir, enforced with flock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirLocked(RuntimeError):
    """Another process owns the data dir; the message names its pid."""


class DataDirLock:
    """An exclusive, non-blocking lock on <data-dir>/dicomtui.lock holding our pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "dicomtui.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(
                f"data dir {self.path.parent} is in use by another dicomtui (pid {owner}): "
                f"`dicomtui status --data-dir {self.path.parent}` shows it; a second "
                "receiver needs a different --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"
