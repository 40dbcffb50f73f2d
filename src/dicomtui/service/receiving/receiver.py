"""Receiving: the receiver's state, and one C-STORE from dataset to disk to bookkeeping.

Handlers (handlers.py) call in here from pynetdicom's association threads. A store is
answered only after its file is on disk and every component that tracks instances
(index, study completion, counters, transaction log) has been told.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from dicomtui.dicom.anonymize import AnonymizeError
from dicomtui.dicom.filemeta import file_header
from dicomtui.dicom.identify import Identity, UnreadableDataset, identify
from dicomtui.models import FAILED, REFUSED, WARNING, outcome_of
from dicomtui.service.core.events import EventRing, now_iso
from dicomtui.service.core.journal import Journal, JournalError, Ticket
from dicomtui.service.core.recorder import Recorder
from dicomtui.service.core.records import (
    AssociationEnd,
    ContextRefusal,
    Echo,
    Refusal,
    Store,
    StoredInstance,
    calling_ae_of,
    peer_of,
    who,
)
from dicomtui.service.privacy.anonymizer import Anonymizer
from dicomtui.service.privacy.phi import KNOWN_PHI, PHI_FILTER
from dicomtui.service.privacy.privacy import AnonymizationUnavailable
from dicomtui.service.receiving.acceptance import acceptance_of, narrow
from dicomtui.service.receiving.gate import ConnectionRefusal
from dicomtui.service.receiving.listeners import Listeners
from dicomtui.service.receiving.scp import ListenerError
from dicomtui.service.receiving.store import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    StorageWriter,
    StoreResult,
    policy_of,
)
from dicomtui.service.receiving.traffic import UNKNOWN, Traffic
from dicomtui.service.sites.access import Refusal as AccessRefusal
from dicomtui.service.sites.sites import Admission
from dicomtui.settings import Resolved
from dicomtui.wording import rejection

LOG = logging.getLogger("dicomtui.service")
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.7 C.4.2.1.4: refused, SOP class not supported
SHUTTING_DOWN = "the service is shutting down"
NOT_DURABLE = "the receiver cannot record it durably"  # the journal write failed
REJECT_REASONS = {
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (3, 1): "temporary congestion",
    (3, 2): "too many associations (max_associations)",
}


class ReceiverError(RuntimeError):
    """The receiver cannot start; the message says what to do."""


class Gatekeeper(Protocol):
    """Who may associate (sites)."""

    def admit(
        self, calling: str, called: str, ip: str, port_facility: str | None
    ) -> Admission: ...


class Anonymization(Protocol):
    """Whether and how to anonymize (privacy)."""

    def anonymizes(self, facility: str) -> bool: ...
    def anonymizer(self) -> Anonymizer: ...
    def record(self, originals: dict) -> None: ...
    def seal(self, originals: dict) -> dict: ...


class Receiver:
    """Owns the receiver's state word and the store path; listeners and traffic are its
    parts, the rest (sites, privacy, the trackers of stored instances) collaborators."""

    def __init__(
        self,
        settings: Callable[[], Resolved],
        listeners: Listeners,
        traffic: Traffic,
        recorder: Recorder,
        journal: Journal,
        ring: EventRing,
        storage: StorageWriter,
        gate: Gatekeeper,
        privacy: Anonymization,
        trackers: list[Callable[[StoredInstance], None]],
        make_room: Callable[[int], bool],
    ) -> None:
        self._settings, self.listeners, self.traffic = settings, listeners, traffic
        self._recorder, self._journal = recorder, journal
        self._ring, self.storage = ring, storage
        self._gate, self._privacy = gate, privacy
        self._trackers, self._make_room = trackers, make_room
        self.state, self.error = "stopped", ""
        self.started_at: float | None = None
        self.stopping = False
        self.policy = policy_of(settings())

    # -- lifecycle --------------------------------------------------------------------
    def starting(self) -> None:
        self._set_state("starting")

    def refuse_to_start(self, message: str) -> None:
        """Something it depends on is damaged: it stays stopped, in state error."""
        self.error = message
        self._set_state("error", message, "ERROR")

    def start(self) -> None:
        """Open the main listeners (ReceiverError: port busy, ...; stays stopped)."""
        try:
            self.listeners.start_main()
        except ListenerError as exc:
            self.error = str(exc)
            self._set_state("error", str(exc), "ERROR")
            raise ReceiverError(str(exc)) from None
        self.error, self.stopping, self.started_at = "", False, time.time()
        s, plain, tls = (
            self.listeners.effective(),
            self.listeners.port,
            self.listeners.tls_port,
        )
        doors = [f"{s.host}:{plain}"] if plain else []
        doors += [f"{s.host}:{tls} (DICOM TLS)"] if tls else []
        self._set_state("running", f"listening on {' and '.join(doors)} as {s.ae_title}")
        for warning in self.listeners.warnings():  # also in the status snapshot
            LOG.warning(warning)

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight stores finish, then end the associations."""
        if not self.listeners.running:
            return
        self._set_state("stopping")
        self.stopping = True
        listeners = self.listeners.stop_accepting()
        self.traffic.wait_idle(grace)
        assocs = [a for each in listeners for a in each.associations()]
        for assoc in assocs:
            assoc.abort()
        for assoc in assocs:
            assoc.join(timeout=5)
        self.listeners.stopped()
        self.started_at = None

    def stopped(self) -> None:
        """Everything that follows the receiver has stopped too."""
        self._set_state("stopped", "receiver stopped")

    def refresh_policy(self) -> None:
        """Settings changed: stores from now on follow them."""
        self.policy = policy_of(self._settings())

    def state_word(self) -> str:
        """The main listener's state when it is not listening."""
        return "error" if self.state == "error" else "stopped"

    def _set_state(self, state: str, message: str = "", level: str = "INFO") -> None:
        self.state = state
        self._ring.emit("state", level, message or state, {"state": state})
        if message:
            LOG.log(logging.getLevelName(level), message)

    # -- associations -----------------------------------------------------------------
    def admit(self, assoc, port_facility: str | None) -> bool:
        """At request: check access and recognise the facility; refuse on the wire."""
        # pynetdicom copies the calling AE title to the requestor only when it
        # negotiates, after this event; records made now need it already.
        assoc.requestor.ae_title = assoc.requestor.primitive.calling_ae_title
        peer = who(assoc)
        admission = self._gate.admit(
            peer["calling_ae"],
            peer["called_ae"],
            str(assoc.requestor.address),
            port_facility,
        )
        if admission.refusal is not None:
            self._refuse(assoc, admission.refusal, admission.facility)
            return False
        self.traffic.recognised(assoc, admission.facility)
        return True

    def narrow(self, assoc) -> None:
        """Before negotiation: leave only the contexts services, sop_classes and
        transfer_syntaxes allow now (receiving/acceptance.py); log what is refused."""
        refused = narrow(assoc, acceptance_of(self._settings()))
        if not refused:
            return
        asked = {
            str(cx.abstract_syntax)
            for cx in assoc.requestor.primitive.presentation_context_definition_list
        }
        tx = ContextRefusal(
            outcome=REFUSED if len(refused) == len(asked) else WARNING,
            reason=f"refused {len(refused)} of {len(asked)} SOP classes asked for: "
            + "; ".join(r.describe() for r in refused[:5])
            + (f"; and {len(refused) - 5} more" if len(refused) > 5 else ""),
            rule=",".join(sorted({r.rule for r in refused})),
            contexts=[r.describe() for r in refused],
            facility=self.traffic.facility_of(assoc),
            **who(assoc),
        )
        self._recorder.record(tx)
        LOG.warning("association from %s (%s): %s", tx.calling_ae, tx.peer, tx.reason)

    def _refuse(self, assoc, refusal: AccessRefusal, facility: str) -> None:
        assoc.acse.send_reject(refusal.result, refusal.source, refusal.diagnostic)
        self.traffic.refused(assoc)
        tx = Refusal(
            reason=f"rejected: {refusal.reason} "
            f"({rejection(refusal.result, refusal.source, refusal.diagnostic)})",
            rule=refusal.rule,
            facility=facility,
            **who(assoc),
        )
        self._recorder.record(tx)
        LOG.warning(
            "association from %s (%s) to %s refused by %s: %s",
            tx.calling_ae,
            tx.peer,
            tx.called_ae or "(empty)",
            refusal.rule,
            refusal.reason,
        )
        assoc.kill()  # waits until the A-ASSOCIATE-RJ is out, as pynetdicom's own rejects

    def connection_refused(self, refusal: ConnectionRefusal) -> None:
        """The gate closed a connection before its association (allowed_ips, a limit,
        a silent or garbage-sending peer, a failed TLS handshake)."""
        self.traffic.refused_connection()
        reason = refusal.reason
        if refusal.suppressed:
            reason += f" ({refusal.suppressed} more like it since the previous record)"
        tx = Refusal(
            reason=f"closed before association: {reason}",
            rule=refusal.rule,
            repeats=refusal.suppressed,
            facility=UNKNOWN,
            peer=f"{refusal.ip}:{refusal.port}",
        )
        self._recorder.record(tx)
        LOG.warning("connection from %s closed by %s: %s", tx.peer, refusal.rule, reason)

    def opened(self, assoc) -> None:
        info = self.traffic.opened(assoc)
        LOG.info(
            "association %d from %s (%s) to %s accepted (facility %s)",
            info.id,
            info.calling_ae,
            info.peer,
            info.called_ae,
            info.facility,
        )

    def rejected(self, assoc) -> None:
        """pynetdicom itself rejected (negotiation, max_associations)."""
        reason = _reject_reason(assoc)
        facility = self.traffic.refused(assoc)
        self._recorder.record(
            Refusal(
                reason=reason, rule=_reject_rule(assoc), facility=facility, **who(assoc)
            )
        )
        LOG.warning(
            "association from %s (%s) refused: %s",
            calling_ae_of(assoc),
            peer_of(assoc),
            reason,
        )

    def closed(self, assoc, outcome: str, how: str) -> None:
        info = self.traffic.closed(assoc)
        if info is None:
            return
        if self.stopping and how == "aborted":
            how = "aborted: the service is stopping"
        self._recorder.record(
            AssociationEnd(
                outcome,
                None,
                how,
                association=info.id,
                instances=info.instances,
                bytes=info.bytes,
                started=info.started,
                facility=info.facility,
                **who(assoc),
            )
        )
        LOG.info(
            "association %d from %s %s: %d instances, %d bytes",
            info.id,
            info.calling_ae,
            how,
            info.instances,
            info.bytes,
        )

    def echoed(self, assoc) -> None:
        self.traffic.echoed()
        self._recorder.record(
            Echo(status=0x0000, facility=self.traffic.facility_of(assoc), **who(assoc))
        )

    # -- one C-STORE --------------------------------------------------------------------
    def store(self, assoc, stream, syntax: str, context_class: str) -> StoreResult:
        """Write one instance, make its bookkeeping durable (the journal) and apply it;
        the result says what to answer."""
        with self.traffic.in_flight():
            started = time.perf_counter()
            facility = self.traffic.facility_of(assoc)
            written = self._write(assoc, stream, syntax, context_class, facility)
            tx = self._transaction(assoc, written, facility, syntax, started)
            if outcome_of(written.result.status) == FAILED:
                self._refused(assoc, tx, written.result)
                return written.result
            stored = StoredInstance(
                written.ident,
                tx.path,
                tx.bytes,
                written.result.added,
                tx.duplicate,
                syntax,
                facility,
                tx.time,
            )
            try:
                ticket = self._journal_it(
                    tx, stored, written.originals, written.result.unsynced
                )
            except (JournalError, AnonymizationUnavailable) as exc:
                LOG.error("an instance is on disk but not acknowledged: %s", exc)
                refused = _refused(OUT_OF_RESOURCES, NOT_DURABLE)
                tx.outcome, tx.status, tx.reason = FAILED, refused.status, refused.reason
                self._refused(assoc, tx, refused)
                return refused
            try:
                self._apply(assoc, tx, stored, written.originals)
            finally:
                self._journal.applied(ticket)
            return written.result

    def _write(
        self, assoc, stream, syntax: str, context_class: str, facility: str
    ) -> Written:
        """Identify, anonymize if asked, and put the file on disk (durably)."""
        if self.stopping:
            return Written(Identity(), _refused(OUT_OF_RESOURCES, SHUTTING_DOWN))
        refusal = acceptance_of(self._settings()).store_refusal(context_class, [syntax])
        if refusal is not None:  # settings changed since negotiation, or a C-GET's
            return Written(Identity(), _refused(SOP_CLASS_NOT_SUPPORTED, refusal.reason))
        anonymize = self._privacy.anonymizes(facility)
        written = Written(Identity(), StoreResult(PROCESSING_FAILURE))
        try:
            written = self._write_file(
                assoc, stream, syntax, context_class, facility, anonymize
            )
        except UnreadableDataset as exc:
            written.result = StoreResult(
                CANNOT_UNDERSTAND, f"refused: {exc}", comment=exc.comment
            )
        except (AnonymizationUnavailable, AnonymizeError) as exc:
            written.result = StoreResult(
                PROCESSING_FAILURE,
                f"refused: cannot anonymize: {exc}",
                comment="cannot anonymize, so not stored (see the receiver's log)",
            )
        except Exception as exc:  # never let pynetdicom swallow it silently
            LOG.exception("storing an instance failed unexpectedly")
            written.result = StoreResult(
                PROCESSING_FAILURE,
                f"internal error: {exc}",
                comment="internal error, not stored (see the receiver's log)",
            )
        if anonymize and written.originals is None:  # never name the patient then
            written.ident = _without_identity(
                written.ident, self._settings().anonymize_uids
            )
        return written

    def _write_file(
        self, assoc, stream, syntax: str, context_class: str, facility: str, anonymize: bool
    ) -> Written:
        ident = identify(stream, syntax)
        mismatch = _mismatch(ident, context_class)
        if mismatch is not None:
            return Written(ident, mismatch)
        policy, originals = self.policy, None
        with stream.getbuffer() as body:
            if anonymize:
                done = self._privacy.anonymizer().apply(
                    body,
                    syntax,
                    ident,
                    assoc.requestor.ae_title,
                    self._settings().anonymize_uids,
                    now_iso(),
                )
                ident, header, body, originals = done.ident, done.data, b"", done.originals
            else:
                if PHI_FILTER.enabled:
                    KNOWN_PHI.note(ident.patient_id, ident.patient_name)
                header = file_header(
                    ident.sop_class_uid, ident.sop_uid, syntax, assoc.requestor.ae_title
                )
            result = self.storage.store(
                ident,
                header,
                body,
                policy,
                datetime.now(),
                facility if policy.by_facility else None,
                self._make_room,
                sync_folder=False,  # the journal's group commit syncs it
            )
        return Written(ident, result, originals)

    def _transaction(
        self, assoc, written: Written, facility: str, syntax: str, started: float
    ) -> Store:
        ident, result = written.ident, written.result
        return Store(
            outcome_of(result.status),
            result.status,
            result.reason,
            facility=facility,
            sop_class=ident.sop_class_uid,
            study_uid=ident.study_uid,
            series_uid=ident.series_uid,
            sop_uid=ident.sop_uid,
            patient_id=ident.patient_id,
            modality=ident.modality,
            transfer_syntax=syntax,
            bytes=result.size,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            path=result.path,
            duplicate=result.duplicate,
            association=self.traffic.association_id(assoc),
            **who(assoc),
        )

    def _journal_it(
        self,
        tx: Store,
        stored: StoredInstance,
        originals: dict | None,
        folder: Path | None,
    ) -> Ticket:
        """The durable line that lets a restart rebuild all this store's bookkeeping;
        `folder`'s new entry is synced in the same group commit, before the line."""
        entry = {
            "tx": tx.to_dict(),
            "log": self._settings().log_instances,
            "stored": stored.to_json(),
            "anon": None if originals is None else self._privacy.seal(originals),
        }
        ticket = self._journal.write(entry, folder)
        tx.jid = ticket.jid
        return ticket

    def _apply(
        self, assoc, tx: Store, stored: StoredInstance, originals: dict | None
    ) -> None:
        """Count, track and log an acknowledged store (memory; the writer saves)."""
        self.traffic.stored(assoc, True, tx.bytes, tx.facility, tx.study_uid, tx.time)
        for track in self._trackers:
            track(stored)
        if originals is not None:
            self._privacy.record(originals)
        self._recorder.record(tx, persist=self._settings().log_instances)

    def _refused(self, assoc, tx: Store, result: StoreResult) -> None:
        self.traffic.stored(assoc, False, 0, tx.facility, tx.study_uid, tx.time)
        self._recorder.record(tx)
        LOG.warning(
            "store from %s refused (0x%04X): %s",
            tx.calling_ae,
            result.status,
            result.reason,
        )


@dataclass
class Written:
    """What writing one instance gave: its identity as stored, the outcome, and the
    originals to keep when it was anonymized."""

    ident: Identity
    result: StoreResult
    originals: dict | None = None


def _refused(status: int, why: str) -> StoreResult:
    """A refusal whose reason is also fit for the peer (no path, no patient data)."""
    return StoreResult(status, f"refused: {why}", comment=why)


def _mismatch(ident: Identity, context_class: str) -> StoreResult | None:
    """A dataset of another SOP Class than its presentation context (PS3.4 B.2.3)."""
    if not ident.sop_class_uid or ident.sop_class_uid == context_class:
        return None  # a missing one is refused with the other required UIDs
    return StoreResult(
        DOES_NOT_MATCH,
        f"refused: the dataset's SOP Class UID {ident.sop_class_uid} is not the "
        f"negotiated {context_class}",
        comment="SOP Class UID differs from the negotiated context",
    )


def _without_identity(ident: Identity, uids: bool) -> Identity:
    """What a store that failed before anonymizing may log: nothing naming the patient."""
    hidden = replace(ident, patient_id="", patient_name="", accession="", study_date="")
    return replace(hidden, sop_uid="", study_uid="", series_uid="") if uids else hidden


def _reject_reason(assoc) -> str:
    primitive = assoc.acceptor.primitive
    if primitive is None or primitive.result_source is None:
        return "association rejected"
    key = (primitive.result_source, primitive.diagnostic)
    text = REJECT_REASONS.get(key) or REJECT_REASONS.get((3, primitive.diagnostic), "")
    words = rejection(primitive.result, primitive.result_source, primitive.diagnostic)
    return f"rejected: {text} ({words})" if text else f"rejected: {words}"


def _reject_rule(assoc) -> str:
    """Which limit made pynetdicom itself reject (ours are refused before it looks)."""
    primitive = assoc.acceptor.primitive
    if primitive is not None and (primitive.result_source, primitive.diagnostic) == (3, 2):
        return "max_associations"
    return "negotiation"
