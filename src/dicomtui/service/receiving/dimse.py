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
from collections.abc import Iterator
from dataclasses import dataclass

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

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
            if isinstance(primitive, C_FIND) and primitive.Status in PENDING:
                self._send_pending(primitive, context_id)
                return
        super().send_msg(primitive, context_id)

    def _send_pending(self, response: C_FIND, context_id: int) -> None:
        """A C-FIND's pending responses differ only in their identifier: their command
        set is encoded once per request, not again for each of thousands of matches
        (pynetdicom builds and encodes it twice per response: ~40% of a match-all)."""
        identifier = response.Identifier.getvalue() if response.Identifier else b""
        if not identifier:  # none to send: the command set says so; pynetdicom's way
            super().send_msg(response, context_id)
            return
        key = (context_id, response.MessageIDBeingRespondedTo, response.Status)
        cached = self.__dict__.get("_pending_command")
        if cached is None or cached[0] != key:
            message = C_FIND_RSP()
            message.primitive_to_message(response)
            command = encode(message.command_set, True, True)
            cached = (key, list(_fragments(command, self.maximum_pdu_size)))
            self.__dict__["_pending_command"] = cached
        for n, fragment in enumerate(cached[1], 1):
            last = n == len(cached[1])
            self._send_pdv(context_id, (b"\x03" if last else b"\x01") + fragment)
        pieces = list(_fragments(identifier, self.maximum_pdu_size))
        for n, fragment in enumerate(pieces, 1):
            self._send_pdv(
                context_id, (b"\x02" if n == len(pieces) else b"\x00") + fragment
            )

    def _send_pdv(self, context_id: int, value: bytes) -> None:
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, value))
        self.dul.send_pdu(pdata)

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


def _fragments(data: bytes, max_pdu: int) -> Iterator[bytes]:
    """`data` in pieces that fit a P-DATA-TF of `max_pdu` (0: no limit) with their PDV
    item header (6 bytes), as PS3.8 Annex D.1 asks; at least one, maybe empty."""
    size = len(data) if max_pdu == 0 else max_pdu - 6
    yield data[:size]
    for offset in range(size, len(data), size or 1):
        yield data[offset : offset + size]
