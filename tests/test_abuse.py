"""Hostile peers at the transport: connections that never ask for an association, or
come from outside allowed_ips, must never lock good senders out (ARCHITECTURE.md,
"Rules for the network")."""

from __future__ import annotations

import socket
import time

from pynetdicom import AE

VERIFICATION = "1.2.840.10008.1.1"


def timed_echo(port: int, calling: str = "GOODSCU") -> tuple[int | None, float]:
    """(status or None if no association, seconds taken) of one C-ECHO."""
    started = time.monotonic()
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    status = None
    if assoc.is_established:
        status = int(assoc.send_c_echo().Status)
        assoc.release()
    return status, time.monotonic() - started


def idle(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection that says nothing."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the other side closes `sock` (EOF or reset) within `within` s."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_never_hold_an_association_slot(make_engine):
    engine = make_engine(max_associations="2")
    silent = [idle(engine.port) for _ in range(6)]
    try:
        status, took = timed_echo(engine.port)
        assert status == 0x0000, "a good sender was locked out by silent connections"
        assert took < 1.0
    finally:
        for sock in silent:
            sock.close()


def test_a_peer_outside_allowed_ips_is_closed_at_accept(make_engine):
    engine = make_engine(allowed_ips="10.0.0.0/8")
    sock = idle(engine.port)
    try:
        assert closed_by_peer(sock, within=2.0), "still open before any PDU was sent"
    finally:
        sock.close()
