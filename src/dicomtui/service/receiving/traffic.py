"""Traffic: the associations in progress, what they were recognised as, and the counters.

Association threads report here (one short lock), the status views read snapshots.
Stores in flight are counted so a stop can let them finish before it aborts anything.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime

from dicomtui.models import AssociationInfo, Counters
from dicomtui.service.core.events import now_iso
from dicomtui.service.core.records import called_ae_of, calling_ae_of, peer_of
from dicomtui.service.receiving.facility_stats import FacilityStats
from dicomtui.service.receiving.rate_ring import RateRing

UNKNOWN = "unknown"  # the facility of a caller no facility recognises


class Traffic:
    """Owns the association table and the counters; every method takes its lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._recognised: dict[int, str] = {}  # id(assoc) -> facility, until it ends
        self._assocs: dict[int, AssociationInfo] = {}
        self._in_flight = 0
        self._facilities = FacilityStats()
        self._counters, self._today, self._today_date = Counters(), Counters(), date.today()
        self._rate = RateRing()

    # -- associations ---------------------------------------------------------------
    def recognised(self, assoc, facility: str) -> None:
        """At request: the facility an admitted association belongs to."""
        with self._lock:
            self._recognised[id(assoc)] = facility

    def facility_of(self, assoc) -> str:
        with self._lock:
            return self._recognised.get(id(assoc), UNKNOWN)

    def association_id(self, assoc) -> int | None:
        with self._lock:
            info = self._assocs.get(id(assoc))
            return info.id if info else None

    def opened(self, assoc) -> AssociationInfo:
        with self._lock:
            info = AssociationInfo(
                next(self._ids),
                calling_ae_of(assoc),
                called_ae_of(assoc),
                peer_of(assoc),
                now_iso(),
                facility=self._recognised.get(id(assoc), UNKNOWN),
            )
            self._assocs[id(assoc)] = info
            self._count("associations", 1)
            self._facilities.seen(info.facility, info.started)
        return info

    def refused(self, assoc) -> str:
        """Count a refusal; the facility it was recognised as, if any."""
        with self._lock:
            self._count("refused", 1)
            return self._recognised.pop(id(assoc), UNKNOWN)

    def refused_connection(self) -> None:
        """Count a connection the gate closed before it became an association."""
        with self._lock:
            self._count("refused", 1)

    def closed(self, assoc) -> AssociationInfo | None:
        """Forget an association; its info, or None if it was never accepted."""
        with self._lock:
            self._recognised.pop(id(assoc), None)
            return self._assocs.pop(id(assoc), None)

    # -- counting --------------------------------------------------------------------
    def echoed(self) -> None:
        with self._lock:
            self._count("echoes", 1)

    def stored(
        self, assoc, ok: bool, size: int, facility: str, study_uid: str, when: str
    ) -> int | None:
        """Count one store; the id of the association it came on, if tracked."""
        with self._lock:
            self._count("received" if ok else "failed", 1)
            info = self._assocs.get(id(assoc))
            if ok:
                self._count("bytes", size)
                self._rate.add(time.time())
                self._facilities.stored(facility, study_uid, when)
                if info is not None:
                    info.instances += 1
                    info.bytes += size
            return info.id if info else None

    def seed_today(self, records: list[dict]) -> None:
        """Count today's records already logged (oldest first), so "today", the figures
        per facility and the rate of the last minutes survive a restart; called before
        any listener starts, so nothing counts twice."""
        with self._lock:
            if date.today() != self._today_date:
                self._today, self._today_date = Counters(), date.today()
            for record in records:
                self._seed_one(record)

    def _seed_one(self, record: dict) -> None:
        """Caller holds the lock."""
        kind, outcome = record.get("type"), record.get("outcome")
        if kind == "store" and outcome in ("ok", "warning"):
            self._today.received += 1
            self._today.bytes += record.get("bytes") or 0
            self._seed_rate(record.get("time"))
            if record.get("facility"):
                self._facilities.stored(
                    record["facility"],
                    record.get("study_uid") or "",
                    record.get("time") or "",
                )
        elif kind == "store":
            self._today.failed += 1
        elif kind == "association":
            field = "refused" if outcome == "refused" else "associations"
            setattr(self._today, field, getattr(self._today, field) + 1)
        elif kind == "echo":
            self._today.echoes += 1

    def _seed_rate(self, iso: str | None) -> None:
        try:
            when = datetime.fromisoformat(iso or "").timestamp()
        except ValueError:
            return
        if when > time.time() - self._rate.window:
            self._rate.add(when)

    def facility_today(self, name: str) -> tuple[int, int, str | None]:
        """(instances, studies, last seen) of a facility today."""
        with self._lock:
            return self._facilities.today(name)

    def forget_facility(self, name: str) -> None:
        with self._lock:
            self._facilities.forget(name)

    def _count(self, field: str, n: int) -> None:
        """Caller holds the lock."""
        today = date.today()  # once: it reads the clock and the time zone
        if today != self._today_date:
            self._today, self._today_date = Counters(), today
        setattr(self._counters, field, getattr(self._counters, field) + n)
        setattr(self._today, field, getattr(self._today, field) + n)

    # -- stores in flight ---------------------------------------------------------------
    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Around one store, so wait_idle() can let it finish."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, grace: float) -> None:
        """Until no store is in flight, at most `grace` seconds."""
        deadline = time.monotonic() + grace
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(timeout=0.1)

    # -- reading ---------------------------------------------------------------------------
    def received_by_second(self) -> list[list[int]]:
        """[second, images] of the last minutes (see rate_ring.py)."""
        with self._lock:
            return self._rate.samples(time.time())

    def snapshot(self) -> tuple[list[AssociationInfo], Counters, Counters]:
        """Copies of the associations in progress, the counters and today's counters."""
        with self._lock:
            assocs = [AssociationInfo(**vars(a)) for a in self._assocs.values()]
            return assocs, Counters(**vars(self._counters)), Counters(**vars(self._today))
