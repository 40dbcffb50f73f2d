"""The abuse mix against a real `dicomtui serve`: 50 idle connections, random bytes,
absurd PDU lengths, an abort in mid P-DATA and slow senders, all at once. Throughout,
a good C-ECHO answers within 1 s, memory grows by less than 50 MB, the service stays up.

Seeded and bounded: every attacker stops when the test says so; nothing waits on a
sleep for a state (the sleeps below pace attackers and probes).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable

from hostile_peers import (ABORT, associate_raw, capture_request, connect, rss_bytes,
                           store_pdus)
from helpers import fresh_ct, send, stored_files
from test_abuse import timed_echo

SEED = 20261129
ABUSE_SECONDS = 8.0
IDLE_PER_ADDRESS, IDLE_ADDRESSES = 5, 8  # 40 held, reconnected when closed ...
IDLE_BESIDE_THE_PROBE = 10  # ... and 10 more from the probe's own address, once
MB = 1 << 20


class Attack:
    """The attackers, each a thread that runs until `stop` is set."""

    def __init__(self, port: int, seed: int) -> None:
        self.port, self.stop = port, threading.Event()
        self.request = capture_request()
        self.rng = random.Random(seed)
        self.counts: dict[str, int] = {}
        self.threads: list[threading.Thread] = []
        self.idle_open = 0
        self._lock = threading.Lock()

    def start(self, *attackers: Callable[[random.Random], None]) -> None:
        for attacker in attackers:
            rng = random.Random(self.rng.random())
            thread = threading.Thread(target=self._run, args=(attacker, rng), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, attacker, rng: random.Random) -> None:
        while not self.stop.is_set():
            try:
                attacker(rng)
            except OSError:
                pass  # the service hung up on us: that is its job
            self._count(attacker.__name__)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    # -- the attackers ----------------------------------------------------------------
    def idle_from(self, source: str) -> Callable[[random.Random], None]:
        """Hold a silent connection; when the service closes it, connect again."""
        def idle(rng: random.Random) -> None:
            with connect(self.port, source) as sock:
                self._idle(+1)
                try:
                    sock.settimeout(0.2)
                    while not self.stop.is_set():
                        try:
                            if sock.recv(1) == b"":
                                return
                        except TimeoutError:
                            continue
                finally:
                    self._idle(-1)
        return idle

    def _idle(self, delta: int) -> None:
        with self._lock:
            self.idle_open += delta

    def random_bytes(self, rng: random.Random) -> None:
        with connect(self.port, "127.0.0.30") as sock:
            sock.sendall(rng.randbytes(rng.randint(1, 4096)))
            _drain(sock)
        self.stop.wait(0.05)

    def absurd_lengths(self, rng: random.Random) -> None:
        """Headers that claim gigabytes: as the first PDU, and inside an association."""
        length = rng.randint(1 << 31, (1 << 32) - 1)
        if rng.random() < 0.5:
            with connect(self.port, "127.0.0.31") as sock:
                sock.sendall(struct.pack(">BBI", rng.randint(1, 7), 0, length) + b"\0" * 64)
                _drain(sock)
        else:
            with associate_raw(self.port, self.request, "127.0.0.31") as sock:
                sock.sendall(struct.pack(">BBI", 0x04, 0, length) + b"\0" * 1024)
                _drain(sock)
        self.stop.wait(0.05)

    def abort_mid_p_data(self, rng: random.Random) -> None:
        """Start a C-STORE, then abort before its last fragment."""
        pdus = store_pdus(fresh_ct())
        with associate_raw(self.port, self.request, "127.0.0.32") as sock:
            for pdu in pdus[: rng.randint(1, len(pdus) - 1)]:
                sock.sendall(pdu)
            sock.sendall(ABORT)
            _drain(sock)
        self.stop.wait(0.1)

    def slow_store(self, rng: random.Random) -> None:
        """An association that sends a C-STORE one byte at a time (never finishes)."""
        data = b"".join(store_pdus(fresh_ct()))
        with associate_raw(self.port, self.request, "127.0.0.33") as sock:
            for byte in data:
                if self.stop.wait(0.05):
                    return
                sock.sendall(bytes([byte]))

    def slow_request(self, rng: random.Random) -> None:
        """An A-ASSOCIATE-RQ one byte at a time: handshake_timeout closes it."""
        with connect(self.port, "127.0.0.34") as sock:
            for byte in self.request:
                if self.stop.wait(0.2):
                    return
                sock.sendall(bytes([byte]))


def _drain(sock: socket.socket, timeout: float = 3.0) -> None:
    """Read until the service closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, ConnectionResetError):
        pass


def test_abuse_mix_never_locks_out_a_good_sender(service):
    svc = service("--set", "handshake_timeout=2")
    for _ in range(3):  # warm up: the first association loads pynetdicom's code paths
        assert timed_echo(svc.port)[0] == 0x0000
    before = rss_bytes(svc.proc.pid)
    attack = Attack(svc.port, SEED)
    beside_the_probe = [connect(svc.port) for _ in range(IDLE_BESIDE_THE_PROBE)]
    idlers = [attack.idle_from(f"127.0.0.{10 + a}") for a in range(IDLE_ADDRESSES)
              for _ in range(IDLE_PER_ADDRESS)]
    attack.start(*idlers, attack.random_bytes, attack.absurd_lengths,
                 attack.abort_mid_p_data, attack.slow_store, attack.slow_request)
    probes, peak, held = [], before, 0
    try:
        end = time.monotonic() + ABUSE_SECONDS
        while time.monotonic() < end:
            probes.append(timed_echo(svc.port))
            peak = max(peak, rss_bytes(svc.proc.pid))
            held = max(held, attack.idle_open)
            time.sleep(0.2)
    finally:
        attack.finish()
        for sock in beside_the_probe:
            sock.close()
    failed = [p for p in probes if p[0] != 0x0000]
    slowest = max(took for _, took in probes)
    print(f"\n{len(probes)} echoes, slowest {slowest * 1000:.0f} ms; RSS {before / MB:.0f} -> "
          f"peak {peak / MB:.0f} MB; idle held {held}; attacks {attack.counts}")
    assert not failed, f"{len(failed)} of {len(probes)} echoes failed"
    assert slowest < 1.0
    assert peak - before < 50 * MB
    assert held >= IDLE_PER_ADDRESS * IDLE_ADDRESSES - 2  # the idle ones were really held
    assert min(attack.counts.get(name, 0) for name in
               ("random_bytes", "absurd_lengths", "abort_mid_p_data")) >= 3
    assert svc.proc.poll() is None, "the service stopped"
    (ok,) = send(svc.port, [fresh_ct()])
    assert ok.Status == 0x0000
    assert len(stored_files(svc.data_dir / "storage")) == 1  # no partial or aborted store
