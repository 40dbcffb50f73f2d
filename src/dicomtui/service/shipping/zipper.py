"""A completed study as one zip: files stored as they are (no recompression), ZIP64 when
large, written beside its final name and renamed into place (never a half zip)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from dicomtui.db.storage import fsync_dir


def zip_files(
    files: list[Path], root: Path, target: Path, mode: int = 0o600
) -> tuple[int, list[str]]:
    """Zip `files` (named relative to `root`) into `target` (file `mode`; its folder
    the matching 07x0); (size, missing files)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o750 if mode & 0o040 else 0o700)
    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    missing = []
    try:
        with zipfile.ZipFile(
            temp, "w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as archive:
            for path in files:
                if not path.is_file():
                    missing.append(str(path))
                    continue
                archive.write(path, arcname=path.relative_to(root).as_posix())
        os.chmod(temp, mode)
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target.stat().st_size, missing


def zip_folder(folder: Path, target: Path) -> tuple[int, list[str]]:
    """Every file under `folder` (hidden ones skipped), named relative to it."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return zip_files(files, folder, target)
