"""A small seeded PDU fuzzer: real PDUs (an A-ASSOCIATE-RQ, a C-ECHO and a C-STORE in
P-DATA-TF) broken at random, against an in-process engine. Every case must end with an
answer or a closed connection, good echoes keep working, and afterwards no connection,
association or temporary file is left behind.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from hostile_peers import associate_raw, capture_request, connect, echo_pdus, store_pdus
from helpers import fresh_ct, leftovers
from test_abuse import timed_echo, wait_until

SEED = 13
CASES = 240
PROBE_EVERY = 40


def mutate(rng: random.Random, data: bytes) -> bytes:
    """`data` broken one of several ways."""
    buf = bytearray(data)
    how = rng.randrange(7)
    if how == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif how == 1:  # cut it short
        del buf[rng.randrange(1, len(buf)):]
    elif how == 2:  # lie about the PDU length
        buf[2:6] = struct.pack(">I", rng.choice((0, 1, len(buf), 1 << 20, (1 << 32) - 1,
                                                 rng.randrange(1 << 32))))
    elif how == 3:  # another PDU type
        buf[0] = rng.randrange(256)
    elif how == 4:  # random bytes inside
        at = rng.randrange(len(buf))
        buf[at:at] = rng.randbytes(rng.randint(1, 64))
    elif how == 5:  # an item or fragment repeated
        start = rng.randrange(6, len(buf))
        buf[start:start] = buf[start:start + rng.randint(1, 80)]
    else:  # a length inside the PDU (item or PDV) made absurd
        at = rng.randrange(6, max(7, len(buf) - 4))
        buf[at:at + 4] = struct.pack(">I", rng.choice((0, 0xFFFFFFFF, rng.randrange(1 << 32))))
    return bytes(buf)


def _finish(sock: socket.socket) -> None:
    """Say no more, then read whatever comes until the engine closes the connection."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(20.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass  # reset, or already closed: both are answers
    finally:
        sock.close()


@pytest.mark.timeout(180)
def test_seeded_pdu_fuzzer(make_engine):
    engine = make_engine(handshake_timeout="2", network_timeout="5")
    rng = random.Random(SEED)
    request = capture_request()
    p_data = [echo_pdus(), store_pdus(fresh_ct(), max_pdu=16384)]
    kinds = {"request": 0, "p-data": 0}
    for case in range(CASES):
        if rng.random() < 0.4:
            kinds["request"] += 1
            sock = connect(engine.port)
            try:
                sock.sendall(mutate(rng, request))
            except OSError:
                pass
        else:
            kinds["p-data"] += 1
            sock = associate_raw(engine.port, request)
            pdus = rng.choice(p_data)
            broken = rng.randrange(len(pdus))
            try:
                for i, pdu in enumerate(pdus[: broken + 1]):
                    sock.sendall(mutate(rng, pdu) if i == broken else pdu)
            except OSError:
                pass
        _finish(sock)
        if case % PROBE_EVERY == PROBE_EVERY - 1:
            status, took = timed_echo(engine.port)  # (the 1 s bound: test_abuse_mix)
            assert status == 0x0000 and took < 5.0, f"after case {case}"
    assert min(kinds.values()) > CASES // 4
    wait_until(lambda: not engine.snapshot("local").associations, timeout=20)
    wait_until(lambda: engine.gate.open_connections() == {}, timeout=20)
    assert timed_echo(engine.port)[0] == 0x0000
    assert leftovers(engine.storage.root) == []
    started = time.monotonic()
    assert engine.listeners.running and time.monotonic() - started < 1
