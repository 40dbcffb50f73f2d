"""The plain shapes the engine produces and every front end sees (JSON-ready).

They sit below every layer so the engine can build them without importing the Backend
layer above it; `to_dict`/`from_dict` carry them over the control API.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Listener:
    """One SCP listener: the main one (name "main") or a facility's (its name)."""

    ae_title: str
    host: str
    port: int
    state: str  # "listening" | "stopped" | "error"
    name: str = "main"
    error: str = ""
    tls: bool = False  # DICOM TLS (the main TLS listener)


@dataclass
class AssociationInfo:
    """An association in progress."""

    id: int
    calling_ae: str
    called_ae: str
    peer: str
    started: str  # ISO 8601
    instances: int = 0
    bytes: int = 0
    facility: str = ""  # the facility it was recognised as ("unknown" if none)


@dataclass
class Counters:
    """Counts of what happened, since start or today."""

    received: int = 0
    bytes: int = 0
    failed: int = 0
    refused: int = 0
    echoes: int = 0
    associations: int = 0


@dataclass
class Event:
    """One entry of the engine's event stream (transactions, log records, state)."""

    seq: int
    time: str
    kind: str  # "transaction" | "log" | "state"
    level: str  # "INFO", "WARNING", "ERROR", ...
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventBatch:
    """Events after a sequence number; `seq` is the newest seq the engine has issued."""

    seq: int
    events: list[Event] = field(default_factory=list)
    dropped: int = 0  # events that fell out of the ring buffer before being read


UPLOAD_STATES = ("queued", "uploading", "done", "failed", "cancelled")


@dataclass
class UploadItem:
    """One zip in the upload queue; the queue is durable (TinyDB), so an item survives
    restarts and crashes. `bytes_sent` counts the current attempt (in memory)."""

    id: int
    path: str  # the zip file
    study_uid: str = ""
    size: int = 0
    state: str = "queued"  # one of UPLOAD_STATES
    attempts: int = 0
    bytes_sent: int = 0
    next_attempt: str | None = None  # ISO 8601: when a queued item is due again
    last_error: str = ""  # the server's message, or what went wrong on the way
    created: str = ""
    finished: str | None = None  # when it reached done, failed or cancelled
    source: str = "auto"  # "auto" (a completed study) | "manual" (dicomtui upload)
    version: int = 1  # a study completed again after late instances: 2, 3, ...


@dataclass
class UploadSummary:
    """Counts of the upload queue by state, for the status views."""

    queued: int = 0
    uploading: int = 0
    failed: int = 0
    done: int = 0


@dataclass
class StatusSnapshot:
    """Everything the status views show, taken at one moment."""

    state: str  # "stopped" | "starting" | "running" | "stopping" | "error"
    mode: str  # "local" | "service"
    pid: int
    version: str
    data_dir: str
    storage_dir: str
    started_at: str | None = None
    uptime_s: float = 0.0
    listeners: list[Listener] = field(default_factory=list)
    associations: list[AssociationInfo] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    today: Counters = field(default_factory=Counters)
    storage_used_bytes: int = 0
    quota_bytes: int = 0
    last_errors: list[Event] = field(default_factory=list)
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    uploads: UploadSummary = field(default_factory=UploadSummary)
    # "console" for a `dicomtui serve` a console started (its quit asks whether to stop
    # it); "" for one started otherwise (systemd, a shell), which a console never stops
    started_by: str = ""
    # [epoch second, images] of the last five minutes, kept by the service
    received_by_second: list[list[int]] = field(default_factory=list)


@dataclass
class SettingValue:
    """One effective setting with its source; secrets arrive masked."""

    name: str
    value: Any
    source: str  # "command line" | "environment" | "stored" | "default"
    default: Any
    help: str
    restart_required: bool
    pending_restart: bool = False


@dataclass
class Facility:
    """A sending site: its own AE title and port (one listener), and the calling AE
    titles registered to it; the *_today and last_seen fields are filled by the engine."""

    name: str
    ae_title: str
    port: int
    calling_aes: list[str] = field(default_factory=list)
    created: str = ""  # ISO 8601
    auto_created: bool = False  # made by auto_create_facilities from a calling AE
    listener: str = "stopped"  # "listening" | "stopped" | "error"
    error: str = ""  # why the listener is not listening
    instances_today: int = 0
    studies_today: int = 0
    last_seen: str | None = None  # ISO 8601 of the last association or instance
    anonymize: str = "default"  # "on" | "off" | "default" (= the anonymize setting)


@dataclass
class AllowedCaller:
    """A calling AE title that may associate (when active), optionally only from `ip`."""

    ae_title: str
    description: str = ""
    ip: str = ""  # an address or CIDR network; empty = any address
    active: bool = True  # False = denied: refused even when require_calling_ae is off
    created: str = ""  # ISO 8601


@dataclass
class PacsConfig:
    """What a remote PACS must enter to send here: addresses, and per listener the AE
    title and port (the main listener first, then each facility)."""

    hostname: str
    addresses: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)


ANONYMIZE_CHOICES = ("default", "on", "off")
MASK = "\u2022" * 6  # what a masked original identity shows as


@dataclass
class AnonSubject:
    """One subject code of the anonymization map; the originals are MASK unless the
    caller asked to reveal them (an audited action)."""

    code: str  # "sub-001"
    studies: int = 0
    instances: int = 0
    first_seen: str | None = None  # ISO 8601
    last_seen: str | None = None
    patient_name: str = MASK
    patient_id: str = MASK
    issuer: str = MASK
    revealed: bool = False


@dataclass
class AnonExport:
    """What `export_anonymization` wrote."""

    path: str
    subjects: int


STUDY_STATES = (
    "receiving",
    "complete",
    "zipped",
    "queued",
    "uploading",
    "uploaded",
    "failed",
)


@dataclass
class SeriesRow:
    """One series of an indexed study: counts, never a row per instance."""

    uid: str
    number: int | None = None
    modality: str = ""
    description: str = ""
    instances: int = 0
    bytes: int = 0


@dataclass
class StudyRow:
    """One indexed study as the Studies screen and `dicomtui studies` show it."""

    uid: str
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""
    study_date: str = ""  # YYYYMMDD as sent
    study_time: str = ""
    accession: str = ""
    study_id: str = ""
    description: str = ""
    referring: str = ""
    modalities: list[str] = field(default_factory=list)
    facility: str = ""
    instances: int = 0
    series: int = 0
    bytes: int = 0
    first_received: str = ""  # ISO 8601
    last_received: str = ""
    state: str = "complete"  # one of STUDY_STATES
    upload_id: int | None = None  # the newest upload item of this study, if any


@dataclass
class StudyQuery:
    """What the Studies screen searches by; empty = any. Text matches any part, any
    case, and may use * and ?."""

    patient: str = ""  # name or ID
    accession: str = ""
    date_from: str = ""  # YYYYMMDD (study date)
    date_to: str = ""
    modality: str = ""
    facility: str = ""
    limit: int = 500  # newest first


@dataclass
class StudyPage:
    """The studies matching a StudyQuery (at most its limit) and how many matched."""

    studies: list[StudyRow] = field(default_factory=list)
    total: int = 0


@dataclass
class Destination:
    """A C-MOVE destination: where `AE` is found on the network."""

    ae_title: str
    host: str
    port: int
    description: str = ""
    created: str = ""


@dataclass
class SendReport:
    """A `dicomtui send` to any peer, done by a front end, for the transaction log."""

    called_ae: str
    calling_ae: str
    peer: str  # host:port
    total: int = 0
    completed: int = 0
    warning: int = 0
    failed: int = 0
    converted: int = 0
    bytes: int = 0
    reason: str = ""  # why it ended early, else the commonest reason files failed


@dataclass
class UsageRow:
    """Storage used by one facility, modality or day."""

    key: str
    studies: int = 0
    instances: int = 0
    bytes: int = 0


@dataclass
class StorageReport:
    """What `dicomtui storage` and screen 6 show."""

    root: str
    used_bytes: int = 0  # files under the storage root (what the quota counts)
    quota_bytes: int = 0  # 0 = no quota
    disk_total: int = 0
    disk_free: int = 0
    studies: int = 0
    instances: int = 0
    indexed_bytes: int = 0
    by_facility: list[UsageRow] = field(default_factory=list)
    by_modality: list[UsageRow] = field(default_factory=list)
    by_day: list[UsageRow] = field(default_factory=list)  # received, newest first
    auto_cleanup: bool = False
    retention_days: int = 0


@dataclass
class CleanupCandidate:
    """A study cleanup would remove (or keeps, with the reason)."""

    uid: str
    patient_id: str = ""
    study_date: str = ""
    facility: str = ""
    last_received: str = ""
    instances: int = 0
    bytes: int = 0
    kept_because: str = ""  # empty = removed


@dataclass
class CleanupPlan:
    """What a cleanup removes (oldest first) and what it must keep."""

    older_than_days: float
    remove: list[CleanupCandidate] = field(default_factory=list)
    keep: list[CleanupCandidate] = field(default_factory=list)
    bytes: int = 0


JOB_KINDS = ("cleanup", "reindex", "send")
JOB_STATES = ("running", "done", "failed", "cancelled")


@dataclass
class Job:
    """Long work the engine runs in the background, with progress for a bar."""

    id: int
    kind: str  # one of JOB_KINDS
    title: str
    state: str = "running"  # one of JOB_STATES
    total: int = 0
    done: int = 0
    message: str = ""  # the latest progress line, or the outcome
    started: str = ""
    finished: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


TRANSACTION_TYPES = ("association", "echo", "store", "find", "move", "get", "cleanup")
OK, WARNING, FAILED, REFUSED = "ok", "warning", "failed", "refused"
OUTCOMES = (OK, WARNING, FAILED, REFUSED)
CANCELLED_STATUS = 0xFE00  # a C-FIND/C-MOVE/C-GET ended by the requester's C-CANCEL


def is_warning(status: int) -> bool:
    """A DIMSE status that succeeded with a warning (PS3.7 C.1: 0001, 0107, 0116, Bxxx)."""
    return status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF


def outcome_of(status: int | None) -> str:
    """The one outcome word of a DIMSE status: ok, warning or failed.

    "refused" is for associations, which have no DIMSE status; a cancel the requester
    asked for counts as ok.
    """
    if status in (0x0000, CANCELLED_STATUS):
        return OK
    if status is not None and is_warning(status):
        return WARNING
    return FAILED


def status_word(word: str) -> tuple[str | None, int | None]:
    """(outcome, None) or (None, status code) for a word like "failed" or "0xA700".

    The CLI's `log --status` and the console's `status:` filter read it the same way;
    ValueError says what would have been accepted.
    """
    if word.lower() in OUTCOMES:
        return word.lower(), None
    try:
        return None, int(word.lower().removeprefix("0x"), 16)
    except ValueError:
        raise ValueError(
            f"{word!r} is not one of {', '.join(OUTCOMES)} nor a hex "
            "status code like 0xA700"
        ) from None


@dataclass
class TransactionFilter:
    """Filters for the transaction log; None means any."""

    types: list[str] | None = None
    outcomes: list[str] | None = None
    statuses: list[int] | None = None
    ae: str | None = None
    since: str | None = None  # ISO 8601
    after_id: int | None = None
    before_id: int | None = None  # page backwards: the newest records older than this
    text: str | None = None  # case-insensitive substring of any field
    limit: int = 200


def to_dict(obj: Any) -> Any:
    """A dataclass (or list of them) as JSON-ready data."""
    if isinstance(obj, list):
        return [to_dict(item) for item in obj]
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: Any) -> Any:
    """Rebuild a dataclass (nested dataclasses and lists of them too) from JSON data."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if (
        isinstance(hint, type)
        and dataclasses.is_dataclass(hint)
        and isinstance(value, dict)
    ):
        return from_dict(hint, value)
    if typing.get_origin(hint) is list and isinstance(value, list):
        (item_hint,) = typing.get_args(hint) or (Any,)
        return [_convert(item_hint, item) for item in value]
    return value
