"""pynetdicom event handlers of receiving: plain functions, the Receiver passed in.

pynetdicom only logs exceptions raised in a handler, so every handler catches and answers
with a status itself. The Q/R handlers are the archive's (archive/qr_handlers.py).
"""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom import evt

from dicomtui.service.receiving.netio import broken_rule
from dicomtui.service.receiving.receiver import Receiver
from dicomtui.service.receiving.scp import prefer_requestor_syntaxes
from dicomtui.service.receiving.store import StoreResult

LOG = logging.getLogger("dicomtui.service")


def bindings(receiver: Receiver, facility: str | None) -> list:
    """The handlers of one listener; a facility's listener tells requests its name."""
    return [
        (evt.EVT_REQUESTED, handle_requested, [receiver, facility]),
        (evt.EVT_C_ECHO, handle_echo, [receiver]),
        (evt.EVT_C_STORE, handle_store, [receiver]),
        (evt.EVT_ACCEPTED, handle_accepted, [receiver]),
        (evt.EVT_REJECTED, handle_rejected, [receiver]),
        (evt.EVT_RELEASED, handle_released, [receiver]),
        (evt.EVT_ABORTED, handle_aborted, [receiver]),
        (evt.EVT_CONN_CLOSE, handle_conn_close, [receiver]),
    ]


def handle_echo(event, receiver: Receiver) -> int:
    receiver.echoed(event.assoc)
    return 0x0000


def handle_store(event, receiver: Receiver):
    """Store one instance exactly as received; answer only once it is on disk."""
    result = receiver.store(
        event.assoc,
        event.request.DataSet,
        str(event.context.transfer_syntax),
        str(event.context.abstract_syntax),
    )
    return _answer(result)


def _answer(result: StoreResult):
    """The status with its Error Comment (a failure without one gets a general one on
    the way out: receiving/dimse.py)."""
    if result.status == 0x0000:
        return 0x0000
    answer = Dataset()
    answer.Status = result.status
    if result.comment:
        answer.ErrorComment = result.comment[:64]
    return answer


def handle_requested(event, receiver: Receiver, facility: str | None) -> None:
    """Access check and recognition first; only an admitted request is negotiated, on
    the contexts the settings allow (services, sop_classes, transfer_syntaxes)."""
    try:
        if not receiver.admit(event.assoc, facility):
            return
        receiver.narrow(event.assoc)
    except Exception:  # never admit by accident, never leave the peer without an answer
        LOG.exception("checking an association request failed; refusing it")
        event.assoc.acse.send_reject(2, 1, 1)
        event.assoc.kill()
        return
    prefer_requestor_syntaxes(event.assoc)


def handle_accepted(event, receiver: Receiver) -> None:
    receiver.opened(event.assoc)


def handle_rejected(event, receiver: Receiver) -> None:
    receiver.rejected(event.assoc)


def handle_released(event, receiver: Receiver) -> None:
    receiver.closed(event.assoc, "ok", "released")


def handle_aborted(event, receiver: Receiver) -> None:
    receiver.closed(event.assoc, "failed", _ours_or(event.assoc, "aborted"))


def handle_conn_close(event, receiver: Receiver) -> None:
    receiver.closed(
        event.assoc,
        "failed",
        _ours_or(event.assoc, "connection closed without release (peer vanished?)"),
    )


def _ours_or(assoc, how: str) -> str:
    """Why we ended the association ourselves (a PDU over its limit, a stalled peer),
    else `how` it ended."""
    why = broken_rule(assoc)
    return f"aborted by us: {why}" if why else how
