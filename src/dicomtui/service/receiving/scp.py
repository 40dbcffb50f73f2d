"""Building and running one SCP listener with pynetdicom."""

from __future__ import annotations

import errno
import socketserver
import ssl
import threading

from pydicom._uid_dict import UID_dictionary
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    DEFAULT_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    register_uid,
)
from pynetdicom import (
    sop_class as sop_classes,
)
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomtui.dicom.uid_names import EXTRA_STORAGE_CLASSES, RETIRED_JPEG_SYNTAXES
from dicomtui.service.receiving.gate import Gate
from dicomtui.service.receiving.netio import TunedServer

QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)


def _register_extra_storage() -> tuple[str, ...]:
    """Make pynetdicom serve C-STORE for the storage classes it does not list (retired
    ones Orthanc accepts too); without this it would answer them "not supported"."""
    for uid in EXTRA_STORAGE_CLASSES:
        keyword = "Dicomtui" + UID_dictionary[uid][4]
        if not hasattr(sop_classes, keyword):
            register_uid(uid, keyword, StorageServiceClass)
    return tuple(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts) + tuple(
        uid for uid in EXTRA_STORAGE_CLASSES
    )


STORAGE_CLASSES = tuple(dict.fromkeys(_register_extra_storage()))
STORAGE_SYNTAXES = list(ALL_TRANSFER_SYNTAXES) + list(RETIRED_JPEG_SYNTAXES)


class ListenerError(RuntimeError):
    """A listener could not start; the message says what to do."""


def make_ae(settings, ae_title: str | None = None) -> AE:
    """An AE accepting every storage SOP class pynetdicom knows and the retired ones,
    in every syntax (the retired JPEG processes too), and Query/Retrieve (Patient and
    Study Root: FIND, MOVE, GET). Per association, receiving/acceptance.py narrows
    this to what the services, sop_classes and transfer_syntaxes settings allow.

    Storage contexts accept both roles: a C-GET requester proposes itself as the storage
    SCP (role selection, PS3.7 D.3.3.4), and a plain sender still gets the default."""
    ae = AE(ae_title=ae_title or settings.ae_title)
    ae.maximum_pdu_size = settings.max_pdu
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.maximum_associations = settings.max_associations
    ae.require_called_aet = False
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for uid in STORAGE_CLASSES:
        ae.add_supported_context(uid, STORAGE_SYNTAXES, scu_role=True, scp_role=True)
    for sop_class in QUERY_RETRIEVE:
        ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
    return ae


class Listener:
    """One association server on host:port behind the gate, served from its own thread;
    with `tls`, every connection is a DICOM TLS one."""

    def __init__(
        self,
        ae: AE,
        host: str,
        port: int,
        handlers: list,
        gate: Gate,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ae, self.host, self.port, self.handlers = ae, host, port, handlers
        self.gate, self.tls = gate, tls
        self.server: TunedServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        try:
            server = self.ae.make_server(
                (self.host, self.port), evt_handlers=self.handlers, server_class=TunedServer
            )
        except OSError as exc:
            raise ListenerError(_bind_message(exc, self.host, self.port)) from None
        server.gate, server.tls = self.gate, self.tls
        self.server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"dicomtui-listener-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop_accepting(self) -> None:
        """Close the listening socket; associations already running go on. Idempotent."""
        if self.server is not None and not self._stopped:
            self._stopped = True
            # pynetdicom's shutdown() expects servers made by start_server(); ours is
            # made by make_server(), so stop the loop and close the socket directly.
            socketserver.BaseServer.shutdown(self.server)
            self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def associations(self) -> list:
        return self.server.active_associations if self.server else []


def _bind_message(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} by another program (a receiver "
            "with another data dir?): choose another port (--port), or open that "
            "receiver's own data dir (--data-dir)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on port {port} (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE); choose another port with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"address {host} is not an address of this machine; check --host"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def prefer_requestor_syntaxes(assoc) -> None:
    """Order our transfer syntaxes by the requestor's preference before negotiation.

    pynetdicom picks the first syntax in the *acceptor's* list; a modality that offers
    JPEG 2000 first (or uncompressed first) should get what it asked for, not what
    happens to come first in ours, or it may have to convert and fail.
    """
    wanted: dict[str, list[str]] = {}
    for cx in assoc.requestor.primitive.presentation_context_definition_list:
        ordered = wanted.setdefault(str(cx.abstract_syntax), [])
        ordered.extend(ts for ts in cx.transfer_syntax if ts not in ordered)
    for cx in assoc.acceptor.supported_contexts:
        ours = cx.transfer_syntax
        both = [ts for ts in wanted.get(str(cx.abstract_syntax), ()) if ts in ours]
        if both and both != ours[: len(both)]:
            # only the syntaxes both sides have, in the requestor's order: negotiation
            # needs no others, and pynetdicom validates each one set (~40 per context,
            # ~100 contexts from a stock storescu: 15 ms of every association)
            cx.transfer_syntax = both
