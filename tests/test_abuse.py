"""Hostile peers at the transport: connections that never ask for an association, or
come from outside allowed_ips, must never lock good senders out (ARCHITECTURE.md,
"Rules for the network")."""

from __future__ import annotations

import socket
import struct
import time

from pynetdicom import AE

VERIFICATION = "1.2.840.10008.1.1"


def timed_echo(port: int, calling: str = "GOODSCU") -> tuple[int | None, float]:
    """(status or None if no association, seconds taken) of one C-ECHO."""
    started = time.monotonic()
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
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
        assert took < 5.0  # (it was 30 s; the abuse mix holds the 1 s bound under load)
    finally:
        for sock in silent:
            sock.close()


def test_a_peer_outside_allowed_ips_is_closed_at_accept(make_engine):
    engine = make_engine(allowed_ips="10.0.0.0/8")
    sock = idle(engine.port)
    try:
        assert closed_by_peer(sock, within=10.0), "still open before any PDU was sent"
    finally:
        sock.close()


# -- the gate, rule by rule ------------------------------------------------------------------
def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.02)


def refusals(engine, rule: str) -> list[dict]:
    engine.writer.flush()
    found = engine.txlog.query(types=["association"], outcomes=["refused"], limit=100)
    return [r for r in found if r.get("rule") == rule]


def waiting(engine, ip: str) -> int:
    """Connections from `ip` that the gate holds without an association yet."""
    return engine.gate.open_connections().get(ip, (0, 0))[0]


def test_a_silent_connection_is_closed_after_handshake_timeout(make_engine):
    engine = make_engine(handshake_timeout="1")
    sock = idle(engine.port)
    try:
        started = time.monotonic()
        assert closed_by_peer(sock, within=15.0)
        assert 0.8 < time.monotonic() - started < 10.0
    finally:
        sock.close()
    wait_until(lambda: refusals(engine, "handshake_timeout"))
    (record,) = refusals(engine, "handshake_timeout")
    assert record["peer"].startswith("127.0.0.1:") and "silent" in record["reason"]
    assert engine.gate.open_connections() == {}


def test_allowed_ips_refusal_is_recorded_with_its_rule(make_engine):
    engine = make_engine(allowed_ips="10.0.0.0/8")
    sock = idle(engine.port)
    try:
        assert closed_by_peer(sock, within=10.0)
    finally:
        sock.close()
    wait_until(lambda: refusals(engine, "allowed_ips"))
    assert "not in allowed_ips" in refusals(engine, "allowed_ips")[0]["reason"]


def test_at_the_per_peer_cap_the_oldest_silent_connection_makes_room(make_engine):
    engine = make_engine(max_peer_connections="3")
    silent = [idle(engine.port, "127.0.0.7") for _ in range(3)]
    try:
        wait_until(lambda: waiting(engine, "127.0.0.7") == 3)
        newest = idle(engine.port, "127.0.0.7")
        silent.append(newest)
        assert closed_by_peer(silent[0], within=10.0), "the oldest one was kept"
        wait_until(lambda: waiting(engine, "127.0.0.7") == 3)
        assert not closed_by_peer(newest, within=0.2)
        assert refusals(engine, "max_peer_connections")
        # another address is not affected at all
        assert timed_echo(engine.port)[0] == 0x0000
    finally:
        for sock in silent:
            sock.close()


def test_a_peer_at_its_cap_of_associations_is_refused_at_accept(make_engine):
    engine = make_engine(max_peer_connections="2")
    held = []
    for _ in range(2):
        ae = AE(ae_title="HOLDER")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
        assert assoc.is_established
        held.append(assoc)
    try:
        status, _ = timed_echo(engine.port)
        assert status is None, "a third association from one address was let in"
        wait_until(lambda: refusals(engine, "max_peer_connections"))
        assert "2 associations open" in refusals(engine, "max_peer_connections")[0]["reason"]
    finally:
        for assoc in held:
            assoc.release()
    wait_until(lambda: engine.gate.open_connections() == {})
    assert timed_echo(engine.port)[0] == 0x0000


def test_garbage_instead_of_a_request_is_aborted_at_once(make_engine):
    engine = make_engine()
    sock = idle(engine.port)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10.0)
        answer = sock.recv(100)
        assert answer[:1] == b"\x07", "expected an A-ABORT"
        assert closed_by_peer(sock, within=10.0)
    finally:
        sock.close()
    wait_until(lambda: refusals(engine, "protocol"))
    assert "not an A-ASSOCIATE-RQ" in refusals(engine, "protocol")[0]["reason"]


def test_an_absurd_request_length_is_refused_without_waiting(make_engine):
    engine = make_engine(handshake_timeout="60")  # waiting for the body would show
    sock = idle(engine.port)
    try:
        sock.sendall(struct.pack(">BBI", 0x01, 0, 0xFFFFFFF0) + b"\x00\x01")
        started = time.monotonic()
        assert closed_by_peer_after_abort(sock, within=10.0)
        assert time.monotonic() - started < 5.0  # not handshake_timeout, nor acse_timeout
    finally:
        sock.close()
    wait_until(lambda: refusals(engine, "protocol"))
    assert "claims 4294967280 bytes" in refusals(engine, "protocol")[0]["reason"]


def closed_by_peer_after_abort(sock: socket.socket, within: float) -> bool:
    """True when the peer sends an A-ABORT (or nothing) and closes within `within` s."""
    sock.settimeout(within)
    try:
        data = sock.recv(100)
        return data == b"" or (data[:1] == b"\x07" and closed_by_peer(sock, within))
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_absurd_p_data_length_aborts_the_association(make_engine):
    engine = make_engine()
    ae = AE(ae_title="HUGEPDU")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    raw.sendall(struct.pack(">BBI", 0x04, 0, 0xFFFFFFF0) + b"\x00" * 64)
    wait_until(lambda: not engine.snapshot("local").associations)
    engine.writer.flush()
    (end,) = engine.txlog.query(types=["association"], outcomes=["failed"], limit=10)
    assert end["calling_ae"] == "HUGEPDU" and "4294967280 bytes" in end["reason"]
    assert timed_echo(engine.port)[0] == 0x0000


def test_a_peer_that_stalls_mid_pdu_is_dropped_after_network_timeout(make_engine):
    engine = make_engine(network_timeout="1")
    ae = AE(ae_title="STALLER")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    raw.sendall(struct.pack(">BBI", 0x04, 0, 1000) + b"\x00" * 10)  # then nothing
    wait_until(lambda: not engine.snapshot("local").associations, timeout=15)
    assert timed_echo(engine.port)[0] == 0x0000
