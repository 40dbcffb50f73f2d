"""Our side of pynetdicom's DIMSE provider, for the associations we accept.

pynetdicom decodes a DIMSE message's command set in its DUL thread without catching
what a malformed one raises, and that thread then dies, leaving the association to hang
until a timeout. Here a message that cannot be decoded is an invalid PDU (Evt19): the
peer gets an A-ABORT and the association ends at once, as pynetdicom already does for a
command it can decode but not understand.
"""

from __future__ import annotations

import logging

from pynetdicom.dimse import DIMSEServiceProvider

LOG = logging.getLogger("dicomtui.service")


class GuardedDIMSE(DIMSEServiceProvider):
    """Instances are made by switching the class of the association's own provider."""

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
