"""Writing received instances to disk: validated paths, quota, duplicates, durability.

A file becomes visible under its final name only after it is complete (temp file, fsync,
rename, directory fsync), so every acknowledged C-STORE is on disk and a failed one
leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from dicomtui.db.storage import fsync_dir
from dicomtui.dicom.identify import Identity
from dicomtui.dicom.layout import file_stem, folder_for
from dicomtui.dicom.paths import InvalidUID, check_uid
from dicomtui.service.core.modes import narrow
from dicomtui.service.receiving.dirindex import DirectoryIndex
from dicomtui.settings import Resolved

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # "data set does not match SOP Class" (PS3.4 B.2.3)
CANNOT_UNDERSTAND = 0xC210
DUPLICATE_REJECTED = 0xC211
QUOTA_COMMENT = "out of resources: storage quota (max_storage_gb) reached"
INCOMING = ".incoming"  # temp files of stores in progress, under the storage root


@dataclass(frozen=True)
class StorePolicy:
    """The settings that shape one store; read once per request, so edits apply live."""

    layout: str = "series"
    naming: str = "sop-uid"
    fsync: bool = True
    duplicate_policy: str = "replace"
    quota_bytes: int = 0
    by_facility: bool = False  # layout "facility/...": a folder per facility first
    group_read: bool = False  # files 0640 and folders 0750 instead of 0600/0700

    @property
    def modes(self) -> tuple[int, int]:
        """(file mode, folder mode) of what is stored."""
        return (0o640, 0o750) if self.group_read else (0o600, 0o700)


def quota_of(settings: Resolved) -> int:
    """max_storage_gb in bytes (0: no quota)."""
    return int(settings.max_storage_gb * 1_000_000_000)


def policy_of(settings: Resolved) -> StorePolicy:
    layout = settings.layout
    return StorePolicy(
        layout=layout.removeprefix("facility/"),
        naming=settings.naming,
        fsync=settings.fsync,
        duplicate_policy=settings.duplicate_policy,
        quota_bytes=quota_of(settings),
        by_facility=layout.startswith("facility/"),
        group_read=settings.group_read,
    )


@dataclass(frozen=True)
class StoreResult:
    """What happened to one instance: the status to answer and what to log."""

    status: int
    reason: str = ""  # for our log and the transaction record
    path: str = ""  # relative to the storage root
    size: int = 0
    duplicate: bool = False
    added: int = 0  # bytes the storage grew by (negative if a replaced file shrank)
    comment: str = ""  # the Error Comment of a failure: <= 64, no path, no patient data
    unsynced: Path | None = None  # a folder whose new entry still needs its fsync


class StorageWriter:
    """Places instances under one storage root; safe to call from many threads."""

    def __init__(self, root: Path, used_bytes: int = 0) -> None:
        self.root = Path(root).resolve()
        self._used = used_bytes
        self._outside = 0  # of _used: zips (see outside())
        self._counted = False
        self._incoming = self.root / INCOMING
        self._incoming.mkdir(exist_ok=True)
        self._incoming_dev = os.stat(self._incoming).st_dev
        for leftover in self._incoming.iterdir():  # one owner: none is in progress
            leftover.unlink(missing_ok=True)
        self._usage_lock = threading.Lock()
        self._dir_locks = [threading.Lock() for _ in range(64)]
        self._dirs = DirectoryIndex()

    @property
    def used_bytes(self) -> int:
        return self._used

    def release(self, size: int) -> None:
        """Files under the root were removed: count them free."""
        self._add_usage(-size)

    def outside(self, delta: int) -> None:
        """Bytes kept elsewhere for stored studies (their zips) grew or shrank: they
        count as storage used, against the quota too."""
        with self._usage_lock:
            self._outside += delta
            self._used += delta

    def remove_if_settled(self, relative: str, before_ns: int) -> int:
        """Delete a stored file unless it was placed (renamed in: its ctime) at or after
        `before_ns`, under its folder's lock: a cleanup planned before a re-send never
        takes the new copy. The bytes freed (0 if kept or gone)."""
        target = os.path.normpath(self.root / relative)
        if os.path.commonpath([self.root, target]) != str(self.root):
            return 0
        folder = Path(target).parent
        with self._dir_locks[hash(folder) % len(self._dir_locks)]:
            try:
                info = os.lstat(target)
            except FileNotFoundError:
                return 0
            if info.st_ctime_ns >= before_ns:
                return 0
            os.unlink(target)
        self._add_usage(-info.st_size)
        return info.st_size

    def remove_if_unchanged(self, relative: str, fingerprint: list[int] | None) -> int:
        """Delete a stored file only if it is still what `fingerprint` (size, mtime,
        inode) says, under its folder's lock, so no store can replace it meanwhile;
        the bytes freed (0 if it changed, is gone, or would leave the root)."""
        target = os.path.normpath(self.root / relative)
        if os.path.commonpath([self.root, target]) != str(self.root) or not fingerprint:
            return 0
        folder = Path(target).parent
        with self._dir_locks[hash(folder) % len(self._dir_locks)]:
            try:
                info = os.lstat(target)
            except FileNotFoundError:
                return 0
            if [info.st_size, info.st_mtime_ns, info.st_ino] != list(fingerprint):
                return 0  # received again since: that copy is acknowledged, kept
            os.unlink(target)
        self._add_usage(-info.st_size)
        return info.st_size

    def count_usage(
        self, again: bool = False, modes: tuple[int, int] | None = None
    ) -> None:
        """Count what the root holds: once (a receiver or a report needs it; temp files
        a crash left in folders go, and with `modes` what is more open is narrowed),
        or `again` after a reindex; config and log never pay for the walk."""
        if self._counted and not again:
            return
        used = scan_usage(self.root, sweep=not self._counted, modes=modes)
        with self._usage_lock:
            self._used, self._counted = used + self._outside, True

    def store(
        self,
        ident: Identity,
        header: bytes,
        body,
        policy: StorePolicy,
        received: datetime,
        facility: str | None = None,
        make_room: Callable[[int], bool] | None = None,
        sync_folder: bool = True,
    ) -> StoreResult:
        """Validate, check quota, write durably, and resolve duplicates.

        With `sync_folder` False the folder's fsync is left to the caller
        (`result.unsynced`): the receiver hands it to the journal's group commit,
        which syncs the folders of concurrent stores once each before its own fsync.

        `make_room` is asked for the bytes needed when the quota is reached
        (auto_cleanup); if it freed space, the store tries once more.
        """
        try:
            _check_uids(ident)
            folder = self._folder(ident, policy, received, facility)
        except InvalidUID as exc:
            return StoreResult(CANNOT_UNDERSTAND, f"refused: {exc}", comment=str(exc))
        size = len(header) + len(body)
        refusal = self._reserve(size, policy.quota_bytes)
        if refusal and make_room is not None and make_room(size):
            refusal = self._reserve(size, policy.quota_bytes)
        if refusal:
            return StoreResult(OUT_OF_RESOURCES, refusal, comment=QUOTA_COMMENT)
        try:
            result = self._write(folder, ident, header, body, policy, received, size)
        except OSError as exc:
            result = StoreResult(
                OUT_OF_RESOURCES, _os_reason(exc, folder), comment=_os_comment(exc)
            )
        self._add_usage(result.added - size)  # settle the reservation
        if policy.fsync and result.status == SUCCESS and result.size:
            if not sync_folder:
                return replace(result, unsynced=folder)
            fsync_dir(folder)
        return result

    def _folder(
        self, ident: Identity, policy: StorePolicy, received: datetime, facility: str | None
    ) -> Path:
        folder = os.path.normpath(
            self.root / folder_for(policy.layout, ident, received, facility)
        )
        if os.path.commonpath([self.root, folder]) != str(self.root):
            raise InvalidUID("path would leave the storage root")  # defence in depth
        return Path(folder)

    def _write(
        self,
        folder: Path,
        ident: Identity,
        header: bytes,
        body,
        policy: StorePolicy,
        received: datetime,
        size: int,
    ) -> StoreResult:
        _make_folders(folder, self.root, policy.modes[1])
        temp = _write_temp(self._temp_folder(folder), header, body, policy)
        try:
            with self._dir_locks[hash(folder) % len(self._dir_locks)]:
                result = self._place(folder, temp, ident, policy, received, size)
        finally:
            if temp.exists():
                temp.unlink()
        return result

    def _temp_folder(self, folder: Path) -> Path:
        """.incoming/ (emptied at every start); the target folder itself when that is
        on another filesystem (a rename cannot cross one)."""
        if os.stat(folder).st_dev == self._incoming_dev:
            return self._incoming
        return folder

    def _place(
        self,
        folder: Path,
        temp: Path,
        ident: Identity,
        policy: StorePolicy,
        received: datetime,
        size: int,
    ) -> StoreResult:
        existing = self._dirs.find(folder, ident.sop_uid, policy.naming)
        if existing is not None:
            return self._duplicate(folder / existing, temp, policy, size)
        name = self._dirs.claim_name(folder, ident, policy.naming, received, file_stem)
        os.replace(temp, folder / name)
        self._dirs.record(folder, ident.sop_uid, name)
        return StoreResult(SUCCESS, "", self._relative(folder / name), size, added=size)

    def _duplicate(
        self, target: Path, temp: Path, policy: StorePolicy, size: int
    ) -> StoreResult:
        relative = self._relative(target)
        if policy.duplicate_policy == "keep":
            return StoreResult(
                SUCCESS,
                "duplicate: kept the copy already stored",
                relative,
                0,
                duplicate=True,
            )
        if policy.duplicate_policy == "reject":
            return StoreResult(
                DUPLICATE_REJECTED,
                "duplicate SOP Instance UID rejected (duplicate_policy=reject)",
                relative,
                0,
                duplicate=True,
                comment="SOP Instance UID already stored (duplicate_policy)",
            )
        old_size = target.stat().st_size if target.exists() else 0
        os.replace(temp, target)
        return StoreResult(
            SUCCESS, "", relative, size, duplicate=True, added=size - old_size
        )

    def _reserve(self, size: int, quota: int) -> str:
        """Count `size` as used now, so concurrent stores cannot overrun the quota."""
        with self._usage_lock:
            if quota > 0 and self._used + size > quota:
                return _quota_reason(size, self._used, quota)
            self._used += size
        return ""

    def _add_usage(self, delta: int) -> None:
        with self._usage_lock:
            self._used += delta

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _check_uids(ident: Identity) -> None:
    """The four UIDs every storage IOD requires (type 1) must be there and valid: an
    instance without its study or series could never be found or retrieved."""
    check_uid("SOPInstanceUID", ident.sop_uid)
    check_uid("SOPClassUID", ident.sop_class_uid)
    check_uid("StudyInstanceUID", ident.study_uid)
    check_uid("SeriesInstanceUID", ident.series_uid)


def _make_folders(folder: Path, root: Path, mode: int) -> None:
    """`folder` and any missing parents below `root`, each with exactly `mode`."""
    if folder.is_dir():
        return
    missing = []
    while not folder.is_dir() and folder != root:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode)
        except FileExistsError:
            continue  # another store made it meanwhile
        os.chmod(path, mode)  # exact, whatever the umask


def _write_temp(folder: Path, header: bytes, body, policy: StorePolicy) -> Path:
    temp = folder / f".incoming-{threading.get_ident()}-{os.urandom(4).hex()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, policy.modes[0])
    os.fchmod(fd, policy.modes[0])  # exact, whatever the umask
    fsync = policy.fsync
    try:
        with os.fdopen(fd, "wb", closefd=True) as fh:
            fh.write(header)
            fh.write(body)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _quota_reason(size: int, used: int, quota: int) -> str:
    return (
        f"quota exceeded: {used} of {quota} bytes used, this instance needs {size} "
        "(raise max_storage_gb or free space)"
    )


def _os_comment(exc: OSError) -> str:
    """What went wrong writing, for the peer: no path."""
    if exc.errno == errno.ENOSPC:
        return "out of resources: the receiver's disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "out of resources: the receiver's storage is not writable"
    return "out of resources: write failed on the receiver"


def _os_reason(exc: OSError, folder: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full writing to {folder}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to {folder}: {exc.strerror}"
    return f"write failed in {folder}: {exc.strerror or exc}"


def scan_usage(
    root: Path, sweep: bool = False, modes: tuple[int, int] | None = None
) -> int:
    """Bytes used by files under `root` (a startup scan; the writer tracks it after).

    Temp files of unfinished stores never count; with `sweep` (no store in progress)
    those a crash left in target folders are removed. With `modes` (file, folder),
    anything more open than those is narrowed to them.
    """
    total = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != INCOMING]
        if modes:
            narrow(dirpath, modes[1])
        for name in files:
            path = os.path.join(dirpath, name)
            if _is_temp(name):
                if sweep:
                    Path(path).unlink(missing_ok=True)
                continue
            try:
                info = os.lstat(path)
            except OSError:
                continue
            total += info.st_size
            if modes and stat.S_IMODE(info.st_mode) & ~modes[0]:
                narrow(path, modes[0])
    return total


def _is_temp(name: str) -> bool:
    return name.startswith(".incoming-") and name.endswith(".tmp")
