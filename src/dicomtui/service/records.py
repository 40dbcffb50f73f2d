"""Transaction records: the plain dicts the transaction log stores and the log shows."""

from __future__ import annotations

from dicomtui.dicom.identify import Identity
from dicomtui.service.events import now_iso
from dicomtui.service.store import StoreResult


def peer_of(assoc) -> str:
    """'ip:port' of the association's requestor."""
    requestor = assoc.requestor
    return f"{requestor.address}:{requestor.port}"


def called_ae_of(assoc) -> str:
    primitive = assoc.requestor.primitive
    return (primitive.called_ae_title if primitive is not None else "").strip()


def base_record(kind: str, assoc, outcome: str, status: int | None = None,
                reason: str = "") -> dict:
    """Fields every transaction record has."""
    return {
        "time": now_iso(), "type": kind, "outcome": outcome, "status": status,
        "calling_ae": (assoc.requestor.ae_title or "").strip(),
        "called_ae": called_ae_of(assoc), "peer": peer_of(assoc), "reason": reason,
    }


def service_record(kind: str, outcome: str, status: int | None = None,
                   reason: str = "", **fields) -> dict:
    """A record of work the service did itself (cleanup, an operator's send): the
    fields every record has, no association behind it."""
    record = {"time": now_iso(), "type": kind, "outcome": outcome, "status": status,
              "calling_ae": "", "called_ae": "", "peer": "", "reason": reason}
    record.update(fields)
    return record


def store_record(assoc, ident: Identity, result: StoreResult, seconds: float,
                 transfer_syntax: str) -> dict:
    """One C-STORE: who sent what, where it went, how long it took, and the answer."""
    record = base_record("store", assoc, outcome_of(result.status), result.status,
                         result.reason)
    record.update({
        "sop_class": ident.sop_class_uid, "study_uid": ident.study_uid,
        "series_uid": ident.series_uid, "sop_uid": ident.sop_uid,
        "patient_id": ident.patient_id, "modality": ident.modality,
        "transfer_syntax": str(transfer_syntax), "bytes": result.size,
        "duration_ms": round(seconds * 1000, 2), "path": result.path,
        "duplicate": result.duplicate,
    })
    return record


def outcome_of(status: int) -> str:
    """The outcome word for a DIMSE status (PS3.7 C.1)."""
    if status == 0x0000:
        return "ok"
    if status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF:
        return "warning"
    return "failed"
