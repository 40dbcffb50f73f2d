"""pynetdicom event handlers: plain functions, the engine passed in, explicit statuses.

pynetdicom only logs exceptions raised in a handler, so every handler catches and answers
with a failure status itself; the engine does the bookkeeping off the DICOM thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime

from pydicom.dataset import Dataset

from dicomtui.dicom.anonymize import AnonymizeError
from dicomtui.dicom.filemeta import file_header
from dicomtui.dicom.identify import Identity, UnreadableDataset, identify
from dicomtui.service.events import now_iso
from dicomtui.service.phi import KNOWN_PHI, PHI_FILTER
from dicomtui.service.privacy import AnonymizationUnavailable
from dicomtui.service.scp import prefer_requestor_syntaxes
from dicomtui.service.store import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, StoreResult

LOG = logging.getLogger("dicomtui.service")
PROCESSING_FAILURE = 0x0110


def handle_echo(event, engine) -> int:
    engine.record_echo(event.assoc)
    return 0x0000


def handle_store(event, engine):
    """Store one instance exactly as received; answer only once it is on disk."""
    started = time.perf_counter()
    ident, result = _store(event, engine)
    engine.record_store(event.assoc, ident, result, time.perf_counter() - started,
                        event.context.transfer_syntax)
    return _answer(result)


def _store(event, engine) -> tuple[Identity, StoreResult]:
    ident = Identity()
    if engine.stopping:
        return ident, StoreResult(OUT_OF_RESOURCES, "refused: the service is shutting down")
    facility = engine.facility_of(event.assoc)
    anonymize = engine.anonymizes(facility)
    anonymized = False  # set once `ident` names only the subject code
    try:
        stream = event.request.DataSet
        syntax = str(event.context.transfer_syntax)
        ident = identify(stream, syntax)
        if not ident.sop_class_uid:  # take the negotiated one rather than refuse
            ident = replace(ident, sop_class_uid=str(event.context.abstract_syntax))
        policy = engine.store_policy
        folder_facility = facility if policy.by_facility else None
        with stream.getbuffer() as body:
            if anonymize:
                done = engine.anonymizer().apply(
                    body, syntax, ident, event.assoc.requestor.ae_title,
                    engine.settings.anonymize_uids, now_iso())
                ident, header, body = done.ident, done.data, b""
                anonymized = True
            else:
                if PHI_FILTER.enabled:
                    KNOWN_PHI.note(ident.patient_id, ident.patient_name)
                header = file_header(ident.sop_class_uid, ident.sop_uid, syntax,
                                     event.assoc.requestor.ae_title)
            result = engine.storage.store(ident, header, body, policy, datetime.now(),
                                          folder_facility)
    except UnreadableDataset as exc:
        result = StoreResult(CANNOT_UNDERSTAND, f"refused: {exc}")
    except (AnonymizationUnavailable, AnonymizeError) as exc:
        result = StoreResult(PROCESSING_FAILURE, f"refused: cannot anonymize: {exc}")
    except Exception as exc:  # never let pynetdicom swallow it silently
        LOG.exception("storing an instance failed unexpectedly")
        result = StoreResult(PROCESSING_FAILURE, f"internal error: {exc}")
    if anonymize and not anonymized:
        ident = _without_identity(ident, engine.settings.anonymize_uids)
    return ident, result


def _without_identity(ident: Identity, uids: bool) -> Identity:
    """What a store that failed before anonymizing may log: nothing naming the patient."""
    hidden = replace(ident, patient_id="", patient_name="", accession="", study_date="")
    return replace(hidden, sop_uid="", study_uid="", series_uid="") if uids else hidden


def _answer(result: StoreResult):
    if result.status == 0x0000:
        return 0x0000
    answer = Dataset()
    answer.Status = result.status
    answer.ErrorComment = result.reason[:64]
    return answer


def handle_requested(event, engine, facility: str | None) -> None:
    """Access check and recognition first; only an admitted request is negotiated."""
    try:
        admitted = engine.association_requested(event.assoc, facility)
    except Exception:  # never admit by accident, never leave the peer without an answer
        LOG.exception("checking an association request failed; refusing it")
        event.assoc.acse.send_reject(2, 1, 1)
        event.assoc.kill()
        return
    if admitted:
        prefer_requestor_syntaxes(event.assoc)


def handle_accepted(event, engine) -> None:
    engine.association_opened(event.assoc)


def handle_rejected(event, engine) -> None:
    engine.association_refused(event.assoc)


def handle_released(event, engine) -> None:
    engine.association_closed(event.assoc, "ok", "released")


def handle_aborted(event, engine) -> None:
    engine.association_closed(event.assoc, "failed", "aborted")


def handle_conn_close(event, engine) -> None:
    engine.association_closed(event.assoc, "failed",
                              "connection closed without release (peer vanished?)")
