"""The Backend seam: the whole surface a front end (CLI, console, control API) may use."""

from __future__ import annotations

from typing import Protocol

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


class BackendError(RuntimeError):
    """An operation the engine refused or could not do; the message is for people."""


class InvalidRequest(BackendError):
    """The request itself was wrong (bad setting value, unknown name): a usage error."""


class NotFound(BackendError):
    """The named facility or caller does not exist."""


class Backend(Protocol):
    """Implemented by LocalBackend (engine in this process) and RemoteBackend (service)."""

    mode: str  # "local" | "service"

    def status(self) -> StatusSnapshot: ...

    def start(self) -> StatusSnapshot: ...

    def stop(self) -> StatusSnapshot: ...

    def restart(self) -> StatusSnapshot: ...

    def events(
        self, after: int = 0, limit: int = 1000, kinds: list[str] | None = None
    ) -> EventBatch: ...

    def transactions(self, flt: TransactionFilter) -> list[dict]: ...

    def settings(self) -> list[SettingValue]: ...

    def set_setting(self, name: str, value: str) -> SettingValue: ...

    def unset_setting(self, name: str) -> SettingValue: ...

    # -- facilities: a name, an AE title and a port each (one listener each) ----------
    def facilities(self) -> list[Facility]: ...

    def add_facility(
        self,
        name: str,
        port: int | None = None,
        ae_title: str | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        """AE title generated from the name and the next free port unless given;
        InvalidRequest says what is wrong. Starts its listener if the receiver runs."""

    def update_facility(
        self,
        name: str,
        ae_title: str | None = None,
        port: int | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        """Change what is given (None = keep); a running listener moves live.
        `anonymize`: "on", "off" or "default" (follow the anonymize setting)."""

    def remove_facility(self, name: str) -> Facility:
        """Stops its listener (NotFound if there is no such facility)."""

    def pacs_config(self) -> PacsConfig: ...

    # -- allowed callers -------------------------------------------------------------
    def callers(self) -> list[AllowedCaller]: ...

    def allow_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        """Add or re-activate a caller; ip/description None = keep, "" = clear."""

    def update_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        """Edit a known caller, keeping it allowed or denied (NotFound if unknown)."""

    def deny_caller(self, ae_title: str) -> AllowedCaller:
        """Mark a caller inactive (added as denied if unknown): always refused."""

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        """Forget a caller (NotFound if unknown)."""

    # -- anonymization map -------------------------------------------------------------
    def anon_subjects(self, search: str = "", reveal: bool = False) -> list[AnonSubject]:
        """Subject codes (those containing `search`, any case); originals masked unless
        `reveal` (each reveal is logged as a warning, without the identities)."""

    def export_anonymization(self, path: str) -> AnonExport:
        """Write the map's identities (code, originals, counts) as JSON to `path`
        (mode 0600, a new file: InvalidRequest if it exists or cannot be written)."""

    def anon_originals(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        """What `restore` needs of each anonymized instance, by (subject code, study
        UID, SOP Instance UID): {"originals": {...}} or {"error": why}, in order
        (InvalidRequest when there is no map). Answers every instance acknowledged."""

    # -- the upload queue --------------------------------------------------------------
    def uploads(self) -> list[UploadItem]:
        """Every item, newest first."""

    def upload(self, path: str) -> UploadItem:
        """Queue a zip, or a study folder (zipped first); InvalidRequest if it is
        neither or does not exist."""

    def retry_upload(self, item_id: int) -> UploadItem:
        """A failed or cancelled item back to queued, due now (NotFound if unknown)."""

    def cancel_upload(self, item_id: int) -> UploadItem:
        """Stop trying (an upload in progress is abandoned); InvalidRequest if done."""

    # -- the archive: index, destinations, storage ---------------------------------------
    def studies(self, query: StudyQuery) -> StudyPage:
        """Indexed studies matching `query`, newest received first, with their state."""

    def series(self, study_uid: str) -> list[SeriesRow]:
        """The series of one study by series number (NotFound if not indexed)."""

    def destinations(self) -> list[Destination]:
        """C-MOVE destinations, by AE title."""

    def add_destination(
        self, ae_title: str, host: str, port: int, description: str = ""
    ) -> Destination:
        """Add or replace one (InvalidRequest for a bad AE title, host or port)."""

    def remove_destination(self, ae_title: str) -> Destination:
        """NotFound if there is no such destination."""

    def send_study(self, study_uid: str, ae_title: str) -> Job:
        """Start sending a study to a destination (C-STORE sub-operations, as a C-MOVE
        out); NotFound for an unknown study or destination. Progress: job()."""

    def record_send(self, report: SendReport) -> None:
        """Log a send a front end made itself (`dicomtui send`) as one transaction."""

    def storage_report(self) -> StorageReport: ...

    def cleanup_plan(self, older_than_days: float | None = None) -> CleanupPlan:
        """What cleanup would remove: studies received more than `older_than_days`
        ago (default retention_days), oldest first; studies being received or waiting
        for upload are kept, with the reason."""

    def start_cleanup(self, older_than_days: float | None = None) -> Job:
        """Remove what cleanup_plan() lists now, in the background; each study is
        logged. InvalidRequest if a cleanup or reindex is already running."""

    def start_reindex(self) -> Job:
        """Rebuild the index from the storage tree in the background; unreadable files
        are counted and logged, not fatal."""

    def jobs(self) -> list[Job]:
        """Background jobs, newest first (finished ones are kept for a while)."""

    def job(self, job_id: int) -> Job:
        """One job (NotFound if unknown)."""

    def close(self) -> None: ...
