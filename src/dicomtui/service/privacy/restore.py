"""Re-identify anonymized files with the map: all of them, or none.

Every input is checked against the map first (its subject code, study and instance
must be there); any problem stops the run before a byte is written. The output is
built beside its destination and renamed into place, so OUT is either complete or absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dicomtui.dicom.anonymize import restore
from dicomtui.service.privacy.anonmap import OriginalsSource
from dicomtui.service.shipping.zipper import zip_folder

Progress = Callable[[int, int], None]


class RestoreError(Exception):
    """Nothing was written; the message lists what is wrong."""


@dataclass
class RestoreReport:
    restored: int = 0
    skipped: list[str] = field(default_factory=list)  # not DICOM: left out, named
    output: str = ""


def restore_path(
    source: Path, target: Path, amap: OriginalsSource, progress: Progress | None = None
) -> RestoreReport:
    """Restore a file or a folder tree from `source` into `target` (a new path)."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise RestoreError(f"{source} does not exist")
    if source.is_file() and zipfile.is_zipfile(source):
        return _restore_zip(source, target, amap, progress)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise RestoreError(
            f"{target} already exists; give a new path (nothing is overwritten)"
        )
    files = (
        [source]
        if source.is_file()
        else sorted(
            p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")
        )
    )
    report = RestoreReport(output=str(target))
    plan = _plan(files, amap, report, progress)
    if not plan:
        raise RestoreError(f"no DICOM files to restore in {source}")
    if source.is_file():
        _write_one(plan[0][0], plan[0][1], target)
    else:
        _write_tree(plan, source, target, progress)
    report.restored = len(plan)
    return report


def _restore_zip(
    source: Path, target: Path, amap: OriginalsSource, progress: Progress | None
) -> RestoreReport:
    """A study zip (as uploaded) into a new zip of the restored files, same names."""
    if target.exists():
        raise RestoreError(
            f"{target} already exists; give a new path (nothing is overwritten)"
        )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".restoring-") as work:
        unpacked, restored = Path(work) / "in", Path(work) / "out"
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                name = Path(info.filename)
                if info.is_dir() or name.is_absolute() or ".." in name.parts:
                    continue  # never outside the work folder
                out = unpacked / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(info))
        report = restore_path(unpacked, restored, amap, progress)
        zip_folder(restored, target)
    report.output = str(target)
    return report


def _plan(
    files: list[Path],
    amap: OriginalsSource,
    report: RestoreReport,
    progress: Progress | None,
) -> list[tuple[Path, dict]]:
    """Every file with its originals, asked of the map in one go; RestoreError lists
    the files that cannot be restored (then nothing is written)."""
    keyed, problems = [], []
    for n, path in enumerate(files, 1):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            report.skipped.append(str(path))
            continue
        try:
            keyed.append((path, _key(ds)))
        except RestoreError as exc:
            problems.append(f"{path}: {exc}")
        if progress:
            progress(n, len(files) * 2)
    answers = amap.originals_many([key for _, key in keyed]) if keyed else []
    plan = []
    for (path, _), answer in zip(keyed, answers, strict=True):
        if "error" in answer:
            problems.append(f"{path}: {answer['error']}")
        else:
            plan.append((path, answer["originals"]))
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise RestoreError(
            f"{len(problems)} file(s) cannot be restored, so nothing was "
            "written:\n  " + "\n  ".join(problems[:10]) + more
        )
    return plan


def _key(ds) -> tuple[str, str, str]:
    """(subject code, study UID, SOP Instance UID) of an anonymized file."""
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        raise RestoreError("not an anonymized file (Patient Identity Removed is not YES)")
    return (
        str(ds.get("PatientID", "") or ""),
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("SOPInstanceUID", "")),
    )


def _write_one(path: Path, originals: dict, target: Path) -> None:
    if target.is_dir():
        target = target / path.name
    temp = target.with_name(f".{target.name}.restoring-{os.urandom(4).hex()}")
    try:
        _restore_file(path, originals, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _write_tree(
    plan: list[tuple[Path, dict]], source: Path, target: Path, progress: Progress | None
) -> None:
    staging = target.with_name(f".{target.name}.restoring-{os.urandom(4).hex()}")
    try:
        for n, (path, originals) in enumerate(plan, 1):
            out = staging / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            _restore_file(path, originals, out)
            if progress:
                progress(len(plan) + n, len(plan) * 2)
        if target.exists():
            target.rmdir()  # empty (checked above): the finished tree takes its place
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _restore_file(path: Path, originals: dict, out: Path) -> None:
    ds = dcmread(path)
    for _ in ds.iterall():  # decode all: a file read in another VR encoding than its
        pass  # meta says must not be written back half raw
    restore(ds, originals)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=True)
