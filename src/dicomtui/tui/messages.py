"""Messages from the console's thread workers to the app: small, one per batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from dicomtui.models import (
    AllowedCaller,
    AnonSubject,
    Destination,
    EventBatch,
    Facility,
    Job,
    PacsConfig,
    SeriesRow,
    SettingValue,
    StatusSnapshot,
    StorageReport,
    StudyPage,
    StudyQuery,
    UploadItem,
)


@dataclass
class Connected(Message):
    """A Backend is ready; `start_error` says why autostart failed, if it did."""

    backend: Any
    start_error: str = ""


@dataclass
class ConnectFailed(Message):
    """No Backend: the data dir is locked, unreadable, ... (`reason` is for people)."""

    reason: str


@dataclass
class Polled(Message):
    """One poll's worth of state: the snapshot and the events since the last poll."""

    snapshot: StatusSnapshot
    batch: EventBatch
    tail: list[dict] | None = None  # new Log rows when the Log screen follows
    tail_cursor: int | None = None
    tail_filter: Any = None  # the filter the tail was read with (stale ones are dropped)
    tail_replace: bool = False  # the tail is the newest rows, replacing the table


@dataclass
class PollFailed(Message):
    reason: str


@dataclass
class ActionDone(Message):
    """start/stop/restart finished; the snapshot is the state after it."""

    action: str
    snapshot: StatusSnapshot | None = None
    error: str = ""


@dataclass
class RowsLoaded(Message):
    """Transactions for the Log table: `where` is "replace" or "older"."""

    where: str
    rows: list[dict] = field(default_factory=list)
    cursor: int = 0  # the newest transaction id known when the rows were read
    error: str = ""


@dataclass
class SettingsLoaded(Message):
    values: list[SettingValue]


@dataclass
class FacilitiesLoaded(Message):
    """The facilities, and what a remote PACS enters (None: not read this time)."""

    facilities: list[Facility]
    config: PacsConfig | None = None
    anonymize: bool | None = None  # the anonymize setting, read with the config
    error: str = ""


@dataclass
class AccessLoaded(Message):
    """The access policy settings, the allowed callers and recent refusals."""

    settings: list[SettingValue] = field(default_factory=list)
    callers: list[AllowedCaller] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    cursor: int | None = None  # the newest transaction id read (see fetch_refused)
    error: str = ""


@dataclass
class AnonLoaded(Message):
    """The anonymization settings and the subjects matching `search`, masked."""

    settings: list[SettingValue] = field(default_factory=list)
    subjects: list[AnonSubject] = field(default_factory=list)
    search: str = ""
    error: str = ""


@dataclass
class AnonRevealed(Message):
    """Every subject with its originals, asked for by reveal number `reveal`; stale
    once the screen has masked them again since."""

    reveal: int
    subjects: list[AnonSubject] = field(default_factory=list)
    error: str = ""


@dataclass
class UploadsLoaded(Message):
    """The upload settings (target, switches; no secrets) and the queue, newest first."""

    settings: list[SettingValue] = field(default_factory=list)
    items: list[UploadItem] = field(default_factory=list)
    error: str = ""


@dataclass
class StudiesLoaded(Message):
    """One page of the study index for `query` (stale once the search has changed)."""

    query: StudyQuery
    page: StudyPage | None = None
    error: str = ""


@dataclass
class SeriesLoaded(Message):
    """The series of one study; `missing` when the study is no longer indexed."""

    series: list[SeriesRow] = field(default_factory=list)
    error: str = ""
    missing: bool = False


@dataclass
class DestinationsLoaded(Message):
    destinations: list[Destination] = field(default_factory=list)
    error: str = ""


@dataclass
class StorageLoaded(Message):
    """The storage report, and the cleanup or reindex running now (started anywhere)."""

    report: StorageReport | None = None
    jobs: list[Job] = field(default_factory=list)
    error: str = ""


@dataclass
class JobStarted(Message):
    """A background job the Backend accepted (or the reason it did not)."""

    job: Job | None = None
    error: str = ""


@dataclass
class JobsRead(Message):
    """The jobs being followed, as read now; `gone` are ids the Backend forgot (a
    restarted service)."""

    jobs: list[Job] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class ChangeDone(Message):
    """A facility, caller or setting change finished: `said` tells people what
    happened; `invalid` when the request itself was wrong (a dialog shows it in place)."""

    result: Any = None
    said: str = ""
    error: str = ""
    invalid: bool = False
    missing: bool = False  # NotFound: what it changes is gone


@dataclass
class Closed(Message):
    """The Backend is closed (the local receiver stopped and flushed): exit now."""
