"""The Engine's facility and access half: facilities with their listeners, allowed
callers, the access check at association request, and recognition.

A mixin so engine.py stays readable; it uses the engine's writer, settings, stats lock
and listener factory, and nothing here runs on the UI side.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime

from dicomtui.models import AllowedCaller, Facility, Listener, PacsConfig
from dicomtui.service import access
from dicomtui.service.facilities import UNKNOWN, FacilityError, Reserved
from dicomtui.service.ports import host_addresses
from dicomtui.service.records import base_record, called_ae_of, peer_of

LOG = logging.getLogger("dicomtui.service")
SEED_LIMIT = 500_000
AUTO_CREATE_LIMIT = 50  # each opens a port: a flood of made-up AE titles must not  # today's store records read back at start, at most


class SitesError(RuntimeError):
    """A facility or caller change could not be saved; the message says why."""


class Sites:
    """Mixed into Engine: needs facilities, callers, listener_set, facility_stats,
    writer, settings, _stats_lock, _recognised, _is_running() and _reserved()."""

    # -- facilities --------------------------------------------------------------------
    def facility_list(self) -> list[Facility]:
        return [self._with_state(f) for f in self.facilities.all()]

    def add_facility(self, name: str, port: int | None = None, ae_title: str | None = None,
                     calling_aes: list[str] | None = None,
                     auto_created: bool = False,
                     anonymize: str | None = None) -> Facility:
        """Add, save, and start its listener if the receiver runs (FacilityError)."""
        with self._sites_lock:
            facility = self.facilities.add(name, port, ae_title, calling_aes,
                                           self._reserved(), auto_created, anonymize)
            self._save_facilities()
            LOG.info("facility %r added: AE title %s, port %d%s", facility.name,
                     facility.ae_title, facility.port,
                     " (created automatically)" if auto_created else "")
            if self._is_running():
                self._start_facility(facility)
        return self._with_state(facility)

    def update_facility(self, name: str, ae_title: str | None = None,
                        port: int | None = None,
                        calling_aes: list[str] | None = None,
                        anonymize: str | None = None) -> Facility:
        with self._sites_lock:
            before, after = self.facilities.update(name, ae_title, port, calling_aes,
                                                   self._reserved(), anonymize)
            self._save_facilities()
            moved = (before.port, before.ae_title) != (after.port, after.ae_title)
            if moved and self._is_running():
                self.listener_set.retire(after.name)
                self._start_facility(after)
            if moved:
                LOG.info("facility %r changed: AE title %s, port %d", after.name,
                         after.ae_title, after.port)
            if before.anonymize != after.anonymize:
                LOG.info("facility %r: anonymize %s", after.name, after.anonymize)
        return self._with_state(after)

    def remove_facility(self, name: str) -> Facility:
        with self._sites_lock:
            facility = self.facilities.remove(name)
            self._save_facilities()
            self.listener_set.retire(facility.name)
            with self._stats_lock:
                self.facility_stats.forget(facility.name)
            LOG.info("facility %r removed: port %d no longer listens", facility.name,
                     facility.port)
        return facility

    def pacs_config(self) -> PacsConfig:
        s = self._running_or_current()
        main = Listener(s.ae_title, s.host, self.port or s.port,
                        "listening" if self._is_running() else self.state_word())
        listeners = [main] + [Listener(f.ae_title, s.host, f.port, f.listener, f.name,
                                       f.error) for f in self.facility_list()]
        name = socket.getfqdn()
        if name.startswith("localhost"):
            name = socket.gethostname()
        return PacsConfig(name, host_addresses(s.host), listeners)

    def _start_facility(self, facility: Facility) -> None:
        error = self.listener_set.start(facility.name, facility.ae_title, facility.port)
        if error:
            LOG.error("facility %r: listener not started: %s", facility.name, error)
        else:
            LOG.info("facility %r listening on port %d as %s", facility.name,
                     facility.port, facility.ae_title)

    def _seed_facility_stats(self) -> None:
        """Count today's stores already in the log, so a restart keeps "today" true.

        Runs before any listener starts, so nothing is counted twice.
        """
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        done = self.txlog.query(types=["store"], outcomes=["ok", "warning"], since=midnight,
                                limit=SEED_LIMIT)
        with self._stats_lock:
            for record in reversed(done):  # oldest first: last_seen ends newest
                if record.get("facility"):
                    self.facility_stats.stored(record["facility"],
                                               record.get("study_uid") or "",
                                               record.get("time"))

    def _start_facilities(self) -> None:
        for facility in self.facilities.all():
            self._start_facility(facility)

    def _with_state(self, facility: Facility) -> Facility:
        facility.listener, facility.error = self.listener_set.state(facility.name)
        with self._stats_lock:
            (facility.instances_today, facility.studies_today,
             facility.last_seen) = self.facility_stats.today(facility.name)
        return facility

    def _save_facilities(self) -> None:
        self.writer.put("facilities", self.facilities.snapshot())
        self._refresh_access()
        self._saved("facilities")

    def _reserved(self) -> Reserved:
        s = self._running_or_current()
        return Reserved(s.ae_title, s.port, s.host)

    # -- allowed callers ---------------------------------------------------------------
    def caller_list(self) -> list[AllowedCaller]:
        return self.callers.all()

    def allow_caller(self, ae_title: str, ip: str | None = None,
                     description: str | None = None, active: bool = True) -> AllowedCaller:
        with self._sites_lock:
            caller = self.callers.allow(ae_title, ip, description, active)
            self._save_callers()
        LOG.info("calling AE %s %s%s", caller.ae_title, "allowed" if active else "denied",
                 f" from {caller.ip}" if caller.ip and active else "")
        return caller

    def update_caller(self, ae_title: str, ip: str | None = None,
                      description: str | None = None) -> AllowedCaller:
        """Change where a known caller may call from and what it is; allowed stays
        allowed and denied stays denied (CallerMissing if unknown)."""
        with self._sites_lock:
            caller = self.callers.allow(ae_title, ip, description, active=None,
                                        must_exist=True)
            self._save_callers()
        LOG.info("calling AE %s changed%s", caller.ae_title,
                 f": from {caller.ip}" if caller.ip else "")
        return caller

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        with self._sites_lock:
            caller = self.callers.remove(ae_title)
            self._save_callers()
        LOG.info("calling AE %s removed from the allowed callers", caller.ae_title)
        return caller

    def _save_callers(self) -> None:
        self.writer.put("callers", self.callers.snapshot())
        self._refresh_access()
        self._saved("callers")

    def _saved(self, what: str) -> None:
        if not self.writer.flush():
            raise SitesError(f"could not save {what}: the DB writer is stuck "
                             f"({self.writer.stats().get('last_error')})")

    # -- at association request --------------------------------------------------------
    def _refresh_access(self) -> None:
        """Swap in a new frozen policy (association threads read it without a lock)."""
        s = self._running_or_current()
        self.access_policy = access.AccessPolicy(
            require_calling_ae=self.settings.require_calling_ae,
            networks=access.networks_of(self.settings.allowed_ips),
            check_called_ae=self.settings.check_called_ae,
            callers=self.callers.as_map(),
            our_aes=frozenset({s.ae_title.strip()} | self.facilities.ae_titles()))

    def association_requested(self, assoc, port_facility: str | None) -> bool:
        """Check access and recognise the facility; False = refused (already answered)."""
        # pynetdicom copies the calling AE title to the requestor only when it
        # negotiates, after this event; records made now need it already.
        assoc.requestor.ae_title = assoc.requestor.primitive.calling_ae_title
        calling = (assoc.requestor.ae_title or "").strip()
        called = called_ae_of(assoc)
        ip = str(assoc.requestor.address)
        facility = self.facilities.recognise(port_facility, called, calling)
        refusal = access.check(self.access_policy, calling, called, ip)
        if refusal is not None:
            self._refuse(assoc, refusal, facility or UNKNOWN)
            return False
        if facility is None and calling and self.settings.auto_create_facilities:
            facility = self._auto_create(calling)
        with self._stats_lock:
            self._recognised[id(assoc)] = facility or UNKNOWN
        return True

    def _refuse(self, assoc, refusal: access.Refusal, facility: str) -> None:
        assoc.acse.send_reject(refusal.result, refusal.source, refusal.diagnostic)
        with self._stats_lock:
            self._count("refused", 1)
        record = base_record("association", assoc, "refused", None,
                             f"rejected: {refusal.reason} (result {refusal.result}, source "
                             f"{refusal.source}, diagnostic {refusal.diagnostic})")
        record.update({"rule": refusal.rule, "facility": facility})
        self._record(record)
        LOG.warning("association from %s (%s) to %s refused by %s: %s", record["calling_ae"],
                    peer_of(assoc), record["called_ae"] or "(empty)", refusal.rule,
                    refusal.reason)
        assoc.kill()  # waits until the A-ASSOCIATE-RJ is out, as pynetdicom's own rejects

    def _auto_create(self, calling: str) -> str | None:
        """A facility named after an unknown calling AE; None if that is impossible."""
        with self._sites_lock:
            existing = self.facilities.recognise(None, "", calling)
            if existing:
                return existing
            if sum(f.auto_created for f in self.facilities.all()) >= AUTO_CREATE_LIMIT:
                LOG.warning("no facility created for calling AE %s: %d facilities were "
                            "already created automatically (review them with `dicomtui "
                            "facility list`)", calling, AUTO_CREATE_LIMIT)
                return None
            try:
                facility = self.add_facility(calling, calling_aes=[calling],
                                             auto_created=True)
            except FacilityError as exc:
                if "already exists" not in str(exc):
                    LOG.warning("could not create a facility for calling AE %s: %s",
                                calling, exc)
                    return None
                self.facilities.register_caller(calling, calling)
                self._save_facilities()
                return self.facilities.get(calling).name
            except SitesError as exc:
                LOG.error("%s", exc)
                return None
        return facility.name

    def facility_of(self, assoc) -> str:
        return self._recognised.get(id(assoc), UNKNOWN)

