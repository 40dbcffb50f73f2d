"""Our side of pynetdicom's DIMSE provider, for the associations we accept.

Two things pynetdicom leaves to us:

- It decodes a DIMSE message's command set in its DUL thread without catching what a
  malformed one raises; that thread then dies and the association hangs until a
  timeout. Here a message that cannot be decoded is an invalid PDU (Evt19): the peer
  gets an A-ABORT at once, as pynetdicom already does for a command it can decode but
  not understand.
- It sends some final responses itself (C-MOVE/C-GET totals, an unknown destination,
  a handler's exception) without an Error Comment, and its C-MOVE/C-GET protocol has
  no way to fail before any sub-operation. Handlers `explain()` a request: a failure
  response to it then carries their comment (and, if they asked, their status with no
  sub-operation counted); any other failure response gets a general comment for its
  status. ARCHITECTURE.md, "Rules for the network": a failure always says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pynetdicom.dimse import DIMSEServiceProvider

from dicomtui.dicom.statuses import failure_comment
from dicomtui.models import FAILED, OK, outcome_of

LOG = logging.getLogger("dicomtui.service")
PENDING = (0xFF00, 0xFF01)
MAX_COMMENT = 64
SUBOPERATION_COUNTS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)


@dataclass(frozen=True)
class Explanation:
    """What a handler said about the final response to one request."""

    comment: str
    status: int | None = None  # answer this failure instead, with no sub-operations


def explain(assoc, message_id: int, comment: str, status: int | None = None) -> None:
    """The final response to request `message_id`, if a failure (or a warning), says
    `comment`; with `status`, that response is `status` and counts no sub-operation.

    Call it from the request's handler, before the response is sent; later calls win.
    """
    dimse = getattr(assoc, "dimse", None)
    if isinstance(dimse, GuardedDIMSE):
        dimse.explanations()[message_id] = Explanation(comment[:MAX_COMMENT], status)


class GuardedDIMSE(DIMSEServiceProvider):
    """Instances are made by switching the class of the association's own provider."""

    def explanations(self) -> dict[int, Explanation]:
        return self.__dict__.setdefault("_explanations", {})

    def receive_primitive(self, primitive) -> None:
        try:
            super().receive_primitive(primitive)
        except Exception as exc:  # whatever a malformed message makes the decoder raise
            requestor = self.assoc.requestor
            LOG.warning(
                "%s:%s sent a DIMSE message that cannot be decoded (%s: %s); aborting",
                requestor.address,
                requestor.port,
                type(exc).__name__,
                exc,
            )
            self.message = None
            socket = self.dul.socket
            if socket is not None and hasattr(socket, "broke_rule"):
                socket.broke_rule = "a DIMSE message that cannot be decoded"
            self.dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT, as pynetdicom does

    def send_msg(self, primitive, context_id: int) -> None:
        if self.dul.state_machine.current_state in ("Sta1", "Sta13"):
            # aborted meanwhile: pynetdicom's state machine would raise in its thread
            LOG.debug("response to a request on an aborted association dropped")
            return
        if primitive.MessageIDBeingRespondedTo is not None:
            self._explain(primitive)
        super().send_msg(primitive, context_id)

    def _explain(self, response) -> None:
        status = response.Status
        if status is None or status in PENDING:
            return
        said = self.explanations().pop(response.MessageIDBeingRespondedTo, None)
        if said is not None and said.status is not None:
            response.Status = status = said.status
            for name in SUBOPERATION_COUNTS:
                if hasattr(response, name):
                    setattr(response, name, None if "Remaining" in name else 0)
        if response.ErrorComment or outcome_of(status) == OK:
            return
        if said is not None:
            response.ErrorComment = said.comment
        elif outcome_of(status) == FAILED:
            response.ErrorComment = failure_comment(status)
