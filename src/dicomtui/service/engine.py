"""The engine: takes a data dir, builds the components, wires them, starts and stops them.

Each capability is a component that owns its state, its lock and its threads (see
ARCHITECTURE.md); the engine holds the data dir's lock, the settings, the DB writer and
the event stream they share, and composes the status snapshot. Front ends reach the
components through the Backend (backend/local.py), never their insides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from tinydb import TinyDB

from dicomtui import __version__
from dicomtui.db.state import Condition, Manifest, load, open_tinydb
from dicomtui.db.storage import atomic_write, flush_database
from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter
from dicomtui.models import Listener, SettingValue, StatusSnapshot
from dicomtui.service.archive import qr_handlers
from dicomtui.service.archive.archive import Archive
from dicomtui.service.core.damage import SetAside
from dicomtui.service.core.events import EventRing, RingLogHandler
from dicomtui.service.core.housekeeping import Housekeeper
from dicomtui.service.core.journal import Journal
from dicomtui.service.core.lock import DataDirLock, DataDirLocked
from dicomtui.service.core.modes import make_private, narrow_data_dir
from dicomtui.service.core.recorder import Recorder
from dicomtui.service.core.records import StoredInstance
from dicomtui.service.core.settings_store import SettingsStore
from dicomtui.service.metrics import Metrics, MetricsEndpoint
from dicomtui.service.privacy.phi import PHI_FILTER
from dicomtui.service.privacy.privacy import MAP_FILE, AnonymizationUnavailable, Privacy
from dicomtui.service.receiving import handlers
from dicomtui.service.receiving.gate import ConnectionRefusal, Gate, GateRules
from dicomtui.service.receiving.listeners import Listeners
from dicomtui.service.receiving.receiver import Receiver, ReceiverError
from dicomtui.service.receiving.store import StorageWriter
from dicomtui.service.receiving.traffic import Traffic
from dicomtui.service.shipping.shipping import Shipping
from dicomtui.service.sites.sites import Sites
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.service")
SEED_LIMIT = 500_000  # today's store records read back at start, at most
SETTINGS_FILE = "dicomtui.json"


class EngineError(RuntimeError):
    """The engine cannot do what was asked; the message says what to do."""


class Engine:
    """One receiver over one data dir, open from construction until close()."""

    def __init__(
        self,
        data_dir: Path,
        cli_settings: Mapping | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Take the data dir (its lock), load its state and wire the components.

        Raises EngineError (another engine owns the data dir, a file cannot be opened).
        """
        make_private()  # files 0600, folders 0700 (ARCHITECTURE.md, "Data")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._lock = _locked(self.data_dir)
        self._close_lock = threading.Lock()
        self.ring = EventRing()
        self.warnings: list[str] = []
        self._log_handler = RingLogHandler(self.ring)
        self._log_handler.addFilter(PHI_FILTER)
        self._seeded = False
        self._seed_lock = threading.Lock()
        with _released_on_failure(self._lock, self.data_dir):
            self.manifest = Manifest(self.data_dir)
            self.manifest.adopt_existing(SETTINGS_FILE, MAP_FILE)
            self.db = _settings_db(self.data_dir, self.manifest)
            self.writer = DBWriter()
            self._settings = SettingsStore(
                self.db, self.writer, cli_settings or {}, environ
            )
            settings = self._settings.get
            self.recorder = Recorder(self.data_dir / "log", self.writer, self.ring)
            self.metrics = Metrics(lambda: self.snapshot("service"))
            self.recorder.observe(self.metrics.observe)
            self.metrics_endpoint = MetricsEndpoint(self.metrics.registry)
            self.metrics_problem: str | None = None
            self.journal = Journal(self.data_dir / "journal", self.writer.flush)
            self.storage = StorageWriter(_storage_root(self.data_dir, self.settings))
            self.traffic = Traffic()
            self.gate = Gate(
                self._gate_rules, self._address_refusal, self._connection_refused
            )
            self.listeners = Listeners(self._bindings, settings, self.gate)
            self.sites = Sites(
                self.db,
                self.writer,
                settings,
                self.listeners,
                self.traffic.facility_today,
                self.traffic.forget_facility,
            )
            self.privacy = Privacy(
                self.data_dir,
                self.writer,
                settings,
                self.sites.anonymize_choice,
                self.sites.anonymize_choices,
                self.manifest,
            )
            self.shipping = Shipping(
                self.data_dir,
                self.writer,
                settings,
                self.storage,
                self._study_files_removed,
                self.journal.checkpoint,
            )
            self.archive = Archive(
                self.data_dir,
                self.db,
                self.writer,
                settings,
                self.storage,
                self.recorder,
                self.shipping,
                self.traffic,
            )
            self.receiver = Receiver(
                settings,
                self.listeners,
                self.traffic,
                self.recorder,
                self.journal,
                self.ring,
                self.storage,
                self.sites,
                self.privacy,
                [self.archive.instance_stored, self.shipping.instance_stored],
                self.archive.retention.make_room,
            )
            self.housekeeper = Housekeeper(
                [
                    lambda: self.recorder.expire(self.settings.log_retention_days),
                    self.shipping.housekeep,
                ]
            )
            narrow_data_dir(
                self.data_dir,
                [self.storage.root],
                [self.shipping.zip_dir()],
                self.settings.group_read,
            )
            self._replay()
            self.writer.start()
            self.journal.start()
        self._warn(self.manifest.problem, *self.archive.warnings)
        for lock in self.locks():  # shown by status while they last, not kept here
            LOG.error(lock)
        self.set_aside = SetAside(self.data_dir)
        self._attach_logging()
        self.is_open = True

    def _replay(self) -> None:
        """Give back to the components what an unclean stop kept from their saved
        state: the journal's lines since the last checkpoint, each applied once."""
        every = list(self.journal.replay())
        if not every:
            self.journal.replayed()
            return
        entries = [e for e in every if self._file_kept(e)]
        stored = [StoredInstance.from_json(e["stored"]) for e in entries]
        added = self.archive.recover(stored)
        for one in stored:
            self.shipping.instance_stored(one)
        logged = self.recorder.recover(
            [{**e["tx"], "jid": e["jid"]} for e in entries if e.get("log", True)]
        )
        # every line's originals: harmless for a store never answered, and the only
        # way back to the patient for one answered and cleaned up since
        kept = self._recover_originals([e["anon"] for e in every if e.get("anon")])
        LOG.warning(
            "recovered after an unclean stop: %d acknowledged instance(s) from the "
            "journal (%d missing from the index, %d from the log)",
            len(entries),
            added,
            logged,
        )
        if kept and self.writer.flush():
            self.journal.replayed()

    def _file_kept(self, entry: dict) -> bool:
        """A line whose file is absent was never answered: the folder's fsync shares
        the line's group commit, and the kernel may write the line first (its store's
        sender got no status and sends again). A file cleaned up since is absent too;
        its study's cleanup record tells that story."""
        path = entry["stored"].get("path")
        if not path or (self.storage.root / path).exists():
            return True
        LOG.warning("journal line without its file (never acknowledged): skipped")
        return False

    def _recover_originals(self, sealed: list[dict]) -> bool:
        """The map's originals of replayed instances; False (the journal is kept) if
        the map cannot take them now."""
        try:
            for kept in sealed:
                self.privacy.recover(self.privacy.unseal(kept))
        except AnonymizationUnavailable as exc:
            self._warn(
                f"the journal keeps {len(sealed)} anonymized instance(s) whose "
                f"originals the map cannot take yet: {exc}"
            )
            return False
        return True

    def _bindings(self, facility: str | None) -> list:
        """The pynetdicom handlers of one listener (main: facility None)."""
        return handlers.bindings(self.receiver, facility) + qr_handlers.bindings(
            self.archive
        )

    def _gate_rules(self) -> GateRules:
        s = self.settings
        return GateRules(s.handshake_timeout, s.max_peer_connections)

    def _address_refusal(self, ip: str) -> str | None:
        return self.sites.address_refusal(ip)

    def _connection_refused(self, refusal: ConnectionRefusal) -> None:
        self.receiver.connection_refused(refusal)

    def _study_files_removed(self, study_uid: str) -> None:
        """Shipping removed an uploaded study's files (cleanup_after_upload)."""
        self.archive.study_files_removed(study_uid)

    def close(self) -> None:
        """Stop the SCP, flush everything to disk and release the data dir.

        Safe to call twice, even from two threads (a console quitting while its app
        unmounts): the second caller waits for the first to finish.
        """
        with self._close_lock:
            if not self.is_open:
                return
            self.stop()
            self.metrics_endpoint.close()
            self.archive.close()
            self.journal.close()
            self.writer.stop()
            self.privacy.close()
            self.shipping.close()
            flush_database(self.db)
            self._detach_logging()
            self._lock.release()
            self.is_open = False

    def _warn(self, *messages: str | None) -> None:
        for message in messages:
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
    def settings(self) -> Resolved:
        """The current settings (a start or a restart makes them the running ones)."""
        return self._settings.get()

    @property
    def txlog(self) -> TransactionLog:
        return self.recorder.log

    def setting_values(self) -> list[SettingValue]:
        return self._settings.values(self.listeners.running_settings())

    def set_setting(self, name: str, raw) -> None:
        """Validate and persist a stored setting (raises SettingError / KeyError)."""
        self._settings.set(name, raw)
        self._after_settings_change()

    def unset_setting(self, name: str) -> None:
        self._settings.unset(name)
        self._after_settings_change()

    def _after_settings_change(self) -> None:
        if not self.writer.flush():
            raise EngineError(
                "could not save settings: the DB writer is stuck "
                f"({self.writer.stats().get('last_error')})"
            )
        self.receiver.refresh_policy()
        self.sites.refresh_access()
        self.privacy.apply_settings()

    # -- the receiver -------------------------------------------------------------------
    def start(self) -> None:
        """Start listening. Raises EngineError (port busy, ...) and stays stopped."""
        if self.listeners.running:
            return
        self._check_locks()
        self._check_privacy()
        self.receiver.starting()
        # only a receiver needs the walk (config and log stay fast); it narrows too
        self.storage.count_usage(modes=self.receiver.policy.modes)
        self._seed_today()
        try:
            self.receiver.start()
        except ReceiverError as exc:
            raise EngineError(str(exc)) from None
        self.sites.refresh_access()
        self.sites.open_listeners()
        self.shipping.start()
        self.housekeeper.start()
        self.archive.started()
        s = self.settings
        self.metrics_problem = self.metrics_endpoint.ensure(s.metrics_host, s.metrics_port)
        if self.metrics_problem:
            LOG.error(self.metrics_problem)

    def locks(self) -> list[str]:
        """Why the receiver must not start now: state that protects access could not
        be read (it fails closed, ARCHITECTURE.md "Damaged state")."""
        return self._settings.problems + self.sites.problems

    def _check_locks(self) -> None:
        locks = self.locks()
        if locks:
            message = f"the receiver does not start: {locks[0]}"
            self.receiver.refuse_to_start(message)
            raise EngineError(message)

    def _check_privacy(self) -> None:
        """With anonymization in use, the map must open before any store is taken: a
        damaged map fails closed (EngineError says which file and what to do)."""
        if not self.privacy.in_use():
            return
        try:
            self.privacy.anonymizer()
        except AnonymizationUnavailable as exc:
            message = f"the receiver does not start: {exc}"
            self.receiver.refuse_to_start(message)
            raise EngineError(message) from None

    def _seed_today(self) -> None:
        """Count today's records already logged, so "today" is the log's (the same in
        every view, whatever restarted), from the first status or start on."""
        with self._seed_lock:
            if self._seeded:
                return
            midnight = (
                datetime.now()
                .astimezone()
                .replace(hour=0, minute=0, second=0, microsecond=0)
            )
            done = self.txlog.query(
                types=["store", "association", "echo"], since=midnight, limit=SEED_LIMIT
            )
            self.traffic.seed_today(list(reversed(done)))  # oldest first
            self._seeded = True

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight stores finish, then end the associations."""
        if not self.listeners.running:
            return
        self.receiver.stop(grace)
        self.shipping.stop()
        self.housekeeper.stop()
        self.writer.flush()
        self.receiver.stopped()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def port(self) -> int | None:
        return self.listeners.port

    def main_listeners(self) -> list[Listener]:
        """The main plain listener and the TLS one, those configured (at least one)."""
        s = self.listeners.effective()
        state = "listening" if self.listeners.running else self.receiver.state_word()
        found = []
        if s.port or not s.tls_port:
            found.append(Listener(s.ae_title, s.host, self.port or s.port, state))
        if s.tls_port:
            port = self.listeners.tls_port or s.tls_port
            found.append(Listener(s.ae_title, s.host, port, state, tls=True))
        return found

    # -- snapshots ----------------------------------------------------------------------
    def snapshot(self, mode: str) -> StatusSnapshot:
        self._seed_today()
        assocs, counters, today = self.traffic.snapshot()
        started = self.receiver.started_at
        return StatusSnapshot(
            state=self.receiver.state,
            mode=mode,
            pid=os.getpid(),
            version=__version__,
            data_dir=str(self.data_dir),
            storage_dir=str(self.storage.root),
            started_at=_iso(started),
            uptime_s=time.time() - started if started else 0.0,
            listeners=self.main_listeners() + self.sites.facility_listeners(),
            associations=assocs,
            counters=counters,
            today=today,
            storage_used_bytes=self.storage.used_bytes,
            quota_bytes=self.receiver.policy.quota_bytes,
            last_errors=self.ring.problems(10),
            error=self.receiver.error,
            warnings=self.locks()
            + self.warnings
            + self.set_aside.report()
            + self.listeners.warnings()
            + ([self.metrics_problem] if self.metrics_problem else []),
            uploads=self.shipping.summary(),
            received_by_second=self.traffic.received_by_second(),
        )


def _settings_db(data_dir: Path, manifest: Manifest) -> TinyDB:
    """dicomtui.json, which holds settings, facilities and allowed callers: damaged, the
    engine does not open (never defaults: they would let anyone in, unanonymized)."""
    loaded = load(data_dir / SETTINGS_FILE, used=manifest.used(SETTINGS_FILE))
    if loaded.damaged:
        raise EngineError(
            f"{loaded.describe()}. It holds the settings, facilities and allowed callers, "
            "so the receiver does not start on defaults: restore it from a backup (run "
            "`dicomtui doctor` for what else is wrong)"
        )
    if loaded.condition is Condition.NEW:  # on disk from now on, and expected there
        atomic_write(loaded.path, b"{}", 0o600)
    manifest.mark(SETTINGS_FILE)
    return open_tinydb(loaded, 0o600)  # 0600: it may hold api_password / api_token


def _locked(data_dir: Path) -> DataDirLock:
    """The data dir's lock, taken (EngineError names the engine that holds it)."""
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirLocked as exc:
        raise EngineError(str(exc)) from None
    return lock


@contextlib.contextmanager
def _released_on_failure(lock: DataDirLock, data_dir: Path) -> Iterator[None]:
    """Opening failed: let go of the data dir, and say which file in one line."""
    try:
        yield
    except OSError as exc:  # e.g. a DB file root owns: say which, never a traceback
        lock.release()
        raise EngineError(
            f"cannot open {exc.filename or data_dir}: "
            f"{exc.strerror or exc}; check its owner and "
            "permissions"
        ) from None
    except BaseException:
        lock.release()
        raise


def _storage_root(data_dir: Path, settings: Resolved) -> Path:
    """The storage root, made if missing and proven writable (EngineError)."""
    configured = settings.storage_dir
    root = Path(configured).expanduser() if configured else data_dir / "storage"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".dicomtui-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EngineError(
            f"storage directory {root} is not writable "
            f"({exc.strerror or exc}); fix its permissions or set "
            "--storage-dir"
        ) from None
    return root


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).astimezone().isoformat() if ts else None
