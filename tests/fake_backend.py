"""A deterministic Backend for console tests: fixed data, the real setting rules.

It stands in for the engine only where the console's own behaviour is under test (keys,
screens, snapshots); the console is also tested against a real engine and service.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from dataclasses import replace
from datetime import datetime, timedelta

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.dicom.aetitle import ae_title_problem, generate_ae_title
from dicomtui.models import (ANONYMIZE_CHOICES, MASK, AllowedCaller, AnonExport,
                             AnonSubject, AssociationInfo, CleanupCandidate, CleanupPlan,
                             Counters, Destination, Event, EventBatch, Facility, Job,
                             Listener, PacsConfig, SeriesRow, SettingValue, StatusSnapshot,
                             StorageReport, StudyPage, StudyQuery, StudyRow,
                             TransactionFilter, UploadItem, UploadSummary, UsageRow)
from dicomtui.settings import SPEC_BY_NAME, SPECS, SettingError, parse_networks, parse_value
from dicomtui.wording import size

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


STUDY_ROOT = "1.2.826.0.1.3680043.8.498."
# (uid suffix, state, patient name, patient ID, study date, facility, last received,
#  series as (modality, description, instances, bytes), upload id)
STUDIES = (
    ("7734102", "receiving", "DOE^JOHN", "PID-0001", "20261123", "Main Hospital",
     "2026-11-23T08:14:58+00:00", (("CT", "Topogram 0.6 T20f", 2, 1_100_000),
                                   ("CT", "Thorax 1.0 B70f", 212, 111_700_000)), None),
    ("7734051", "queued", "MUSTERMANN^ERIKA", "STM-77031", "20261123", "St. Mary's Clinic",
     "2026-11-23T08:09:40+00:00", (("CT", "CT low dose AC", 120, 63_100_000),
                                   ("PT", "PET WB corrected", 220, 33_300_000)), 6),
    ("7733871", "uploading", "SMITH^ALEX", "PID-0107", "20261123", "Main Hospital",
     "2026-11-23T08:07:30+00:00", (("MR", "localizer", 3, 400_000),
                                   ("MR", "t1_mprage_sag 1mm", 176, 201_600_000),
                                   ("MR", "t2_flair_tra", 48, 210_000_000)), 4),
    ("7734077", "complete", "ROE^JANE", "PID-0002", "20261123", "St. Mary's Clinic",
     "2026-11-23T08:02:40+00:00", (("MR", "Knee PD FS cor", 30, 12_300_000),
                                   ("MR", "Knee T1 sag", 34, 14_000_000),
                                   ("MR", "Knee T2 tra", 36, 36_000_000)), None),
    ("7734063", "zipped", "NGUYEN^VAN AN", "WS-000417", "20261122", "Westside Imaging",
     "2026-11-23T07:55:10+00:00", (("US", "Abdomen", 48, 151_000_000),), None),
    ("7733502", "failed", "TANAKA^HIROSHI", "PID-0150", "20261122", "Main Hospital",
     "2026-11-23T07:35:00+00:00", (("CT", "Topogram", 2, 1_000_000),
                                   ("CT", "Abdomen 5mm", 180, 95_000_000),
                                   ("CT", "Abdomen 1mm", 2_200, 1_144_000_000)), 3),
    ("7731008", "uploaded", "GARCIA^LUCIA", "PID-0233", "20261121", "Main Hospital",
     "2026-11-23T05:58:00+00:00", (("MG", "R CC", 1, 58_400_000),
                                   ("MG", "L CC", 1, 58_400_000),
                                   ("MG", "R MLO", 1, 58_300_000),
                                   ("MG", "L MLO", 1, 58_400_000)), 1),
    ("7713350", "complete", "LEE^MIN", "WS-000102", "20261015", "Westside Imaging",
     "2026-10-15T11:20:00+00:00", (("US", "Thyroid", 36, 98_200_000),), None),
    ("7712690", "queued", "KOWALSKI^ANNA", "PID-0058", "20261011", "Main Hospital",
     "2026-10-11T09:45:00+00:00", (("MR", "Brain t2_tse_tra", 240, 102_800_000),
                                   ("MR", "Brain dwi", 240, 102_800_000)), None),
    ("7712877", "uploaded", "OKAFOR^CHIDI", "STM-70112", "20261009", "St. Mary's Clinic",
     "2026-10-09T16:02:00+00:00", (("CR", "Chest PA", 1, 15_700_000),
                                   ("CR", "Chest LAT", 1, 15_700_000)), None),
    ("7712203", "uploaded", "BROWN^OLIVER", "PID-0031", "20261002", "Main Hospital",
     "2026-10-02T14:20:00+00:00", (("CT", "Head 5mm", 32, 16_800_000),
                                   ("CT", "Head 0.75mm", 288, 151_200_000)), None),
)

DESCRIPTIONS = {"7734102": "CT Thorax", "7734051": "PET-CT whole body",
                "7733871": "MR Brain", "7734077": "MR Knee left", "7734063": "US Abdomen",
                "7733502": "CT Abdomen", "7731008": "Mammography screening",
                "7713350": "US Thyroid", "7712690": "MR Brain", "7712877": "Chest X-ray",
                "7712203": "CT Head"}


def sample_archive() -> tuple[list[StudyRow], dict[str, list[SeriesRow]]]:
    """Eleven indexed studies, one in each state, newest received first (the last four
    from October: cleanup removes three and keeps the one waiting for upload), and the
    series of each."""
    studies, series = [], {}
    for tail, state, name, pid, day, site, received, parts, upload in STUDIES:
        uid = STUDY_ROOT + tail
        rows = [SeriesRow(f"{uid}.{n}", n, *part) for n, part in enumerate(parts, 1)]
        series[uid] = rows
        modalities = list(dict.fromkeys(r.modality for r in rows))
        studies.append(StudyRow(
            uid, pid, name, study_date=day, study_time="0742", accession=f"A{tail}",
            description=DESCRIPTIONS[tail], modalities=modalities,
            facility=site, instances=sum(r.instances for r in rows), series=len(rows),
            bytes=sum(r.bytes for r in rows), first_received=received,
            last_received=received, state=state, upload_id=upload))
    return studies, series


def sample_destinations() -> list[Destination]:
    return [Destination("PACS_MAIN", "10.1.2.50", 104, "Main Hospital PACS",
                        "2026-11-01T09:00:00+00:00"),
            Destination("RESEARCH", "research-pacs.example.org", 11112,
                        "research archive (anonymized)", "2026-11-10T09:00:00+00:00")]


KEPT_BECAUSE = {"receiving": "still being received", "queued": "waiting for upload",
                "uploading": "being uploaded"}
JOB_STEPS = 3  # a fake job moves a third of the way with each job() call, then ends
QUOTA = 4_000_000_000  # max_storage_gb = 4: the sample archive fills 70% of it


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
        self.rate_seconds: list[list[int]] = []  # the service's [second, images], for Status
        self.queries: list[TransactionFilter] = []
        self.fail_start = ""
        self.closed = threading.Event()
        self.gate: threading.Event | None = None  # when set, status() waits on it
        self.held = 0  # status() calls that have waited on the gate
        self.sites = {f.name: f for f in sample_facilities()}
        self.allowed = {c.ae_title: c for c in sample_callers()}
        self.subjects = sample_subjects()
        self.reveals: list[str] = []  # the search of each anon_subjects(reveal=True)
        self.exports: list[str] = []
        self.reveal_gate: threading.Event | None = None  # when set, reveals wait on it
        self.queue = sample_uploads()
        self.upload_calls: list[str] = []  # "upload PATH", "retry 3", "cancel 4"
        self.archive, self.series_of = sample_archive()
        self.dests = {d.ae_title: d for d in sample_destinations()}
        self.quota_bytes = QUOTA
        self.study_queries: list[StudyQuery] = []
        self.archive_calls: list[str] = []  # "send UID AE", "plan 30", "cleanup 30", ...
        self.job_list: dict[int, Job] = {}
        self._finishers: dict[int, object] = {}
        self.job_hold = False  # when True, jobs stay where they are
        self.job_failure = ""  # when set, jobs end "failed" with this message
        self.polls = 0  # the console's polls begun: only its poll reads events()

    def status(self) -> StatusSnapshot:
        if self.gate is not None:
            self.held += 1
            self.gate.wait(10)
        return replace(self.snap, uploads=upload_summary(self.queue),
                       received_by_second=self.rate_seconds)

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
        self.polls += 1
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

    def anon_originals(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        known = {s.code for s in self.subjects}
        return [{"originals": {"00080020": {"vr": "DA", "Value": ["20240101"]}}}
                if code in known else {"error": f"subject code {code!r} is not in this map"}
                for code, _study, _sop in keys]

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

    # -- the archive: index, destinations, storage, background jobs ---------------------
    def studies(self, query: StudyQuery) -> StudyPage:
        self.study_queries.append(query)
        found = sorted((replace(s, modalities=list(s.modalities)) for s in self.archive
                        if _study_matches(s, query)),
                       key=lambda s: s.last_received, reverse=True)
        return StudyPage(found[:query.limit], len(found))

    def series(self, study_uid: str) -> list[SeriesRow]:
        self._study(study_uid)
        return [replace(r) for r in self.series_of.get(study_uid, [])]

    def destinations(self) -> list[Destination]:
        return sorted((replace(d) for d in self.dests.values()), key=lambda d: d.ae_title)

    def add_destination(self, ae_title: str, host: str, port: int,
                        description: str = "") -> Destination:
        problem = ae_title_problem(ae_title)
        if problem:
            raise InvalidRequest(f"AE title {ae_title!r} {problem}")
        if not host.strip():
            raise InvalidRequest("host must not be empty")
        if not 1 <= int(port) <= 65535:
            raise InvalidRequest(f"port {port} is out of range (1-65535)")
        found = Destination(ae_title.strip(), host.strip(), int(port), description, NOW)
        self.dests[found.ae_title] = found
        return replace(found)

    def remove_destination(self, ae_title: str) -> Destination:
        if ae_title.strip() not in self.dests:
            raise NotFound(f"no destination {ae_title.strip()!r} (see `dicomtui dest list`)")
        return self.dests.pop(ae_title.strip())

    def record_send(self, report) -> None:
        self.archive_calls.append(f"record send to {report.called_ae}")

    def send_study(self, study_uid: str, ae_title: str) -> Job:
        self.archive_calls.append(f"send {study_uid} {ae_title}")
        study = self._study(study_uid)
        if ae_title not in self.dests:
            raise NotFound(f"no destination {ae_title!r} (see `dicomtui dest list`)")
        count = study.instances

        def finish():
            return (f"sent {count:,} instances to {ae_title}",
                    {"completed": count, "failed": 0, "warning": 0})

        return self._start_job("send", f"send {study.patient_name} to {ae_title}", count,
                               "sent {done:,} of {total:,} instances", finish)

    def storage_report(self) -> StorageReport:
        used = sum(s.bytes for s in self.archive)
        return StorageReport(
            "/var/lib/dicomtui/storage", used, self.quota_bytes, 2_000_000_000_000,
            1_310_000_000_000, len(self.archive), sum(s.instances for s in self.archive),
            used, _usage(self.archive, lambda s: [s.facility]),
            self._modality_usage(), _usage(self.archive, lambda s: [s.last_received[:10]],
                                           by_key=True),
            bool(self._setting("auto_cleanup")), int(self._setting("retention_days")))

    def cleanup_plan(self, older_than_days: float | None = None) -> CleanupPlan:
        days = self._days(older_than_days)
        self.archive_calls.append(f"plan {days:g}")
        cutoff = datetime.fromisoformat(NOW) - timedelta(days=days)
        old = sorted((s for s in self.archive
                      if datetime.fromisoformat(s.last_received) < cutoff),
                     key=lambda s: s.last_received)
        found = [CleanupCandidate(s.uid, s.patient_id, s.study_date, s.facility,
                                  s.last_received, s.instances, s.bytes,
                                  KEPT_BECAUSE.get(s.state, "")) for s in old]
        remove = [c for c in found if not c.kept_because]
        return CleanupPlan(days, remove, [c for c in found if c.kept_because],
                           sum(c.bytes for c in remove))

    def start_cleanup(self, older_than_days: float | None = None) -> Job:
        plan = self.cleanup_plan(older_than_days)
        self.archive_calls[-1] = f"cleanup {plan.older_than_days:g}"
        self._exclusive()
        gone = {c.uid for c in plan.remove}

        def finish():
            self.archive = [s for s in self.archive if s.uid not in gone]
            return (f"removed {len(gone)} studies ({size(plan.bytes)})",
                    {"studies": len(gone), "bytes": plan.bytes})

        return self._start_job("cleanup", f"cleanup older than {plan.older_than_days:g} "
                               "days", len(gone), "removed {done} of {total} studies",
                               finish)

    def start_reindex(self) -> Job:
        self.archive_calls.append("reindex")
        self._exclusive()
        files = sum(s.instances for s in self.archive) + 1

        def finish():
            return (f"indexed {len(self.archive)} studies, {files - 1:,} instances; 1 "
                    "unreadable file (see the log)",
                    {"studies": len(self.archive), "instances": files - 1,
                     "unreadable": 1})

        return self._start_job("reindex", "reindex", files,
                               "read {done:,} of {total:,} files", finish)

    def jobs(self) -> list[Job]:
        return [replace(j) for j in sorted(self.job_list.values(), key=lambda j: -j.id)]

    def job(self, job_id: int) -> Job:
        job = self.job_list.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.state == "running" and not self.job_hold:
            self._advance(job)
        return replace(job, result=dict(job.result))

    def _start_job(self, kind: str, title: str, total: int, words: str, finish) -> Job:
        job = Job(len(self.job_list) + 1, kind, title, total=total, started=NOW,
                  message="starting")
        self.job_list[job.id] = job
        self._finishers[job.id] = (words, finish)
        return replace(job)

    def _advance(self, job: Job) -> None:
        words, finish = self._finishers[job.id]
        if job.done < job.total:
            job.done = min(job.total, job.done + max(1, -(-job.total // JOB_STEPS)))
            job.message = words.format(done=job.done, total=job.total)
            return
        if self.job_failure:
            job.state, job.message = "failed", self.job_failure
        else:
            job.message, job.result = finish()
            job.state = "done"
        job.finished = NOW

    def _exclusive(self) -> None:
        busy = [j for j in self.job_list.values()
                if j.state == "running" and j.kind in ("cleanup", "reindex")]
        if busy:
            raise InvalidRequest(f"a {busy[0].kind} is already running (job {busy[0].id}: "
                                 f"{busy[0].title}); wait for it to finish")

    def _days(self, older_than_days: float | None) -> float:
        days = older_than_days
        if days is None:
            days = self._setting("retention_days")
        if days <= 0:
            raise InvalidRequest(f"older than must be more than 0 days (got {days:g})")
        return float(days)

    def _setting(self, name: str):
        return self.stored.get(name, SPEC_BY_NAME[name].default)

    def _study(self, study_uid: str) -> StudyRow:
        found = [s for s in self.archive if s.uid == study_uid]
        if not found:
            raise NotFound(f"study {study_uid} is not indexed")
        return found[0]

    def _modality_usage(self) -> list[UsageRow]:
        rows: dict[str, UsageRow] = {}
        for study in self.archive:
            for part in self.series_of.get(study.uid, []):
                row = rows.setdefault(part.modality, UsageRow(part.modality))
                row.instances += part.instances
                row.bytes += part.bytes
            for modality in study.modalities:
                rows[modality].studies += 1
        return sorted(rows.values(), key=lambda r: -r.bytes)

    def close(self) -> None:
        self.calls.append("close")
        self.closed.set()

    def shutdown(self, timeout: float = 120.0) -> None:
        """What RemoteBackend does to a service a console started: stop the process."""
        self.calls.append("shutdown")


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


def _like(value: str, text: str) -> bool:
    """Any part, any case, * and ? as wildcards: StudyQuery's matching."""
    return not text or fnmatch.fnmatchcase(value.casefold(), f"*{text.casefold()}*")


def _study_matches(s: StudyRow, q: StudyQuery) -> bool:
    if q.patient and not any(_like(v, q.patient) for v in (s.patient_name, s.patient_id)):
        return False
    if q.date_from and s.study_date < q.date_from or q.date_to and s.study_date > q.date_to:
        return False
    if q.modality and not any(_like(m, q.modality) for m in s.modalities):
        return False
    return _like(s.accession, q.accession) and _like(s.facility, q.facility)


def _usage(studies: list[StudyRow], keys, by_key: bool = False) -> list[UsageRow]:
    """Studies, instances and bytes per key; largest first, or newest key first."""
    rows: dict[str, UsageRow] = {}
    for study in studies:
        for key in keys(study):
            row = rows.setdefault(key, UsageRow(key))
            row.studies += 1
            row.instances += study.instances
            row.bytes += study.bytes
    if by_key:
        return sorted(rows.values(), key=lambda r: r.key, reverse=True)
    return sorted(rows.values(), key=lambda r: -r.bytes)
