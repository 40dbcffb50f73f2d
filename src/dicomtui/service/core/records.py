"""Records that cross components: an acknowledged instance, and transactions by kind.

Transactions are saved and shown as flat dicts.

Components hand these to the Recorder; the transaction log, the control API and the
front ends see `to_dict()`, whose keys are the log's public shape (see `dicomtui log
--json`), so a field renamed here is a change of that shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypedDict

from dicomtui.dicom.identify import Identity
from dicomtui.models import OK, REFUSED, WARNING, SendReport, outcome_of
from dicomtui.service.core.events import now_iso


@dataclass(frozen=True)
class StoredInstance:
    """One instance on disk and acknowledged: what every component tracking it needs
    (the index, study completion, the counters)."""

    ident: Identity  # as stored: anonymized values when anonymizing
    path: str  # relative to the storage root
    size: int
    added: int  # bytes the storage grew by (less when it replaced a copy)
    duplicate: bool  # a copy with this SOP Instance UID was there already
    syntax: str  # transfer syntax UID
    facility: str
    when: str  # ISO 8601, received

    @property
    def kept_old_copy(self) -> bool:
        """duplicate_policy=keep answered with the copy already stored."""
        return self.duplicate and self.size == 0

    def to_json(self) -> dict[str, Any]:
        """For the journal: every field, the identity as a dict."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "ident": dict(vars(self.ident)),  # flat values: no deep copy needed
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredInstance:
        known = {f.name for f in fields(Identity)}
        ident = Identity(**{k: v for k, v in data["ident"].items() if k in known})
        return cls(**{**data, "ident": ident})


def peer_of(assoc) -> str:
    """'ip:port' of the association's requestor."""
    requestor = assoc.requestor
    return f"{requestor.address}:{requestor.port}"


def called_ae_of(assoc) -> str:
    primitive = assoc.requestor.primitive
    return (primitive.called_ae_title if primitive is not None else "").strip()


def calling_ae_of(assoc) -> str:
    return (assoc.requestor.ae_title or "").strip()


class Who(TypedDict):
    calling_ae: str
    called_ae: str
    peer: str


def who(assoc) -> Who:
    """The calling AE, called AE and peer address of an association, as record fields."""
    return {
        "calling_ae": calling_ae_of(assoc),
        "called_ae": called_ae_of(assoc),
        "peer": peer_of(assoc),
    }


_ABSENT_WHEN_NONE = frozenset({"association", "jid"})


@dataclass
class Transaction:
    """What every record has; `association` is set when one carried it."""

    KIND: ClassVar[str] = ""
    outcome: str = OK
    status: int | None = None
    reason: str = ""
    calling_ae: str = ""
    called_ae: str = ""
    peer: str = ""
    facility: str = ""
    association: int | None = None
    jid: str | None = None  # the journal line of an acknowledged instance
    time: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"time": self.time, "type": self.KIND}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "time" and not (f.name in _ABSENT_WHEN_NONE and value is None):
                record[f.name] = value
        return record

    @property
    def is_problem(self) -> bool:
        return self.outcome not in (OK, WARNING)

    def summary(self) -> str:
        """One line for the live log: what, from whom, and how it ended."""
        return (
            f"{self.what()} from {self.calling_ae} ({self.peer}): {self.outcome} "
            f"{self.reason}"
        ).strip()

    def what(self) -> str:
        return self.KIND


@dataclass
class Refusal(Transaction):
    """An association refused, by our access rules or by pynetdicom's negotiation."""

    KIND: ClassVar[str] = "association"
    outcome: str = REFUSED
    rule: str = ""
    repeats: int = 0  # like refusals since the previous record, left out of the log


@dataclass
class ContextRefusal(Transaction):
    """Presentation contexts an association asked for and was refused by the services,
    sop_classes or transfer_syntaxes settings (refused: none it asked for was left)."""

    KIND: ClassVar[str] = "association"
    outcome: str = WARNING
    rule: str = ""
    contexts: list[str] = field(default_factory=list)


@dataclass
class AssociationEnd(Transaction):
    """An accepted association, recorded when it ends (released, aborted, dropped)."""

    KIND: ClassVar[str] = "association"
    instances: int = 0
    bytes: int = 0
    started: str = ""


@dataclass
class Echo(Transaction):
    KIND: ClassVar[str] = "echo"


@dataclass
class Store(Transaction):
    """One C-STORE: who sent what, where it went, how long it took, and the answer."""

    KIND: ClassVar[str] = "store"
    sop_class: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    patient_id: str = ""
    modality: str = ""
    transfer_syntax: str = ""
    bytes: int = 0
    duration_ms: float = 0.0
    path: str = ""
    duplicate: bool = False

    def what(self) -> str:
        return f"store {self.modality} {self.sop_uid or '?'}".replace("  ", " ")


@dataclass
class Find(Transaction):
    """One C-FIND: the level, the names of the keys used (never values), matches."""

    KIND: ClassVar[str] = "find"
    level: str | None = None
    keys: str = ""
    matches: int = 0
    duration_ms: float = 0.0


@dataclass
class Retrieve(Transaction):
    """One C-GET, or a C-MOVE (to `destination`), with its sub-operation counts."""

    KIND: ClassVar[str] = "get"
    total: int = 0
    completed: int = 0
    warning: int = 0
    failed: int = 0
    converted: int = 0  # sent in another transfer syntax than their file's
    duration_ms: float = 0.0


@dataclass
class Move(Retrieve):
    KIND: ClassVar[str] = "move"
    destination: str = ""


@dataclass
class OperatorSend(Move):
    """A study sent to a destination from a front end: the C-STOREs of a C-MOVE; or,
    initiated by "send", files sent to any peer by `dicomtui send`."""

    study_uid: str = ""
    initiated: str = "operator"
    bytes: int = 0


def send_status(total: int, ok: int, warning: int) -> int:
    """A send's overall status, as a C-MOVE's: 0, 0xB000 (some failed or warned),
    0xA702 (none went)."""
    if ok == total:
        return 0x0000
    return 0xA702 if ok + warning == 0 else 0xB000


def operator_send(report: SendReport) -> OperatorSend:
    """The transaction a front end's `dicomtui send` is logged as."""
    status = send_status(report.total, report.completed, report.warning)
    return OperatorSend(
        outcome_of(status),
        status,
        report.reason,
        calling_ae=report.calling_ae,
        called_ae=report.called_ae,
        peer=report.peer,
        destination=report.called_ae,
        initiated="send",
        total=report.total,
        completed=report.completed,
        warning=report.warning,
        failed=report.failed,
        converted=report.converted,
        bytes=report.bytes,
    )


@dataclass
class Cleanup(Transaction):
    """A study removed from storage by cleanup, with why."""

    KIND: ClassVar[str] = "cleanup"
    study_uid: str = ""
    instances: int = 0
    bytes: int = 0
    last_received: str = ""
