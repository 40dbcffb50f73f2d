"""pynetdicom handlers for C-FIND, C-MOVE and C-GET over the archive index.

Each request is logged as one transaction with its counts. A caller recognised as a
facility sees that facility's studies only; the main listener's callers see all.
Sub-operation results are read from the C-STORE responses themselves (a DIMSE receive
hook), so the counts logged are the ones pynetdicom sends back, not a guess. What goes
out is decided per instance by a RetrieveSender (`sending/outbound.py`): the stored
bytes when the peer accepted their syntax, else a converted copy.
"""

from __future__ import annotations

import logging
import select
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import evt

from dicomtui.dicom.matching import QueryError
from dicomtui.models import CANCELLED_STATUS, is_warning, outcome_of
from dicomtui.service.archive.archive import Archive
from dicomtui.service.archive.index import Instance
from dicomtui.service.archive.query import answer, find, parse, retrieve_set
from dicomtui.service.core.records import (
    Find,
    Move,
    Retrieve,
    Transaction,
    calling_ae_of,
)
from dicomtui.service.receiving.dimse import explain
from dicomtui.service.sending.outbound import (
    RetrieveSender,
    StoredFile,
    contexts_for,
    install_on_established,
)

LOG = logging.getLogger("dicomtui.qr")
UNABLE = 0xC000  # "unable to process"
UNABLE_COMMENT = "unable to process the request (see the receiver's log)"
CANCEL, PENDING = CANCELLED_STATUS, 0xFF00
PACE = 100  # C-FIND answers between waits for the send queue to drain


def bindings(archive: Archive) -> list:
    return [
        (evt.EVT_C_FIND, handle_find, [archive]),
        (evt.EVT_C_MOVE, handle_move, [archive]),
        (evt.EVT_C_GET, handle_get, [archive]),
    ]


def model_of(sop_class: str) -> str:
    """'PATIENT' or 'STUDY' root, from the Q/R SOP Class UID (…5.1.4.1.2.1.x / .2.2.x)."""
    return "PATIENT" if str(sop_class).startswith("1.2.840.10008.5.1.4.1.2.1.") else "STUDY"


def _scope(archive: Archive, assoc) -> str | None:
    facility = archive.callers.facility_of(assoc)
    return None if facility in ("", "unknown") else facility


def _keys(identifier: Dataset | None) -> str:
    """Which keys a request used (no values: they may name a patient)."""
    if identifier is None:
        return ""
    return ",".join(
        e.keyword or str(e.tag)
        for e in identifier
        if e.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet")
        and not e.is_empty
    )


def handle_find(event, archive: Archive):
    started, matches, status, reason = time.perf_counter(), 0, 0x0000, ""
    identifier = level = None
    try:
        identifier = event.identifier
        query = parse(identifier, model_of(event.request.AffectedSOPClassUID))
        level = query.level
        our_ae = archive.settings.ae_title
        for entity in find(archive.index, query, _scope(archive, event.assoc)):
            if event.is_cancelled:
                status, reason = CANCEL, "cancelled by the requester"
                yield CANCEL, None
                return
            matches += 1
            hear_the_peer(event.assoc, matches)
            yield PENDING, answer(entity, query, our_ae)
    except QueryError as exc:
        status, reason = exc.status, str(exc)
        yield failure(exc.status, exc.comment), None
    except Exception as exc:  # a broken identifier must be answered, not crash
        LOG.exception("C-FIND failed")
        status, reason = UNABLE, f"unable to process: {exc}"
        yield failure(UNABLE, UNABLE_COMMENT), None
    finally:
        _record(
            archive,
            event.assoc,
            Find(
                status=status,
                reason=reason,
                level=level,
                keys=_keys(identifier),
                matches=matches,
                duration_ms=_ms_since(started),
            ),
        )


def hear_the_peer(assoc, answered: int, patience: float = 2.0) -> None:
    """Keep pace with the network, so a C-CANCEL gets in.

    pynetdicom's DUL thread reads from the socket only when its send queue is empty, so
    a handler that yields faster than the network would queue every answer before the
    requester's cancel is even read. When the peer has sent something, and every
    PACE answers in any case (which also bounds what waits in memory), wait (bounded)
    until the queue has drained and nothing is left unread.
    """
    dul = getattr(assoc, "dul", None)
    raw = getattr(getattr(dul, "socket", None), "socket", None)
    if dul is None or raw is None or (answered % PACE and not _readable(raw)):
        return
    deadline = time.monotonic() + patience
    while (
        time.monotonic() < deadline
        and assoc.is_established
        and (dul.to_provider_queue.qsize() or _readable(raw))
    ):
        time.sleep(0.001)


def _readable(raw) -> bool:
    try:
        return bool(select.select([raw], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def failure(status: int, comment: str) -> Dataset:
    """A failure status with its Error Comment, as a handler yields it."""
    answer = Dataset()
    answer.Status = status
    answer.ErrorComment = comment[:64]
    return answer


class SubOps:
    """Counts the C-STORE responses of a retrieve's sub-operations."""

    def __init__(self, total: int) -> None:
        self.total, self.completed, self.warning, self.failed = total, 0, 0, 0

    def on_message(self, event) -> None:
        command = event.message.command_set
        if command is None or command.get("CommandField") != 0x8001:  # C-STORE-RSP
            return
        status = int(command.get("Status", 0xC000))
        if status == 0x0000:
            self.completed += 1
        elif is_warning(status):
            self.warning += 1
        else:
            self.failed += 1

    def as_dict(self) -> dict:
        """Anything not completed or warned about (refused, unreadable, never sent
        because the destination went away) is a failure."""
        return {
            "total": self.total,
            "completed": self.completed,
            "warning": self.warning,
            "failed": self.total - self.completed - self.warning,
        }


def _instances(archive: Archive, event) -> list[Instance]:
    identifier = event.identifier
    return retrieve_set(
        archive.index,
        identifier,
        model_of(event.request.AffectedSOPClassUID),
        _scope(archive, event.assoc),
    )


def _datasets(archive: Archive, chosen: list[Instance], event):
    """(status, stored file) for each instance, for a RetrieveSender to send: as
    stored when the peer accepted its syntax, else converted (or failed, with why)."""
    root = Path(archive.storage.root)
    for inst in chosen:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield (
            PENDING,
            StoredFile(root / inst.path, inst.sop_class, inst.sop_uid, inst.syntax),
        )


def _outcome(
    subops: SubOps, senders: list[RetrieveSender], refused_by: str
) -> tuple[int, str, str]:
    """The final status pynetdicom will send, why (for the log), and the Error
    Comment: the commonest reason an instance was not sent (short, no path), if any."""
    counts = subops.as_dict()
    failed, total = counts["failed"], counts["total"]
    if failed == 0 and counts["warning"] == 0:
        return 0x0000, "", ""
    if failed == 0:
        why = f"{counts['warning']} of {total} sub-operations with warnings"
        return 0xB000, why, why
    reasons = [r for s in senders for r in s.reasons]
    where, comment = "", f"{failed} of {total} sub-operations failed"
    if reasons:
        common = max(set(reasons), key=reasons.count)
        where, comment = f"{len(reasons)} not sent: {common}", f"{failed} failed: {common}"
    if failed > len(reasons):
        where += (", " if where else "") + f"{failed - len(reasons)} {refused_by}"
    why = f"{failed} of {total} sub-operations failed" + (f" ({where})" if where else "")
    return (0xA702 if failed == total else 0xB000), why, comment


def handle_move(event, archive: Archive):
    started, status, reason = time.perf_counter(), 0x0000, ""
    destination = str(event.move_destination or "").strip()
    senders: list[RetrieveSender] = []
    subops, where = (
        SubOps(0),
        archive.destinations.get(destination) if destination else None,
    )
    assoc, message_id = event.assoc, event.request.MessageID
    try:
        if where is None:
            status, reason = (
                0xA801,
                f"unknown move destination {destination!r} (see `dicomtui dest add`)",
            )
            explain(assoc, message_id, f"unknown move destination {destination!r}")
            yield None, None
            return
        address = (where.host, where.port)
        try:
            chosen = _instances(archive, event)
        except QueryError as exc:
            status, reason = exc.status, str(exc)
            # fail before pynetdicom associates with the destination: no sub-operation
            explain(assoc, message_id, exc.comment, exc.status)
            yield (*address, {"ae_title": where.ae_title})
            yield 0
            return
        subops.total = len(chosen)
        contexts = contexts_for((i.sop_class, i.syntax) for i in chosen)
        if chosen:  # pynetdicom comes back only once it is associated with `where`
            status, reason = 0xA801, f"could not associate with {destination}"
            explain(assoc, message_id, reason)
        yield (
            *address,
            {
                "ae_title": where.ae_title,
                "contexts": contexts,
                "evt_handlers": [
                    (evt.EVT_DIMSE_RECV, subops.on_message),
                    (
                        evt.EVT_ESTABLISHED,
                        install_on_established(senders, calling_ae_of(assoc)),
                    ),
                ],
            },
        )
        yield len(chosen)
        status, reason = 0x0000, ""
        yield from _datasets(archive, chosen, event)
        status, reason, comment = _outcome(subops, senders, f"refused by {destination}")
        if comment:
            explain(assoc, message_id, comment)
    except Exception as exc:
        LOG.exception("C-MOVE failed")
        status, reason = UNABLE, f"unable to process: {exc}"
        raise
    finally:
        _record(
            archive,
            assoc,
            Move(
                status=status,
                reason=reason,
                destination=destination,
                **subops.as_dict(),
                converted=sum(s.converted for s in senders),
                duration_ms=_ms_since(started),
            ),
        )


def handle_get(event, archive: Archive):
    started, status, reason = time.perf_counter(), 0x0000, ""
    subops, bound, sender = SubOps(0), False, None
    assoc, message_id = event.assoc, event.request.MessageID
    try:
        try:
            chosen = _instances(archive, event)
        except QueryError as exc:
            status, reason = exc.status, str(exc)
            explain(assoc, message_id, exc.comment, exc.status)  # no sub-operation
            yield 0
            return
        subops.total = len(chosen)
        assoc.bind(evt.EVT_DIMSE_RECV, subops.on_message)
        bound, sender = True, RetrieveSender(assoc)
        yield len(chosen)
        yield from _datasets(archive, chosen, event)
        status, reason, comment = _outcome(subops, [sender], "refused by the requester")
        if comment:
            explain(assoc, message_id, comment)
    except Exception as exc:
        LOG.exception("C-GET failed")
        status, reason = UNABLE, f"unable to process: {exc}"
        raise
    finally:
        if bound:
            assoc.unbind(evt.EVT_DIMSE_RECV, subops.on_message)
        if sender is not None:
            sender.remove()
        _record(
            archive,
            assoc,
            Retrieve(
                status=status,
                reason=reason,
                **subops.as_dict(),
                converted=sender.converted if sender is not None else 0,
                duration_ms=_ms_since(started),
            ),
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _record(archive: Archive, assoc, tx: Transaction) -> None:
    """One C-FIND, C-MOVE or C-GET, with its counts."""
    tx.outcome = outcome_of(tx.status)
    archive.record_request(tx, assoc)
