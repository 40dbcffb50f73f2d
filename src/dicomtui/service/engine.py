"""The engine: owns a data dir, runs the SCP, keeps counters, events and the log.

Handlers run on pynetdicom's association threads and only touch memory here (counters,
the event ring, a queue for the DB writer); every file write of bookkeeping happens on
the one DB writer thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Mapping

from dicomtui import __version__
from dicomtui.models import AssociationInfo, Counters, Listener, StatusSnapshot
from dicomtui.db.storage import flush_database, open_database
from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter
from dicomtui.service import handlers, qr_handlers
from dicomtui.service.events import EventRing, RingLogHandler, now_iso
from dicomtui.service.lock import DataDirLock, DataDirLocked
from dicomtui.service.access import AccessPolicy, CallerList
from dicomtui.service.archive import Archive
from dicomtui.service.facilities import FacilityRegistry
from dicomtui.service.facility_stats import FacilityStats
from dicomtui.service.listeners import ListenerSet
from dicomtui.service.records import (base_record, called_ae_of, outcome_of, peer_of,
                                      store_record)
from dicomtui.service.scp import Listener as ScpListener
from dicomtui.service.scp import ListenerError, make_ae
from dicomtui.service.settings_store import SettingsStore
from dicomtui.service.phi import PHI_FILTER
from dicomtui.service.privacy import Privacy
from dicomtui.service.shipping import Shipping
from dicomtui.service.sites import Sites
from dicomtui.service.store import StorageWriter, StorePolicy, scan_usage

LOG = logging.getLogger("dicomtui.service")
REJECT_REASONS = {
    (1, 3): "calling AE title not recognised", (1, 7): "called AE title not recognised",
    (3, 1): "temporary congestion", (3, 2): "too many associations (max_associations)",
}


class EngineError(RuntimeError):
    """The engine cannot do what was asked; the message says what to do."""


class Engine(Sites, Privacy, Shipping, Archive):
    """One receiver over one data dir: lock, settings, DB, storage and the listeners."""

    def __init__(self, data_dir: Path, cli_settings: Mapping | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.ring = EventRing()
        self.state, self.error, self.warnings = "stopped", "", []
        self.stopping = False
        self.started_at: float | None = None
        self._lock = DataDirLock(self.data_dir)
        self._settings_store = SettingsStore(cli_settings or {}, environ)
        self._stats_lock = threading.Lock()
        self._assocs: dict[int, AssociationInfo] = {}
        self._assoc_ids = itertools.count(1)
        self._in_flight = 0
        self._idle = threading.Condition(self._stats_lock)
        self.counters, self.today, self._today_date = Counters(), Counters(), date.today()
        self._listener: ScpListener | None = None  # the main one
        self.facilities, self.callers = FacilityRegistry(), CallerList()
        self.listener_set = ListenerSet(self._make_listener)
        self.facility_stats = FacilityStats()
        self.access_policy = AccessPolicy()
        self._recognised: dict[int, str] = {}  # id(assoc) -> facility, until it ends
        self._sites_lock = threading.RLock()
        self._log_handler = RingLogHandler(self.ring)
        self._log_handler.addFilter(PHI_FILTER)
        self._init_privacy()
        self._close_lock = threading.Lock()
        self.is_open = False

    # -- opening and closing the data dir ------------------------------------------
    def open(self) -> None:
        """Take the data dir: lock, settings, DB files, storage. Raises EngineError."""
        try:
            self._lock.acquire()
        except DataDirLocked as exc:
            raise EngineError(str(exc)) from None
        try:
            self._open_files()
        except OSError as exc:  # e.g. a DB file root owns: say which, never a traceback
            self._lock.release()
            raise EngineError(f"cannot open {exc.filename or self.data_dir}: "
                              f"{exc.strerror or exc}; check its owner and "
                              "permissions") from None
        except BaseException:
            self._lock.release()
            raise
        self._attach_logging()
        self.is_open = True

    def _open_files(self) -> None:
        # 0600: stored settings may hold api_password / api_token
        self.db, warning = open_database(self.data_dir / "dicomtui.json", mode=0o600)
        self._warn(warning)
        for problem in self._settings_store.load(self.db):
            self._warn(problem)
        self.storage = StorageWriter(self._storage_root())
        self._usage_scanned = False
        self.txlog = TransactionLog(self.data_dir / "log")
        self.writer = DBWriter()
        self.writer.register("tx", self.txlog.append_many, self.txlog.flush)
        self.writer.register("settings", self._settings_store.write_batch,
                             lambda: flush_database(self.db))
        for kind, table in (("facilities", self.facilities), ("callers", self.callers)):
            for problem in table.load(self.db):
                self._warn(problem)
            self.writer.register(kind, table.write_batch, lambda: flush_database(self.db))
        self.writer.register("anon", self._anon_write, self._anon_flush)
        self._open_archive()
        self.writer.start()
        self._open_shipping()
        self._apply_privacy_settings()
        self.store_policy = self._policy()
        self._refresh_access()

    def _storage_root(self) -> Path:
        configured = self.settings.storage_dir
        root = Path(configured).expanduser() if configured else self.data_dir / "storage"
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".dicomtui-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise EngineError(f"storage directory {root} is not writable "
                              f"({exc.strerror or exc}); fix its permissions or set "
                              "--storage-dir") from None
        return root

    def close(self) -> None:
        """Stop the SCP, flush everything to disk and release the data dir.

        Safe to call twice, even from two threads (a console quitting while its app
        unmounts): the second caller waits for the first to finish.
        """
        with self._close_lock:
            if not self.is_open:
                return
            self.stop()
            self._finish_jobs()
            self.writer.stop()
            self._close_anon_map()
            self._close_shipping()
            flush_database(self.db)
            self._detach_logging()
            self._lock.release()
            self.is_open = False

    def _warn(self, message: str | None) -> None:
        if message:
            self.warnings.append(message)
            LOG.error(message)

    def _attach_logging(self) -> None:
        for name in ("dicomtui", "pynetdicom"):
            logging.getLogger(name).addHandler(self._log_handler)
        # pynetdicom formats every Q/R identifier for its log even when nothing logs it
        # (~0.5 ms per C-FIND answer): only when its DEBUG detail is asked for
        from pynetdicom import _config
        detail = logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG)
        _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = detail
        if logging.getLogger("dicomtui").getEffectiveLevel() > logging.INFO:
            logging.getLogger("dicomtui").setLevel(logging.INFO)

    def _detach_logging(self) -> None:
        for name in ("dicomtui", "pynetdicom"):
            logging.getLogger(name).removeHandler(self._log_handler)

    # -- settings ---------------------------------------------------------------------
    @property
    def settings(self):
        return self._settings_store.current

    def _policy(self) -> StorePolicy:
        s = self.settings
        by_facility, layout = s.layout.startswith("facility/"), s.layout.removeprefix("facility/")
        return StorePolicy(layout=layout, naming=s.naming, fsync=s.fsync,
                           duplicate_policy=s.duplicate_policy,
                           quota_bytes=int(s.max_storage_gb * 1_000_000_000),
                           by_facility=by_facility)

    def setting_values(self):
        return self._settings_store.values(self._running_settings())

    def set_setting(self, name: str, raw) -> None:
        """Validate and persist a stored setting (raises SettingError / KeyError)."""
        self._settings_store.set(name, raw, self.writer)
        self._after_settings_change()

    def unset_setting(self, name: str) -> None:
        self._settings_store.unset(name, self.writer)
        self._after_settings_change()

    def _after_settings_change(self) -> None:
        if not self.writer.flush():
            raise EngineError("could not save settings: the DB writer is stuck "
                              f"({self.writer.stats().get('last_error')})")
        self.store_policy = self._policy()
        self._refresh_access()
        self._apply_privacy_settings()

    def _running_settings(self):
        return self._running if self._listener is not None else None

    def _running_or_current(self):
        return self._running if self._listener is not None else self.settings

    def _is_running(self) -> bool:
        return self._listener is not None

    # -- the listener -----------------------------------------------------------------
    def start(self) -> None:
        """Start listening. Raises EngineError (port busy, ...) and stays stopped."""
        if self._listener is not None:
            return
        self._set_state("starting")
        if not self._usage_scanned:  # only a receiver needs it; config/log stay fast
            self.storage.set_used(scan_usage(self.storage.root))
            self._seed_facility_stats()
            self._usage_scanned = True
        self._running = self.settings
        s = self._running
        listener = ScpListener(make_ae(s), s.host, s.port, self._handlers(None))
        try:
            listener.start()
        except ListenerError as exc:
            self.error = str(exc)
            self._set_state("error", str(exc), "ERROR")
            raise EngineError(str(exc)) from None
        self._listener, self.error, self.stopping = listener, "", False
        self.started_at = time.time()
        self._refresh_access()
        self._set_state("running", f"listening on {s.host}:{listener.port} as {s.ae_title}")
        with self._sites_lock:
            self._start_facilities()
        self._start_shipping()
        if self._index_empty_but_files():
            LOG.warning("the archive index is empty but storage holds DICOM files: "
                        "rebuilding it (reindex) in the background")
            self.start_reindex()

    def _make_listener(self, facility: str | None, ae_title: str, port: int) -> ScpListener:
        s = self._running_or_current()
        return ScpListener(make_ae(s, ae_title), s.host, port, self._handlers(facility))

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight stores finish, then end the associations."""
        listener = self._listener
        if listener is None:
            return
        self._set_state("stopping")
        self.stopping = True
        listener.stop_accepting()
        with self._sites_lock:
            listeners = [listener] + self.listener_set.stop_accepting_all()
        self._wait_idle(grace)
        assocs = [a for each in listeners for a in each.associations()]
        for assoc in assocs:
            assoc.abort()
        for assoc in assocs:
            assoc.join(timeout=5)
        self._listener, self.started_at = None, None
        self._stop_shipping()
        self.writer.flush()
        self._set_state("stopped", "receiver stopped")

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_idle(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(timeout=0.1)

    def _handlers(self, facility: str | None) -> list:
        """The handlers of one listener; a facility's listener tells requests its name."""
        from pynetdicom import evt
        bind = [(evt.EVT_C_ECHO, handlers.handle_echo), (evt.EVT_C_STORE, self._store),
                (evt.EVT_C_FIND, qr_handlers.handle_find),
                (evt.EVT_C_MOVE, qr_handlers.handle_move),
                (evt.EVT_C_GET, qr_handlers.handle_get),
                (evt.EVT_ACCEPTED, handlers.handle_accepted),
                (evt.EVT_REJECTED, handlers.handle_rejected),
                (evt.EVT_RELEASED, handlers.handle_released),
                (evt.EVT_ABORTED, handlers.handle_aborted),
                (evt.EVT_CONN_CLOSE, handlers.handle_conn_close)]
        return ([(evt.EVT_REQUESTED, handlers.handle_requested, [self, facility])]
                + [(event, fn, [self]) for event, fn in bind])

    def _store(self, event, engine):
        """Counts the store as in flight so stop() can wait for it to finish."""
        with self._stats_lock:
            self._in_flight += 1
        try:
            return handlers.handle_store(event, engine)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    @property
    def port(self) -> int | None:
        return self._listener.port if self._listener else None

    def _set_state(self, state: str, message: str = "", level: str = "INFO") -> None:
        self.state = state
        self.ring.emit("state", level, message or state, {"state": state})
        if message:
            LOG.log(logging.getLevelName(level), message)

    # -- bookkeeping called from handlers --------------------------------------------
    def association_opened(self, assoc) -> None:
        info = AssociationInfo(next(self._assoc_ids), (assoc.requestor.ae_title or "").strip(),
                               called_ae_of(assoc), peer_of(assoc), now_iso(),
                               facility=self.facility_of(assoc))
        with self._stats_lock:
            self._assocs[id(assoc)] = info
            self._count("associations", 1)
            self.facility_stats.seen(info.facility, info.started)
        LOG.info("association %d from %s (%s) to %s accepted (facility %s)", info.id,
                 info.calling_ae, info.peer, info.called_ae, info.facility)

    def association_refused(self, assoc) -> None:
        reason = _reject_reason(assoc)
        with self._stats_lock:
            self._count("refused", 1)
            facility = self._recognised.pop(id(assoc), "unknown")
        record = base_record("association", assoc, "refused", None, reason)
        record.update({"rule": _reject_rule(assoc), "facility": facility})
        self._record(record)
        LOG.warning("association from %s (%s) refused: %s",
                    (assoc.requestor.ae_title or "").strip(), peer_of(assoc), reason)

    def association_closed(self, assoc, outcome: str, how: str) -> None:
        with self._stats_lock:
            info = self._assocs.pop(id(assoc), None)
            self._recognised.pop(id(assoc), None)
        if info is None:
            return
        if self.stopping and how == "aborted":
            how = "aborted: the service is stopping"
        record = base_record("association", assoc, outcome, None, how)
        record.update({"association": info.id, "instances": info.instances,
                       "bytes": info.bytes, "started": info.started,
                       "facility": info.facility})
        self._record(record)
        LOG.info("association %d from %s %s: %d instances, %d bytes", info.id,
                 info.calling_ae, how, info.instances, info.bytes)

    def record_echo(self, assoc) -> None:
        with self._stats_lock:
            self._count("echoes", 1)
        record = base_record("echo", assoc, "ok", 0x0000)
        record["facility"] = self.facility_of(assoc)
        self._record(record)

    def record_store(self, assoc, ident, result, seconds: float, syntax) -> None:
        ok = outcome_of(result.status) != "failed"
        record = store_record(assoc, ident, result, seconds, syntax)
        facility = record["facility"] = self.facility_of(assoc)
        with self._stats_lock:
            self._count("received" if ok else "failed", 1)
            if ok:
                self._count("bytes", result.size)
                self.facility_stats.stored(facility, ident.study_uid, record["time"])
            info = self._assocs.get(id(assoc))
            if info is not None and ok:
                info.instances += 1
                info.bytes += result.size
        if ok:
            self.index_stored(ident, result, facility, syntax, record["time"])
            self.study_stored(ident.study_uid, result.path, result.size, facility)
        if info is not None:
            record["association"] = info.id
        self._record(record, persist=self.settings.log_instances or not ok)
        if not ok:
            LOG.warning("store from %s refused (0x%04X): %s", record["calling_ae"],
                        result.status, result.reason)

    def record_query(self, kind: str, assoc, status: int, reason: str, extra: dict) -> None:
        """One C-FIND, C-MOVE or C-GET, with its counts."""
        record = qr_handlers.record_fields(kind, assoc, status, reason, extra)
        record["facility"] = self.facility_of(assoc)
        info = self._assocs.get(id(assoc))
        if info is not None:
            record["association"] = info.id
        self._record(record)
        if record["outcome"] not in ("ok", "warning"):
            LOG.warning("%s from %s refused (0x%04X): %s", kind.upper(),
                        record["calling_ae"], status, reason)

    def _finish_jobs(self, timeout: float = 30.0) -> None:
        """Closing: ask running jobs to stop and give them a moment to."""
        self.jobs.cancel_all()
        deadline = time.monotonic() + timeout
        for job in self.jobs.running():
            self.jobs.wait(job.id, max(0.1, deadline - time.monotonic()))

    def _record(self, record: dict, persist: bool = True) -> None:
        if persist:
            self.writer.put("tx", record)
        level = "INFO" if record["outcome"] in ("ok", "warning") else "WARNING"
        self.ring.emit("transaction", level, _summary(record), record)

    def _count(self, field: str, n: int) -> None:
        """Caller holds the stats lock."""
        if date.today() != self._today_date:
            self.today, self._today_date = Counters(), date.today()
        setattr(self.counters, field, getattr(self.counters, field) + n)
        setattr(self.today, field, getattr(self.today, field) + n)

    # -- snapshots ----------------------------------------------------------------
    def snapshot(self, mode: str) -> StatusSnapshot:
        s = self._running if self._listener is not None else self.settings
        with self._stats_lock:
            assocs = [AssociationInfo(**vars(a)) for a in self._assocs.values()]
            counters, today = Counters(**vars(self.counters)), Counters(**vars(self.today))
        return StatusSnapshot(
            state=self.state, mode=mode, pid=os.getpid(), version=__version__,
            data_dir=str(self.data_dir), storage_dir=str(self.storage.root),
            started_at=_iso(self.started_at),
            uptime_s=time.time() - self.started_at if self.started_at else 0.0,
            listeners=[Listener(s.ae_title, s.host, self.port or s.port,
                                "listening" if self._listener else self.state_word())]
            + [Listener(f.ae_title, s.host, f.port, f.listener, f.name, f.error)
               for f in self.facility_list()],
            associations=assocs, counters=counters, today=today,
            storage_used_bytes=self.storage.used_bytes,
            quota_bytes=self.store_policy.quota_bytes,
            last_errors=self.ring.problems(10),
            error=self.error, warnings=list(self.warnings),
            uploads=self.uploads.summary())

    def state_word(self) -> str:
        return "error" if self.state == "error" else "stopped"


def _reject_reason(assoc) -> str:
    primitive = assoc.acceptor.primitive
    if primitive is None or primitive.result_source is None:
        return "association rejected"
    key = (primitive.result_source, primitive.diagnostic)
    text = REJECT_REASONS.get(key) or REJECT_REASONS.get((3, primitive.diagnostic), "")
    return (f"rejected: {text or 'reason'} (result {primitive.result}, source "
            f"{primitive.result_source}, diagnostic {primitive.diagnostic})")


def _reject_rule(assoc) -> str:
    """Which limit made pynetdicom itself reject (ours are refused before it looks)."""
    primitive = assoc.acceptor.primitive
    if primitive is not None and (primitive.result_source, primitive.diagnostic) == (3, 2):
        return "max_associations"
    return "negotiation"


def _summary(record: dict) -> str:
    who = f"{record['calling_ae']} ({record['peer']})"
    if record["type"] == "store":
        what = f"store {record.get('modality') or ''} {record.get('sop_uid') or '?'}"
        return f"{what.strip()} from {who}: {record['outcome']} {record['reason']}".strip()
    return f"{record['type']} from {who}: {record['outcome']} {record['reason']}".strip()


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).astimezone().isoformat() if ts else None
