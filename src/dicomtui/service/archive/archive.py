"""Archive: the index of what is stored, destinations, storage usage, cleanup, reindex.

Every stored instance is counted into the index as it is acknowledged (memory only; the
DB writer saves it). Cleanup, reindex and sending a study run as background jobs; the
Q/R handlers (qr_handlers.py) answer from the index.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tinydb import TinyDB

from dicomtui.db.storage import flush_database
from dicomtui.db.writer import DBWriter
from dicomtui.dicom.matching import text_search
from dicomtui.models import (
    Destination,
    Job,
    SeriesRow,
    StorageReport,
    StudyPage,
    StudyQuery,
    StudyRow,
    UsageRow,
    outcome_of,
)
from dicomtui.service.archive.cleanup import MAINTENANCE, Retention, recently_received
from dicomtui.service.archive.destinations import DestinationList
from dicomtui.service.archive.errors import ArchiveError, ArchiveMissing
from dicomtui.service.archive.index import ArchiveIndex, copy_doc
from dicomtui.service.archive.jobs import JobBoard, Reporter
from dicomtui.service.archive.query import modalities
from dicomtui.service.archive.reindex import install, rebuild
from dicomtui.service.core.recorder import Recorder
from dicomtui.service.core.records import OperatorSend, StoredInstance, Transaction, who
from dicomtui.service.receiving.store import StorageWriter, quota_of
from dicomtui.service.sending.sender import Item, Peer, SendError, SendSummary, send
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.archive")
UPLOAD_STATE = {
    "queued": "queued",
    "uploading": "uploading",
    "done": "uploaded",
    "failed": "failed",
}


class Shipments(Protocol):
    """What the archive asks of shipping: which studies are still in its hands."""

    def receiving(self) -> set[str]: ...
    def upload_states(self) -> dict[str, tuple[str, int]]: ...
    def waiting(self) -> dict[str, str]: ...
    def zip_dir(self) -> Path: ...


class Callers(Protocol):
    """What the Q/R handlers ask of receiving about an association."""

    def facility_of(self, assoc) -> str: ...
    def association_id(self, assoc) -> int | None: ...


class Archive:
    """Owns the index, the destinations and the maintenance jobs."""

    def __init__(
        self,
        data_dir: Path,
        db: TinyDB,
        writer: DBWriter,
        settings: Callable[[], Resolved],
        storage: StorageWriter,
        recorder: Recorder,
        shipping: Shipments,
        callers: Callers,
    ) -> None:
        self._writer, self._settings, self.storage = writer, settings, storage
        self._recorder, self._shipping, self.callers = recorder, shipping, callers
        self.index = ArchiveIndex(data_dir / "index")
        self.destinations = DestinationList()
        self.warnings = self.destinations.load(db)
        writer.register(
            "destinations", self.destinations.write_batch, lambda: flush_database(db)
        )
        writer.register("index", lambda batch: None, self.index.save)
        self.jobs = JobBoard()
        self.retention = Retention(
            self.index, storage, writer, settings, recorder, self.jobs, shipping
        )
        self._during_reindex: list[StoredInstance] | None = None

    @property
    def settings(self) -> Resolved:
        return self._settings()

    def started(self) -> None:
        """The receiver started: count usage once, and rebuild a missing index."""
        self.storage.count_usage()
        if self.index.damaged or self._index_empty_but_files():
            LOG.warning(
                "the archive index is damaged or empty while storage holds DICOM "
                "files: rebuilding it (reindex) in the background"
            )
            self.start_reindex()

    def close(self, timeout: float = 30.0) -> None:
        """Closing: ask running jobs to stop and give them a moment to."""
        self.jobs.cancel_all()
        deadline = time.monotonic() + timeout
        for job in self.jobs.running():
            self.jobs.wait(job.id, max(0.1, deadline - time.monotonic()))

    def _index_empty_but_files(self) -> bool:
        """An archive from before the index (or a lost index): worth a reindex."""
        if self.index.studies:
            return False
        for _dirpath, dirs, files in os.walk(self.storage.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(f.endswith(".dcm") for f in files):
                return True
        return False

    # -- from the receive path -------------------------------------------------------
    def instance_stored(self, stored: StoredInstance) -> None:
        if not stored.ident.study_uid or stored.kept_old_copy:
            return  # no study to file it under / the copy kept is indexed already
        self.index.add(stored)
        during = self._during_reindex
        if during is not None:
            during.append(stored)
        self._writer.put("index", None)

    def recover(self, replayed: list[StoredInstance]) -> int:
        """Journaled instances after an unclean stop (each counted once)."""
        added = self.index.recover(replayed)
        self._writer.put("index", None)
        return added

    def record_request(self, tx: Transaction, assoc) -> None:
        """A C-FIND, C-MOVE or C-GET of an association, with who asked."""
        tx.facility = self.callers.facility_of(assoc)
        tx.association = self.callers.association_id(assoc)
        peer = who(assoc)
        tx.calling_ae, tx.called_ae, tx.peer = (
            peer["calling_ae"],
            peer["called_ae"],
            peer["peer"],
        )
        self._recorder.record(tx)
        if tx.is_problem:
            LOG.warning(
                "%s from %s refused (0x%04X): %s",
                tx.KIND.upper(),
                tx.calling_ae,
                tx.status,
                tx.reason,
            )

    def study_files_removed(self, study_uid: str) -> None:
        """cleanup_after_upload removed a study's files: an index entry whose files are
        all gone goes too (C-FIND must not offer what C-MOVE cannot send)."""
        instances = self.index.instances(study_uid)
        if instances and not any((self.storage.root / i.path).exists() for i in instances):
            self.index.remove(study_uid)
            self._writer.put("index", None)
            LOG.info(
                "study %s left the index: its files were removed after upload", study_uid
            )

    # -- studies ------------------------------------------------------------------------
    def study_page(self, query: StudyQuery) -> StudyPage:
        tests = _study_tests(query)
        docs = [d for d in self.index.live_docs() if all(t(d) for t in tests)]
        docs.sort(key=lambda d: d["last_received"], reverse=True)
        states = self._study_states()
        rows = [self._row(copy_doc(d), states) for d in docs[: max(1, query.limit)]]
        return StudyPage(rows, len(docs))

    def series_rows(self, study_uid: str) -> list[SeriesRow]:
        doc = self.index.study(study_uid)
        if doc is None:
            raise ArchiveMissing(f"no indexed study {study_uid!r}")
        rows = [
            SeriesRow(
                uid,
                s["number"],
                s["modality"],
                s["description"],
                s["instances"],
                s["bytes"],
            )
            for uid, s in doc["series"].items()
        ]
        return sorted(rows, key=lambda r: (r.number is None, r.number or 0, r.uid))

    def _study_states(self) -> tuple[set[str], dict[str, tuple[str, int]]]:
        receiving = self._shipping.receiving() | recently_received(
            self.index, self.settings.study_timeout
        )
        return receiving, self._shipping.upload_states()

    def _row(self, doc: dict, states) -> StudyRow:
        receiving, uploads = states
        upload = uploads.get(doc["uid"])
        if doc["uid"] in receiving:
            state = "receiving"
        elif upload and upload[0] in UPLOAD_STATE:
            state = UPLOAD_STATE[upload[0]]
        elif (self._shipping.zip_dir() / f"{doc['uid']}.zip").exists():
            state = "zipped"
        else:
            state = "complete"
        return StudyRow(
            doc["uid"],
            doc["patient_id"],
            doc["patient_name"],
            doc["birth_date"],
            doc["sex"],
            doc["study_date"],
            doc["study_time"],
            doc["accession"],
            doc["study_id"],
            doc["description"],
            doc["referring"],
            modalities(doc),
            doc.get("facility", ""),
            doc["instances"],
            len(doc["series"]),
            doc["bytes"],
            doc["first_received"],
            doc["last_received"],
            state,
            upload[1] if upload else None,
        )

    # -- destinations ---------------------------------------------------------------------
    def add_destination(
        self, ae_title: str, host: str, port, description: str = ""
    ) -> Destination:
        item = self.destinations.add(ae_title, host, port, description)
        self._save_destinations()
        LOG.info("destination %s added: %s:%d", item.ae_title, item.host, item.port)
        return item

    def remove_destination(self, ae_title: str) -> Destination:
        item = self.destinations.remove(ae_title)
        self._save_destinations()
        LOG.info("destination %s removed", item.ae_title)
        return item

    def _save_destinations(self) -> None:
        self._writer.put("destinations", self.destinations.snapshot())
        if not self._writer.flush():
            raise ArchiveError(
                "could not save destinations: the DB writer is stuck "
                f"({self._writer.stats().get('last_error')})"
            )

    def send_study(self, study_uid: str, ae_title: str) -> Job:
        """C-STORE a study's instances to a destination, as a C-MOVE to it would."""
        where = self.destinations.get(ae_title)
        if where is None:
            raise ArchiveMissing(f"no destination {ae_title!r} (see `dicomtui dest list`)")
        study = self.index.study(study_uid)
        if study is None:
            raise ArchiveMissing(f"no indexed study {study_uid!r}")
        return self.jobs.start(
            "send",
            f"send {study_title(study)} to {where.ae_title}",
            lambda r: self._send(r, study_uid, where),
        )

    def _send(
        self, reporter: Reporter, study_uid: str, where: Destination
    ) -> tuple[str, dict]:
        items = [
            Item(i.sop_class, i.syntax, path=self.storage.root / i.path, size=i.size)
            for i in self.index.instances(study_uid)
        ]
        summary = SendSummary()
        reporter.progress(0, len(items), f"sending {len(items)} instances")

        def progress(done: SendSummary) -> None:
            n = done.sent + done.failed
            reporter.progress(n, len(items), f"{n} of {len(items)} sent")

        error = ""
        try:
            peer = Peer(where.host, where.port, where.ae_title, self.settings.ae_title)
            send(items, peer, summary, progress)
        except SendError as exc:
            error = str(exc)
        failed = len(items) - summary.sent
        status = (
            0x0000
            if not failed and not summary.warnings
            else 0xA702
            if failed == len(items)
            else 0xB000
        )
        reason = error or _why_failed(summary, failed)
        tx = OperatorSend(
            outcome_of(status),
            status,
            reason,
            calling_ae=self.settings.ae_title,
            called_ae=where.ae_title,
            peer=f"{where.host}:{where.port}",
            destination=where.ae_title,
            study_uid=study_uid,
            total=len(items),
            completed=summary.sent - summary.warnings,
            warning=summary.warnings,
            failed=failed,
            converted=summary.converted,
            bytes=summary.bytes,
        )
        self._recorder.record(tx)
        result = {
            "total": tx.total,
            "completed": tx.completed,
            "warning": tx.warning,
            "failed": tx.failed,
        }
        if error and not summary.sent:
            raise RuntimeError(error)
        return (
            f"sent {summary.sent} of {len(items)} to {where.ae_title}"
            + (f"; {reason}" if failed else "")
        ), result

    # -- storage ------------------------------------------------------------------------
    def storage_report(self) -> StorageReport:
        self.storage.count_usage()
        disk = shutil.disk_usage(self.storage.root)
        docs = self.index.all_studies()
        by_facility: dict[str, UsageRow] = {}
        by_modality: dict[str, UsageRow] = {}
        by_day: dict[str, UsageRow] = {}
        settings = self.settings
        for doc in docs:
            for table, key in (
                (by_facility, doc.get("facility") or "unknown"),
                (by_day, doc["first_received"][:10]),
            ):
                row = table.setdefault(key, UsageRow(key))
                row.studies += 1
                row.instances += doc["instances"]
                row.bytes += doc["bytes"]
            for modality in {s["modality"] or "?" for s in doc["series"].values()}:
                by_modality.setdefault(modality, UsageRow(modality)).studies += 1
            for s in doc["series"].values():
                row = by_modality[s["modality"] or "?"]
                row.instances += s["instances"]
                row.bytes += s["bytes"]
        return StorageReport(
            str(self.storage.root),
            self.storage.used_bytes,
            quota_of(settings),
            disk.total,
            disk.free,
            len(docs),
            sum(d["instances"] for d in docs),
            sum(d["bytes"] for d in docs),
            sorted(by_facility.values(), key=lambda r: -r.bytes),
            sorted(by_modality.values(), key=lambda r: -r.bytes),
            sorted(by_day.values(), key=lambda r: r.key, reverse=True),
            settings.auto_cleanup,
            settings.retention_days,
        )

    # -- reindex -----------------------------------------------------------------------
    def start_reindex(self) -> Job:
        return self.jobs.start(
            "reindex", "reindex: rebuild the index from storage", self._reindex, MAINTENANCE
        )

    def _reindex(self, reporter: Reporter) -> tuple[str, dict]:
        with self.index.lock:
            old = {uid: d.get("facility", "") for uid, d in self.index.studies.items()}
        by_folder = self.settings.layout.startswith("facility/")

        def facility_for(uid: str, relative: str) -> str:
            if old.get(uid):
                return old[uid]
            return relative.split("/", 1)[0] if by_folder and "/" in relative else ""

        self._during_reindex = []
        try:
            rebuilt = rebuild(
                self.storage.root,
                self.index.folder / "instances.new",
                facility_for,
                reporter.progress,
                lambda: reporter.cancel_requested,
            )
            if reporter.cancel_requested:
                shutil.rmtree(rebuilt.folder, ignore_errors=True)
                return "cancelled; the index is unchanged", {}
            late = install(self.index, rebuilt, self._during_reindex)
        finally:
            self._during_reindex = None
        self._writer.put("index", None)
        self._writer.flush()
        self.storage.count_usage(again=True)
        message = (
            f"indexed {rebuilt.indexed} of {rebuilt.files} files in "
            f"{len(rebuilt.studies)} studies; {len(rebuilt.unreadable)} unreadable"
        )
        LOG.info("reindex: %s (%d stored meanwhile added)", message, late)
        return message, {
            "files": rebuilt.files,
            "indexed": rebuilt.indexed,
            "studies": len(rebuilt.studies),
            "unreadable": [f"{p}: {r}" for p, r in rebuilt.unreadable[:100]],
            "unreadable_count": len(rebuilt.unreadable),
        }


def _study_tests(query: StudyQuery) -> list:
    tests = []
    patient = text_search(query.patient)
    if patient:
        tests.append(lambda d: patient(d["patient_name"]) or patient(d["patient_id"]))
    accession = text_search(query.accession)
    if accession:
        tests.append(lambda d: accession(d["accession"]))
    low, high = _date(query.date_from, "from"), _date(query.date_to, "to")
    if low:
        tests.append(lambda d: bool(d["study_date"]) and d["study_date"] >= low)
    if high:
        tests.append(lambda d: bool(d["study_date"]) and d["study_date"] <= high)
    modality = query.modality.strip().upper()
    if modality:
        tests.append(lambda d: modality in modalities(d))
    facility = text_search(query.facility)
    if facility:
        tests.append(lambda d: facility(d.get("facility", "")))
    return tests


def _date(text: str, which: str) -> str:
    value = text.strip().replace("-", "")
    if value and not (len(value) == 8 and value.isdigit()):
        raise ArchiveError(f"date {which} {text!r}: use YYYYMMDD or YYYY-MM-DD")
    return value


def _why_failed(summary: SendSummary, failed: int) -> str:
    """'N failed', with the commonest reason an instance could not go, if any."""
    if not failed:
        return ""
    if not summary.unsendable:
        return f"{failed} failed"
    reason, count = summary.unsendable.most_common(1)[0]
    return f"{failed} failed" + (": " if count == failed else f", {count} as ") + reason


def study_title(doc: dict) -> str:
    """'CT study of 2026-11-20 (…4d2a91)': a study as a job's title, in words and
    without patient data (the UID's tail tells two studies of one day apart)."""
    kinds = "/".join(modalities(doc)) or "a"
    raw = doc.get("study_date") or ""
    day = f" of {raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else ""
    return f"{kinds} study{day} (…{doc.get('study_uid', '')[-6:]})"
