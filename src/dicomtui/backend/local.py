"""LocalBackend: the engine in this process, behind the same seam as the service."""

from __future__ import annotations

import contextlib
from datetime import datetime

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.models import (
    AllowedCaller,
    AnonExport,
    AnonSubject,
    CleanupPlan,
    Destination,
    EventBatch,
    Facility,
    Job,
    PacsConfig,
    SendReport,
    SeriesRow,
    SettingValue,
    StatusSnapshot,
    StorageReport,
    StudyPage,
    StudyQuery,
    TransactionFilter,
    UploadItem,
)
from dicomtui.service.archive.archive import ArchiveError, ArchiveMissing
from dicomtui.service.archive.destinations import DestinationError, DestinationMissing
from dicomtui.service.archive.jobs import JobError
from dicomtui.service.core.records import operator_send
from dicomtui.service.engine import Engine, EngineError
from dicomtui.service.privacy.privacy import PrivacyError
from dicomtui.service.shipping.shipping import QueueError, QueueMissing, ShippingError
from dicomtui.service.sites.access import CallerError, CallerMissing
from dicomtui.service.sites.facilities import FacilityError, FacilityMissing
from dicomtui.service.sites.sites import SitesError
from dicomtui.settings import SettingError


@contextlib.contextmanager
def _translated():
    """The engine's own errors as the Backend's: bad input, unknown name, failure."""
    try:
        yield
    except (
        FacilityError,
        CallerError,
        PrivacyError,
        ShippingError,
        QueueError,
        ArchiveError,
        DestinationError,
        JobError,
    ) as exc:
        raise InvalidRequest(str(exc)) from None
    except (
        FacilityMissing,
        CallerMissing,
        QueueMissing,
        ArchiveMissing,
        DestinationMissing,
    ) as exc:
        raise NotFound(exc.args[0]) from None
    except (SitesError, EngineError) as exc:
        raise BackendError(str(exc)) from None


class LocalBackend:
    """Adapts an open Engine to the Backend protocol; `mode` says who runs it and
    `started_by` who started the service (see StatusSnapshot)."""

    def __init__(self, engine: Engine, mode: str = "local", started_by: str = "") -> None:
        self.engine = engine
        self.mode = mode
        self.started_by = started_by

    def status(self) -> StatusSnapshot:
        snap = self.engine.snapshot(self.mode)
        snap.started_by = self.started_by
        return snap

    def start(self) -> StatusSnapshot:
        return self._do(self.engine.start)

    def stop(self) -> StatusSnapshot:
        return self._do(self.engine.stop)

    def restart(self) -> StatusSnapshot:
        return self._do(self.engine.restart)

    def _do(self, action) -> StatusSnapshot:
        try:
            action()
        except EngineError as exc:
            raise BackendError(str(exc)) from None
        return self.status()

    def events(
        self, after: int = 0, limit: int = 1000, kinds: list[str] | None = None
    ) -> EventBatch:
        return self.engine.ring.since(after, limit, frozenset(kinds) if kinds else None)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        try:
            since = datetime.fromisoformat(flt.since) if flt.since else None
        except ValueError:
            raise InvalidRequest(f"since: not an ISO 8601 time: {flt.since!r}") from None
        if since is not None and since.tzinfo is None:
            since = since.astimezone()
        return self.engine.txlog.query(
            types=flt.types,
            outcomes=flt.outcomes,
            statuses=flt.statuses,
            ae=flt.ae,
            since=since,
            after_id=flt.after_id,
            before_id=flt.before_id,
            text=flt.text,
            limit=flt.limit,
        )

    def settings(self) -> list[SettingValue]:
        return self.engine.setting_values()

    def set_setting(self, name: str, value: str) -> SettingValue:
        return self._change(self.engine.set_setting, name, value)

    def unset_setting(self, name: str) -> SettingValue:
        return self._change(lambda n, _v: self.engine.unset_setting(n), name, None)

    def _change(self, action, name: str, value) -> SettingValue:
        try:
            action(name, value)
        except SettingError as exc:
            raise InvalidRequest(str(exc)) from None
        except EngineError as exc:
            raise BackendError(str(exc)) from None
        return next(v for v in self.settings() if v.name == name)

    def facilities(self) -> list[Facility]:
        return self.engine.sites.facility_list()

    def add_facility(
        self,
        name: str,
        port: int | None = None,
        ae_title: str | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        with _translated():
            return self.engine.sites.add_facility(
                name, port, ae_title, calling_aes, anonymize=anonymize
            )

    def update_facility(
        self,
        name: str,
        ae_title: str | None = None,
        port: int | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        with _translated():
            return self.engine.sites.update_facility(
                name, ae_title, port, calling_aes, anonymize
            )

    def remove_facility(self, name: str) -> Facility:
        with _translated():
            return self.engine.sites.remove_facility(name)

    def pacs_config(self) -> PacsConfig:
        return self.engine.sites.pacs_config(self.engine.main_listeners())

    def callers(self) -> list[AllowedCaller]:
        return self.engine.sites.caller_list()

    def allow_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        with _translated():
            return self.engine.sites.allow_caller(ae_title, ip, description)

    def update_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        with _translated():
            return self.engine.sites.update_caller(ae_title, ip, description)

    def deny_caller(self, ae_title: str) -> AllowedCaller:
        with _translated():
            return self.engine.sites.allow_caller(ae_title, None, None, active=False)

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        with _translated():
            return self.engine.sites.remove_caller(ae_title)

    def anon_subjects(self, search: str = "", reveal: bool = False) -> list[AnonSubject]:
        with _translated():
            return self.engine.privacy.anon_subjects(search, reveal)

    def export_anonymization(self, path: str) -> AnonExport:
        with _translated():
            return self.engine.privacy.export_anonymization(path)

    def anon_originals(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        with _translated():
            return self.engine.privacy.originals_many([(a, b, c) for a, b, c in keys])

    def uploads(self) -> list[UploadItem]:
        return self.engine.shipping.upload_list()

    def upload(self, path: str) -> UploadItem:
        with _translated():
            return self.engine.shipping.upload_path(path)

    def retry_upload(self, item_id: int) -> UploadItem:
        with _translated():
            return self.engine.shipping.retry_upload(item_id)

    def cancel_upload(self, item_id: int) -> UploadItem:
        with _translated():
            return self.engine.shipping.cancel_upload(item_id)

    def studies(self, query: StudyQuery) -> StudyPage:
        with _translated():
            return self.engine.archive.study_page(query)

    def series(self, study_uid: str) -> list[SeriesRow]:
        with _translated():
            return self.engine.archive.series_rows(study_uid)

    def destinations(self) -> list[Destination]:
        return self.engine.archive.destinations.all()

    def add_destination(
        self, ae_title: str, host: str, port: int, description: str = ""
    ) -> Destination:
        with _translated():
            return self.engine.archive.add_destination(ae_title, host, port, description)

    def remove_destination(self, ae_title: str) -> Destination:
        with _translated():
            return self.engine.archive.remove_destination(ae_title)

    def send_study(self, study_uid: str, ae_title: str) -> Job:
        with _translated():
            return self.engine.archive.send_study(study_uid, ae_title)

    def record_send(self, report: SendReport) -> None:
        self.engine.recorder.record(operator_send(report))

    def storage_report(self) -> StorageReport:
        return self.engine.archive.storage_report()

    def cleanup_plan(self, older_than_days: float | None = None) -> CleanupPlan:
        with _translated():
            return self.engine.archive.retention.cleanup_plan(older_than_days)

    def start_cleanup(self, older_than_days: float | None = None) -> Job:
        with _translated():
            return self.engine.archive.retention.start_cleanup(older_than_days)

    def start_reindex(self) -> Job:
        with _translated():
            return self.engine.archive.start_reindex()

    def jobs(self) -> list[Job]:
        return self.engine.archive.jobs.all()

    def job(self, job_id: int) -> Job:
        found = self.engine.archive.jobs.get(job_id)
        if found is None:
            raise NotFound(f"no job {job_id}")
        return found

    def close(self) -> None:
        self.engine.close()
