"""A deterministic Backend for console tests: fixed data, the real setting rules.

It stands in for the engine only where the console's own behaviour is under test (keys,
screens, snapshots); the console is also tested against a real engine and service.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.models import (AssociationInfo, Counters, Event, EventBatch, Listener,
                             SettingValue, StatusSnapshot, TransactionFilter)
from dicomtui.settings import SPEC_BY_NAME, SPECS, SettingError, parse_value

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


def record(n: int, **extra) -> dict:
    """Transaction n at 08:MM:SS on 2026-11-23 (newer with n)."""
    base = {"id": n, "time": f"2026-11-23T08:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
            "type": "store", "outcome": "ok", "status": 0, "calling_ae": "CT_SCANNER1",
            "called_ae": "DICOMTUI", "peer": "10.1.2.3:40112", "sop_class": CT,
            "patient_id": f"PAT{n % 7:03d}", "study_uid": f"1.2.826.0.1.3680043.8.498.{n // 10}",
            "bytes": 527_000, "duration_ms": 4.2, "reason": ""}
    base.update(extra)
    return base


def sample_records() -> list[dict]:
    rows = [record(n) for n in range(1, 41)]
    rows[9] = record(10, outcome="failed", status=0xA700,
                     reason="storage quota reached (max_storage_gb)")
    rows[19] = record(20, type="association", outcome="refused", status=None,
                      calling_ae="UNKNOWN_MOD", peer="10.9.9.9:5000", sop_class="",
                      patient_id="", study_uid="", bytes=0, duration_ms=None,
                      reason="rejected: calling AE title not recognised")
    rows[29] = record(30, calling_ae="MR_ROOM2", sop_class=MR, peer="10.1.2.7:40999")
    return rows


def sample_snapshot(state: str = "running") -> StatusSnapshot:
    running = state == "running"
    return StatusSnapshot(
        state=state, mode="local", pid=4242, version="0.1.0",
        data_dir="/var/lib/dicomtui", storage_dir="/var/lib/dicomtui/storage",
        started_at="2026-11-23T05:00:00+00:00" if running else None,
        uptime_s=3 * 3600 + 12 * 60 if running else 0.0,
        listeners=[Listener("DICOMTUI", "0.0.0.0", 11112,
                            "listening" if running else "stopped")],
        associations=[AssociationInfo(7, "CT_SCANNER1", "DICOMTUI", "10.1.2.3:40112",
                                      "2026-11-23T08:14:00+00:00", 212, 111_724_000)]
        if running else [],
        counters=Counters(received=18_342, bytes=9_663_000_000, failed=3, refused=1,
                          echoes=12, associations=96),
        today=Counters(received=4_120, bytes=2_171_000_000, failed=1, refused=1,
                       echoes=3, associations=20),
        storage_used_bytes=412_000_000_000, quota_bytes=500_000_000_000,
        last_errors=[Event(52, "2026-11-23T08:09:10+00:00", "transaction", "WARNING",
                           "store refused", {"calling_ae": "CT_SCANNER1",
                                             "peer": "10.1.2.3:40112", "status": 0xA700,
                                             "reason": "storage quota reached"}),
                     Event(31, "2026-11-23T08:00:20+00:00", "transaction", "WARNING",
                           "refused", {"calling_ae": "UNKNOWN_MOD", "peer": "10.9.9.9:5000",
                                       "outcome": "refused", "reason": "rejected: calling AE "
                                       "title not recognised"})])


def sample_events() -> list[Event]:
    return [Event(1, "2026-11-23T05:00:00+00:00", "state", "INFO",
                  "listening on 0.0.0.0:11112 as DICOMTUI", {"state": "running"}),
            Event(2, "2026-11-23T08:00:20+00:00", "log", "WARNING",
                  "association from UNKNOWN_MOD (10.9.9.9:5000) refused",
                  {"logger": "dicomtui.service"}),
            Event(3, "2026-11-23T08:09:10+00:00", "log", "ERROR",
                  "store from CT_SCANNER1 refused (0xA700): storage quota reached",
                  {"logger": "dicomtui.service"})]


class FakeBackend:
    """Fixed data; start/stop/settings change it the way the engine would."""

    def __init__(self, mode: str = "local", state: str = "running") -> None:
        self.mode = mode
        self.snap = sample_snapshot(state)
        self.snap.mode = mode
        self.records = sample_records()
        self.log = sample_events()
        self.stored: dict[str, object] = {}
        self.calls: list[str] = []
        self.queries: list[TransactionFilter] = []
        self.fail_start = ""
        self.closed = threading.Event()
        self.gate: threading.Event | None = None  # when set, status() waits on it

    def status(self) -> StatusSnapshot:
        if self.gate is not None:
            self.gate.wait(10)
        return replace(self.snap)

    def start(self) -> StatusSnapshot:
        self.calls.append("start")
        if self.fail_start:
            self.snap.state, self.snap.error = "error", self.fail_start
            raise BackendError(self.fail_start)
        self.snap = replace(sample_snapshot("running"), mode=self.mode)
        return self.status()

    def stop(self) -> StatusSnapshot:
        self.calls.append("stop")
        self.snap = replace(sample_snapshot("stopped"), mode=self.mode)
        return self.status()

    def restart(self) -> StatusSnapshot:
        self.calls.append("restart")
        return self.start()

    def events(self, after: int = 0, limit: int = 1000, kinds=None) -> EventBatch:
        fresh = [e for e in self.log if e.seq > after and (not kinds or e.kind in kinds)]
        fresh = fresh[:limit]
        return EventBatch(seq=max((e.seq for e in self.log), default=0), events=fresh)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        self.queries.append(flt)
        found = [r for r in self.records if _matches(r, flt)]
        if flt.after_id is not None:
            return [r for r in found if r["id"] > flt.after_id][:flt.limit]
        if flt.before_id is not None:
            found = [r for r in found if r["id"] < flt.before_id]
        return list(reversed(found))[:flt.limit]

    def settings(self) -> list[SettingValue]:
        return [SettingValue(s.name, self.stored.get(s.name, s.default),
                             "stored" if s.name in self.stored else "default", s.default,
                             s.help, s.restart, s.restart and s.name in self.stored
                             and self.snap.state == "running")
                for s in SPECS]

    def set_setting(self, name: str, value: str) -> SettingValue:
        if name not in SPEC_BY_NAME:
            raise InvalidRequest(f"unknown setting {name!r}")
        try:
            self.stored[name] = parse_value(SPEC_BY_NAME[name], value)
        except SettingError as exc:
            raise InvalidRequest(str(exc)) from None
        return next(v for v in self.settings() if v.name == name)

    def unset_setting(self, name: str) -> SettingValue:
        self.stored.pop(name, None)
        return next(v for v in self.settings() if v.name == name)

    def close(self) -> None:
        self.calls.append("close")
        self.closed.set()


def _matches(r: dict, flt: TransactionFilter) -> bool:
    if flt.types and r["type"] not in flt.types:
        return False
    if flt.outcomes and r["outcome"] not in flt.outcomes:
        return False
    if flt.statuses and r["status"] not in flt.statuses:
        return False
    if flt.ae and flt.ae.upper() not in (r["calling_ae"], r["called_ae"]):
        return False
    return not flt.text or flt.text.lower() in str(r).lower()
