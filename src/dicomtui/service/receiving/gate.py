"""The accept-time gate: which connections may wait for an association, and how many.

pynetdicom counts an association against `max_associations` from the moment its
connection is accepted, before a byte is read, so silent connections used to lock every
sender out. The gate runs in the listener thread at accept, before any association
exists: a peer outside allowed_ips is closed at once; each peer address may hold at most
`max_peer_connections` open connections, and when it asks for more its oldest connection
that has not yet sent an A-ASSOCIATE-RQ is closed to make room (so a flood from one
address cannot keep out a sender at that address that promptly asks). Refusals are
reported to a callback (the receiver records them), throttled per address and rule.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

THROTTLE_SECONDS = 10.0  # at most one refusal record per address and rule this often
THROTTLE_ENTRIES = 4096  # addresses remembered by the throttle, at most


@dataclass(frozen=True)
class GateRules:
    """What the gate reads for each new connection (live settings)."""

    handshake_timeout: float = 5.0
    max_peer_connections: int = 8


@dataclass(frozen=True)
class ConnectionRefusal:
    """A connection closed before it became an association, and why."""

    ip: str
    port: int
    rule: str  # the setting or check that closed it
    reason: str
    suppressed: int = 0  # refusals like it not recorded since the last one


@dataclass(eq=False)
class Connection:
    """One accepted connection, from accept until it ends."""

    ip: str
    port: int
    sock: socket.socket
    deadline: float  # monotonic: the A-ASSOCIATE-RQ must have arrived by then
    associated: bool = False
    evicted: bool = False
    accepted: float = field(default_factory=time.monotonic)

    def hang_up(self) -> None:
        """Wake whatever waits on this socket (EOF); the owner thread closes it."""
        try:  # the plain socket's shutdown: an SSL wrapper's would drop its state
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass


class Gate:
    """Counts open connections per peer address; shared by every listener."""

    def __init__(
        self,
        rules: Callable[[], GateRules],
        address_refusal: Callable[[str], str | None],
        refused: Callable[[ConnectionRefusal], None],
    ) -> None:
        self._rules, self._address_refusal, self._refused = rules, address_refusal, refused
        self._lock = threading.Lock()
        self._by_ip: dict[str, list[Connection]] = {}
        self._throttle = RefusalThrottle()

    def accept(self, sock: socket.socket, ip: str, port: int) -> Connection | None:
        """At accept (listener thread): the connection's ticket, or None to close it."""
        why = self._address_refusal(ip)
        if why is not None:
            self.refuse(ip, port, "allowed_ips", why)
            return None
        rules = self._rules()
        conn = Connection(ip, port, sock, time.monotonic() + rules.handshake_timeout)
        with self._lock:
            mine = self._by_ip.setdefault(ip, [])
            evicted = _make_room(mine, rules.max_peer_connections)
            if evicted is None and len(mine) >= rules.max_peer_connections:
                full = len(mine)
            else:
                full = 0
                mine.append(conn)
        if evicted is not None:
            evicted.hang_up()
            self.refuse(
                ip,
                evicted.port,
                "max_peer_connections",
                f"{ip} reached max_peer_connections ({rules.max_peer_connections}); "
                "its oldest connection without an association request was closed",
            )
        if full:
            self.refuse(
                ip,
                port,
                "max_peer_connections",
                f"{ip} already has {full} associations open (max_peer_connections)",
            )
            return None
        return conn

    def associating(self, conn: Connection) -> bool:
        """Its A-ASSOCIATE-RQ arrived: never evicted from now on. False if it was."""
        with self._lock:
            if conn.evicted:
                return False
            conn.associated = True
            return True

    def ended(self, conn: Connection) -> None:
        """The connection is closed (refused, timed out, or its association ended)."""
        with self._lock:
            mine = self._by_ip.get(conn.ip, [])
            if conn in mine:
                mine.remove(conn)
            if not mine:
                self._by_ip.pop(conn.ip, None)

    def refuse(self, ip: str, port: int, rule: str, reason: str) -> None:
        """Report a refusal, unless one like it was reported moments ago."""
        suppressed = self._throttle.admit(ip, rule)
        if suppressed is not None:
            self._refused(ConnectionRefusal(ip, port, rule, reason, suppressed))

    def open_connections(self) -> dict[str, tuple[int, int]]:
        """{address: (waiting for a request, associated)}, for status and tests."""
        with self._lock:
            return {
                ip: (sum(not c.associated for c in conns), sum(c.associated for c in conns))
                for ip, conns in self._by_ip.items()
            }


def _make_room(mine: list[Connection], cap: int) -> Connection | None:
    """At the cap, mark and drop the oldest connection still waiting for its request."""
    if len(mine) < cap:
        return None
    waiting = [c for c in mine if not c.associated and not c.evicted]
    if not waiting:
        return None
    oldest = min(waiting, key=lambda c: c.accepted)
    oldest.evicted = True
    mine.remove(oldest)
    return oldest


class RefusalThrottle:
    """At most one refusal record per (address, rule) every THROTTLE_SECONDS.

    A flood of connections must not become a flood of log records; the next record
    that gets through says how many were left out.
    """

    def __init__(self, window: float = THROTTLE_SECONDS) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def admit(self, ip: str, rule: str) -> int | None:
        """None to leave this one out; else how many were left out before it."""
        now = time.monotonic()
        key = (ip, rule)
        with self._lock:
            last, skipped = self._last.get(key, (-self._window, 0))
            if now - last < self._window:
                self._last[key] = (last, skipped + 1)
                return None
            if len(self._last) >= THROTTLE_ENTRIES:
                self._forget_before(now - self._window)
            self._last[key] = (now, 0)
            return skipped

    def _forget_before(self, moment: float) -> None:
        stale = [k for k, (when, _) in self._last.items() if when < moment]
        for key in stale or list(self._last)[: THROTTLE_ENTRIES // 2]:
            del self._last[key]
