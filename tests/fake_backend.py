"""A deterministic Backend for console tests: fixed data, the real setting rules.

It stands in for the engine only where the console's own behaviour is under test (keys,
screens, snapshots); the console is also tested against a real engine and service.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.dicom.aetitle import ae_title_problem, generate_ae_title
from dicomtui.models import (ANONYMIZE_CHOICES, MASK, AllowedCaller, AnonExport,
                             AnonSubject, AssociationInfo, Counters, Event, EventBatch,
                             Facility, Listener, PacsConfig, SettingValue, StatusSnapshot,
                             TransactionFilter, UploadItem, UploadSummary)
from dicomtui.settings import SPEC_BY_NAME, SPECS, SettingError, parse_networks, parse_value

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
    rows[19].update(rule="require_calling_ae", facility="unknown")
    rows[29] = record(30, calling_ae="MR_ROOM2", sop_class=MR, peer="10.1.2.7:40999")
    rows[34] = refused(35, "OLD_US", "10.1.2.40:51234", "denied",
                       "calling AE title OLD_US is denied (`dicomtui ae allow` re-allows it)")
    rows[37] = refused(38, "ANGIO_LAB", "10.4.0.12:40400", "require_calling_ae",
                       "calling AE title ANGIO_LAB is not an allowed caller",
                       called_ae="STMARYSCLINIC", facility="St. Mary's Clinic")
    return rows


def refused(n: int, calling_ae: str, peer: str, rule: str, reason: str,
            called_ae: str = "DICOMTUI", facility: str = "unknown") -> dict:
    """An association refused by the access policy, as the engine records it."""
    return record(n, type="association", outcome="refused", status=None,
                  calling_ae=calling_ae, called_ae=called_ae, peer=peer, sop_class="",
                  patient_id="", study_uid="", bytes=0, duration_ms=None, rule=rule,
                  facility=facility, reason=f"rejected: {reason} (result 1, source 1, "
                  "diagnostic 3)")


PORT_IN_USE = ("port 11115 is already in use on this host (another program?); choose "
               "another, or leave --port out to take the next free one")


def sample_facilities() -> list[Facility]:
    return [Facility("Main Hospital", "MAINHOSPITAL", 11113, ["CT_SCANNER1"],
                     "2026-11-01T09:00:00+00:00", listener="listening",
                     instances_today=3_120, studies_today=41,
                     last_seen="2026-11-23T08:14:58+00:00"),
            Facility("St. Mary's Clinic", "STMARYSCLINIC", 11114, [],
                     "2026-11-02T09:00:00+00:00", listener="listening",
                     instances_today=1_000, studies_today=12,
                     last_seen="2026-11-22T17:40:03+00:00"),
            Facility("Westside Imaging", "WESTSIDEIMAGING", 11115, [],
                     "2026-11-20T09:00:00+00:00", listener="error", error=PORT_IN_USE)]


def sample_subjects() -> list[AnonSubject]:
    """The anonymization map, revealed (the fake masks what it hands out)."""
    return [AnonSubject("sub-001", 3, 412, "2026-11-02T09:12:00+00:00",
                        "2026-11-23T08:14:58+00:00", "DOE^JOHN", "PID-0001", "MAINHOSP",
                        True),
            AnonSubject("sub-002", 1, 96, "2026-11-20T10:03:00+00:00",
                        "2026-11-22T17:40:03+00:00", "ROE^JANE", "PID-0002", "MAINHOSP",
                        True),
            AnonSubject("sub-003", 2, 1_208, "2026-11-21T14:30:00+00:00",
                        "2026-11-23T07:55:10+00:00", "MUSTERMANN^ERIKA", "STM-77031",
                        "STMARYS", True),
            AnonSubject("sub-010", 1, 24, "2026-11-23T06:01:00+00:00",
                        "2026-11-23T06:02:40+00:00", "NGUYEN^VAN AN", "WS-000417",
                        "WESTSIDE", True)]


NOW = "2026-11-23T08:15:00+00:00"  # tests/console.py's frozen clock
ZIPS = "/var/lib/dicomtui/zips"
TOO_LARGE = ("HTTP 413 Request Entity Too Large: the upload API accepts at most 200 MB per "
             "request; ask its administrator to raise client_max_body_size")


def sample_uploads() -> list[UploadItem]:
    """One upload in each state, newest first, as of the frozen clock (08:15:00)."""
    uid = "1.2.826.0.1.3680043.8.498."
    return [
        UploadItem(6, f"{ZIPS}/{uid}7734051.zip", f"{uid}7734051", 96_400_000, "queued",
                   created="2026-11-23T08:14:40+00:00"),
        UploadItem(5, f"{ZIPS}/{uid}7733920.zip", f"{uid}7733920", 88_000_000, "queued",
                   attempts=1, next_attempt="2026-11-23T08:15:12+00:00",
                   last_error="HTTP 503 Service Unavailable: upstream busy",
                   created="2026-11-23T08:13:02+00:00"),
        UploadItem(4, f"{ZIPS}/{uid}7733871.v2.zip", f"{uid}7733871", 412_000_000,
                   "uploading", attempts=1, bytes_sent=206_000_000,
                   created="2026-11-23T08:12:30+00:00", version=2),
        UploadItem(3, f"{ZIPS}/{uid}7733502.zip", f"{uid}7733502", 1_240_000_000,
                   "failed", attempts=4, last_error=TOO_LARGE,
                   created="2026-11-23T07:40:11+00:00",
                   finished="2026-11-23T07:58:40+00:00"),
        UploadItem(2, "/home/ops/outgoing/mr-brain-export.zip", "", 51_200_000,
                   "cancelled", created="2026-11-23T07:21:00+00:00",
                   finished="2026-11-23T07:22:15+00:00", source="manual"),
        UploadItem(1, f"{ZIPS}/{uid}7731008.zip", f"{uid}7731008", 233_500_000, "done",
                   attempts=1, created="2026-11-23T06:02:40+00:00",
                   finished="2026-11-23T06:03:31+00:00")]


def upload_summary(items: list[UploadItem]) -> UploadSummary:
    states = [item.state for item in items]
    return UploadSummary(*(states.count(s) for s in ("queued", "uploading", "failed",
                                                     "done")))


def sample_callers() -> list[AllowedCaller]:
    return [AllowedCaller("CT_SCANNER1", "CT room 1", "10.1.2.3/32", True),
            AllowedCaller("MR_ROOM2", "MR, second floor", "", True),
            AllowedCaller("OLD_US", "retired ultrasound", "", False)]


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
                                       "title not recognised"})],
        uploads=upload_summary(sample_uploads()))


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
        self.sites = {f.name: f for f in sample_facilities()}
        self.allowed = {c.ae_title: c for c in sample_callers()}
        self.subjects = sample_subjects()
        self.reveals: list[str] = []  # the search of each anon_subjects(reveal=True)
        self.exports: list[str] = []
        self.reveal_gate: threading.Event | None = None  # when set, reveals wait on it
        self.queue = sample_uploads()
        self.upload_calls: list[str] = []  # "upload PATH", "retry 3", "cancel 4"

    def status(self) -> StatusSnapshot:
        if self.gate is not None:
            self.gate.wait(10)
        return replace(self.snap, uploads=upload_summary(self.queue))

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

    # -- facilities: the engine's rules, from the same pure functions -----------------
    def facilities(self) -> list[Facility]:
        running = self.snap.state == "running"
        return sorted((replace(f, calling_aes=list(f.calling_aes),
                               listener=f.listener if running else "stopped")
                       for f in self.sites.values()), key=lambda f: f.port)

    def add_facility(self, name: str, port: int | None = None, ae_title: str | None = None,
                     calling_aes: list[str] | None = None,
                     anonymize: str | None = None) -> Facility:
        name = " ".join((name or "").split())
        if not name:
            raise InvalidRequest("a facility name must not be empty")
        if name.casefold() in {n.casefold() for n in self.sites}:
            raise InvalidRequest(f"a facility named {name!r} already exists")
        if not ae_title:
            try:
                ae_title = generate_ae_title(name, self._taken_aes(None))
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
        facility = Facility(name, self._check_ae(ae_title, None),
                            self._check_port(port, None) if port is not None
                            else self._free_port(), _check_callers(calling_aes or []),
                            "2026-11-23T08:15:00+00:00", listener="listening",
                            anonymize=_check_anonymize(anonymize or "default"))
        self.sites[name] = facility
        return replace(facility)

    def update_facility(self, name: str, ae_title: str | None = None,
                        port: int | None = None,
                        calling_aes: list[str] | None = None,
                        anonymize: str | None = None) -> Facility:
        before = self._facility(name)
        after = replace(before)
        if ae_title is not None and ae_title.strip() != before.ae_title:
            after.ae_title = self._check_ae(ae_title, before.name)
        if port is not None and port != before.port:
            after.port = self._check_port(port, before.name)
        if calling_aes is not None:
            after.calling_aes = _check_callers(calling_aes)
        if anonymize is not None:
            after.anonymize = _check_anonymize(anonymize)
        self.sites[before.name] = after
        return replace(after)

    def remove_facility(self, name: str) -> Facility:
        return self.sites.pop(self._facility(name).name)

    def pacs_config(self) -> PacsConfig:
        main = Listener("DICOMTUI", "0.0.0.0", 11112, self.snap.listeners[0].state)
        return PacsConfig("pacs-gw.example.org", ["10.1.2.10"], [main] + [
            Listener(f.ae_title, "0.0.0.0", f.port, f.listener, f.name, f.error)
            for f in self.facilities()])

    def _facility(self, name: str) -> Facility:
        found = [f for f in self.sites.values() if f.name.casefold() == name.casefold()]
        if not found:
            raise NotFound(f"no facility named {name!r} (see `dicomtui facility list`)")
        return found[0]

    def _taken_aes(self, owner: str | None) -> set[str]:
        return {"DICOMTUI"} | {f.ae_title for f in self.sites.values() if f.name != owner}

    def _check_ae(self, ae_title: str, owner: str | None) -> str:
        problem = ae_title_problem(ae_title)
        if problem:
            raise InvalidRequest(f"AE title {ae_title!r} {problem}")
        if ae_title.strip().upper() in {t.upper() for t in self._taken_aes(owner)}:
            raise InvalidRequest(f"AE title {ae_title.strip()} is already in use")
        return ae_title.strip()

    def _check_port(self, port: int, owner: str | None) -> int:
        if not 1 <= port <= 65535:
            raise InvalidRequest(f"port must be an integer from 1 to 65535 (got {port!r})")
        if port == 11112 or port in {f.port for f in self.sites.values() if f.name != owner}:
            raise InvalidRequest(f"port {port} is already in use; choose another")
        return port

    def _free_port(self) -> int:
        taken = {11112} | {f.port for f in self.sites.values()}
        return next(p for p in range(11113, 65536) if p not in taken)

    # -- allowed callers -------------------------------------------------------------
    def callers(self) -> list[AllowedCaller]:
        return sorted((replace(c) for c in self.allowed.values()), key=lambda c: c.ae_title)

    def allow_caller(self, ae_title: str, ip: str | None = None,
                     description: str | None = None, active: bool = True) -> AllowedCaller:
        problem = ae_title_problem(ae_title)
        if problem:
            raise InvalidRequest(f"AE title {ae_title!r} {problem}")
        ae_title = ae_title.strip()
        current = self.allowed.get(ae_title) or AllowedCaller(ae_title)
        self.allowed[ae_title] = replace(
            current, active=active, ip=current.ip if ip is None else _network(ip),
            description=current.description if description is None else description)
        return replace(self.allowed[ae_title])

    def update_caller(self, ae_title: str, ip: str | None = None,
                      description: str | None = None) -> AllowedCaller:
        current = self.allowed.get(ae_title.strip())
        if current is None:
            raise NotFound(f"no allowed caller {ae_title.strip()!r}")
        return self.allow_caller(ae_title, ip, description, active=current.active)

    def deny_caller(self, ae_title: str) -> AllowedCaller:
        return self.allow_caller(ae_title, active=False)

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        if ae_title.strip() not in self.allowed:
            raise NotFound(f"no allowed caller {ae_title.strip()!r}")
        return self.allowed.pop(ae_title.strip())

    # -- anonymization map ---------------------------------------------------------------
    def anon_subjects(self, search: str = "", reveal: bool = False) -> list[AnonSubject]:
        if reveal:
            self.reveals.append(search)
            if self.reveal_gate is not None:
                self.reveal_gate.wait(10)
        found = [s for s in self.subjects if search.casefold() in s.code.casefold()]
        return [replace(s) if reveal else replace(s, patient_name=MASK, patient_id=MASK,
                                                   issuer=MASK, revealed=False)
                for s in found]

    def export_anonymization(self, path: str) -> AnonExport:
        if os.path.exists(path):
            raise InvalidRequest(f"{path} already exists: choose a new file name (an "
                                 "export never overwrites)")
        rows = [{"code": s.code, "patient_name": s.patient_name, "patient_id": s.patient_id,
                 "issuer": s.issuer, "studies": s.studies, "instances": s.instances}
                for s in self.subjects]
        try:
            with open(path, "x", encoding="utf-8") as out:
                json.dump({"subjects": rows}, out)
        except OSError as exc:
            raise InvalidRequest(f"cannot write {path}: {exc.strerror}") from None
        self.exports.append(path)
        return AnonExport(path, len(rows))

    # -- the upload queue: the engine's rules and words ------------------------------------
    def uploads(self) -> list[UploadItem]:
        return sorted((replace(i) for i in self.queue), key=lambda i: -i.id)

    def upload(self, path: str) -> UploadItem:
        self.upload_calls.append(f"upload {path}")
        if not os.path.isabs(path):
            raise InvalidRequest(f"give an absolute path (got {path!r})")
        if os.path.isfile(path):
            if not path.lower().endswith(".zip"):
                raise InvalidRequest(f"{path} is not a .zip; give a zip or a study folder")
            zip_path, size = path, os.path.getsize(path)
        elif os.path.isdir(path):
            size = sum(os.path.getsize(os.path.join(top, name))
                       for top, _dirs, names in os.walk(path) for name in names)
            if not size:
                raise InvalidRequest(f"{path} has no files to upload")
            zip_path = f"{ZIPS}/{os.path.basename(path)}-20261123T081500.zip"
        else:
            raise InvalidRequest(f"{path} does not exist")
        item = UploadItem(max((i.id for i in self.queue), default=0) + 1, zip_path,
                          size=size, created=NOW, source="manual")
        self.queue.append(item)
        return replace(item)

    def retry_upload(self, item_id: int) -> UploadItem:
        self.upload_calls.append(f"retry {item_id}")
        item = self._upload(item_id)
        if item.state not in ("failed", "cancelled"):
            raise InvalidRequest(f"upload {item_id} is {item.state}; only failed or "
                                 "cancelled uploads can be retried")
        item.state, item.attempts, item.next_attempt, item.finished = "queued", 0, None, None
        return replace(item)

    def cancel_upload(self, item_id: int) -> UploadItem:
        self.upload_calls.append(f"cancel {item_id}")
        item = self._upload(item_id)
        if item.state in ("done", "cancelled"):
            raise InvalidRequest(f"upload {item_id} is already {item.state}")
        item.state, item.next_attempt, item.finished = "cancelled", None, NOW
        item.bytes_sent = 0
        return replace(item)

    def _upload(self, item_id: int) -> UploadItem:
        found = [i for i in self.queue if i.id == item_id]
        if not found:
            raise NotFound(f"no upload with id {item_id} (see `dicomtui uploads`)")
        return found[0]

    def close(self) -> None:
        self.calls.append("close")
        self.closed.set()


def _check_callers(calling_aes: list[str]) -> list[str]:
    for ae in calling_aes:
        problem = ae_title_problem(ae)
        if problem:
            raise InvalidRequest(f"calling AE title {ae!r} {problem}")
    return list(dict.fromkeys(ae.strip() for ae in calling_aes))


def _check_anonymize(value: str) -> str:
    if value not in ANONYMIZE_CHOICES:
        raise InvalidRequest(f"anonymize must be one of {', '.join(ANONYMIZE_CHOICES)} "
                             f"(got {value!r})")
    return value


def _network(text: str) -> str:
    """One address or CIDR network as the engine stores it ('' = any address)."""
    try:
        networks = parse_networks(text)
    except ValueError:
        networks = []
    if text.strip() and len(networks) != 1:
        raise InvalidRequest(f"{text.strip()!r} is not an IP address or CIDR network "
                             "(e.g. 10.1.2.3 or 10.1.2.0/24)")
    return str(networks[0]) if networks else ""


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
