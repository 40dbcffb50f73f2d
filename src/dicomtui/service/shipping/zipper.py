"""A completed study as one zip: files stored as they are (no recompression), ZIP64 when
large, written beside its final name and renamed into place (never a half zip, and
never an empty one). Each file's size, modification time and inode as it was read are
kept, so a later cleanup can tell a file still as zipped from one replaced since."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from dicomtui.db.storage import fsync_dir


class NothingToZip(ValueError):
    """Every file of the study was gone: no zip was made."""


@dataclass
class Zipped:
    size: int = 0
    missing: list[str] = field(default_factory=list)
    files: dict[str, list[int]] = field(default_factory=dict)  # name -> fingerprint


def fingerprint(info: os.stat_result) -> list[int]:
    """What tells a file from its replacement: size, mtime (ns), inode."""
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def zip_files(files: list[Path], root: Path, target: Path, mode: int = 0o600) -> Zipped:
    """Zip `files` (named relative to `root`) into `target` (file `mode`; its folder
    the matching 07x0). NothingToZip, and no file, if none of them is there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o750 if mode & 0o040 else 0o700)
    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    done = Zipped()
    try:
        with zipfile.ZipFile(
            temp, "w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as archive:
            for path in files:
                _add(archive, path, root, done)
        if not done.files:
            raise NothingToZip(f"none of the {len(files)} file(s) is there any more")
        os.chmod(temp, mode)
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    done.size = target.stat().st_size
    return done


def _add(archive: zipfile.ZipFile, path: Path, root: Path, done: Zipped) -> None:
    """One file, streamed from the very descriptor its fingerprint is read from."""
    name = path.relative_to(root).as_posix()
    try:
        source = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except (FileNotFoundError, IsADirectoryError):
        done.missing.append(str(path))
        return
    with source:
        info = os.fstat(source.fileno())
        entry = zipfile.ZipInfo.from_file(path, arcname=name)
        entry.compress_type = zipfile.ZIP_STORED
        with archive.open(entry, "w", force_zip64=info.st_size > 2**31) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    done.files[name] = fingerprint(info)


def zip_folder(folder: Path, target: Path) -> Zipped:
    """Every file under `folder` (hidden ones skipped), named relative to it."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return zip_files(files, folder, target)
