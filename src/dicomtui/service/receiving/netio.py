"""The SCP's sockets: the accept-time gate, bounded reads, no Nagle, quick ACKs.

A connection passes the gate (receiving/gate.py) at accept and delivers its TLS
handshake and A-ASSOCIATE-RQ within `handshake_timeout` (receiving/handshake.py) before
pynetdicom makes an association for it: only then does it count against
`max_associations`. The association's socket then serves that request first, refuses
PDUs longer than their limit (never allocating for a length it was only told), and
gives up on a peer that stops in the middle of a PDU for `network_timeout`.

A sender that leaves Nagle on stalls ~40 ms per image against a receiver whose ACKs are
delayed (ARCHITECTURE.md, "Rules for the network"). Re-arming TCP_QUICKACK before each
read on Linux removes the stall; reading whole PDUs with recv_into avoids pynetdicom's
4 KiB read loop.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from collections.abc import Callable

from pynetdicom import evt
from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

from dicomtui.service.receiving.dimse import GuardedDIMSE
from dicomtui.service.receiving.gate import Connection, Gate
from dicomtui.service.receiving.handshake import (
    INVALID_PARAMETER,
    PeerLeft,
    Refused,
    abort_pdu,
    pdu_limit,
    read_request,
    tls_handshake,
)

LOG = logging.getLogger("dicomtui.service")
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
CHUNK = 4 << 20  # PDU bodies up to this are read into one buffer; longer ones grow


def tune(sock: socket.socket) -> None:
    """Set TCP_NODELAY (and QUICKACK where the OS has it) on a connected socket."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except OSError:
        pass  # not a TCP socket (tests may use others); tuning is best effort


class TunedAssociationSocket(AssociationSocket):
    """An AssociationSocket that re-arms QUICKACK, reads into one buffer, and, on the
    SCP side (after `arm`), serves the request the gate read and bounds every PDU.

    Instances are made by switching the class of pynetdicom's own socket wrapper, so the
    attributes below are class defaults until `arm` sets them."""

    _prefix = b""  # the A-ASSOCIATE-RQ the gate already read
    _max_pdu = -1  # -1: no PDU checks (our SCU side)
    _next_body: tuple[int, int] | None = None  # (type, length) of the header just read
    broke_rule = ""  # why we ended the connection, for the association's record

    def arm(self, request: bytes, max_pdu: int, read_timeout: float | None) -> None:
        """SCP side: serve `request` first, bound PDUs by `max_pdu`, time out mid-PDU."""
        self._prefix, self._max_pdu = request, max_pdu
        if self.socket is not None:
            self.socket.settimeout(read_timeout)

    @property
    def ready(self) -> bool:
        return bool(self._prefix) or bool(AssociationSocket.ready.fget(self))

    def recv(self, nr_bytes: int) -> bytearray:
        if self._prefix:
            chunk, self._prefix = self._prefix[:nr_bytes], self._prefix[nr_bytes:]
            return bytearray(chunk)
        if self._max_pdu < 0:
            return self._read(nr_bytes)
        expected, self._next_body = self._next_body, None
        if expected is not None and expected[1] == nr_bytes:
            limit = pdu_limit(expected[0], self._max_pdu)
            if limit is not None and nr_bytes > limit:
                return self._refuse_pdu(expected[0], nr_bytes, limit)
        data = self._read(nr_bytes)
        if expected is None and nr_bytes == 6 and len(data) == 6:
            pdu_type, _, length = struct.unpack(">BBI", data)
            self._next_body = (pdu_type, length)
        return data

    def _read(self, nr_bytes: int) -> bytearray:
        """Up to `nr_bytes` (fewer when the peer closes or stalls), growing the buffer
        only as data arrives."""
        sock = self.socket
        if sock is None:
            return bytearray()
        buffer = bytearray(min(nr_bytes, CHUNK))
        read = 0
        while read < nr_bytes:
            if read == len(buffer):
                buffer += bytes(min(nr_bytes - read, CHUNK))
            if _QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            try:
                with memoryview(buffer) as view:
                    got = sock.recv_into(view[read:], len(buffer) - read)
            except TimeoutError:
                self.broke_rule = "no data for network_timeout in the middle of a PDU"
                LOG.warning("%s: %s; closing", self._peer(), self.broke_rule)
                break
            if not got:
                break
            read += got
        if read < nr_bytes:  # closed or stalled: hand back what arrived, as pynetdicom
            del buffer[read:]
        return buffer

    def _refuse_pdu(self, pdu_type: int, length: int, limit: int) -> bytearray:
        """A PDU longer than allowed: A-ABORT, and an empty read ends the association."""
        self.broke_rule = f"PDU type 0x{pdu_type:02X} of {length} bytes (limit {limit})"
        LOG.warning("%s sent a %s; aborting", self._peer(), self.broke_rule)
        try:
            if self.socket is not None:
                self.socket.sendall(abort_pdu(INVALID_PARAMETER))
        except OSError:
            pass
        return bytearray()

    def _peer(self) -> str:
        requestor = self.assoc.requestor
        return f"{requestor.address}:{requestor.port}"

    def send(self, bytestream: bytes) -> None:
        """Send, then re-arm QUICKACK: the peer's next message follows our answer."""
        super().send(bytestream)
        if _QUICKACK is not None and self.socket is not None:
            try:
                self.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass


def broken_rule(assoc) -> str:
    """The rule the peer broke if our socket ended the association, else ""."""
    sock = getattr(getattr(assoc, "dul", None), "socket", None)
    return str(getattr(sock, "broke_rule", "") or "")


class TunedRequestHandler(RequestHandler):
    """Admits one connection: TLS and its A-ASSOCIATE-RQ first, then the association."""

    server: TunedServer
    request: socket.socket  # the TLS socket once the handshake is done

    def handle(self) -> None:
        conn = self.server.take(self.request)
        try:
            request = self._request(conn)
        except Refused as exc:
            self._refused(conn, exc)
            return
        except PeerLeft as exc:
            LOG.debug("%s:%d left before its association: %s", conn.ip, conn.port, exc)
            self._close(conn)
            return
        except Exception:  # never leave a connection open, or counted, by accident
            LOG.exception("admitting a connection from %s:%d failed", conn.ip, conn.port)
            self._close(conn)
            return
        if not self.server.gate.associating(conn):  # the gate closed it meanwhile
            self._close(conn)
            return
        try:
            self._associate(conn, request)
        except Exception:
            LOG.exception("starting an association from %s:%d failed", conn.ip, conn.port)
            self._close(conn)

    def _associate(self, conn: Connection, request: bytes) -> None:
        """Hand the connection to pynetdicom, its A-ASSOCIATE-RQ already read."""
        assoc = self._create_association()
        assoc.dul.socket.arm(request, self.ae.maximum_pdu_size, self.ae.network_timeout)
        _when_done(assoc, lambda: self.server.gate.ended(conn))
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        assoc.start()

    def _request(self, conn: Connection) -> bytes:
        tune(self.request)
        if self.server.tls is not None:
            self.request = conn.sock = tls_handshake(
                self.request, self.server.tls, conn.deadline
            )
        return read_request(self.request, conn.deadline)

    def _refused(self, conn: Connection, exc: Refused) -> None:
        if exc.reply:
            try:
                self.request.sendall(exc.reply)
            except OSError:
                pass
        self._close(conn)
        if not conn.evicted:  # an evicted connection was reported when it was closed
            self.server.gate.refuse(conn.ip, conn.port, exc.rule, exc.reason)

    def _close(self, conn: Connection) -> None:
        try:
            self.request.close()
        finally:
            self.server.gate.ended(conn)

    def _create_association(self):
        assoc = super()._create_association()
        # The socket wrapper is already built and has queued its connection event; it
        # only gains methods, so switching its class is safe and loses nothing.
        assoc.dul.socket.__class__ = TunedAssociationSocket
        assoc.dimse.__class__ = GuardedDIMSE  # likewise: one method more careful
        return assoc


def _when_done(assoc, callback: Callable[[], None]) -> None:
    """Call `callback` when the association's thread ends, however it ends."""
    run = assoc.run

    def run_then_report() -> None:
        try:
            run()
        finally:
            callback()

    assoc.run = run_then_report


class TunedServer(ThreadedAssociationServer):
    """The threaded association server behind the gate, with our request handler.

    `gate` (and `tls`, on the TLS listener) are set before it serves."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a burst of connects must not drop a good sender's SYN
    gate: Gate
    tls: ssl.SSLContext | None = None

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("request_handler", TunedRequestHandler)
        self._admitted: dict[socket.socket, Connection] = {}
        super().__init__(*args, **kwargs)

    def verify_request(self, request, client_address) -> bool:
        """At accept, in the listener thread: the gate decides (allowed_ips, cap)."""
        conn = self.gate.accept(request, str(client_address[0]), int(client_address[1]))
        if conn is None:
            return False
        self._admitted[request] = conn
        return True

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            conn = self._admitted.pop(request, None)
            if conn is not None:
                self.gate.ended(conn)
            raise

    def take(self, request) -> Connection:
        """The gate's ticket for an admitted connection (handler thread)."""
        return self._admitted.pop(request)
