"""Sites: facilities and their listeners, allowed callers, and who may associate.

Owns the facility registry, the allowed callers and the frozen access policy built from
them; decides at association request whether a caller is admitted and which facility
it belongs to. It never touches a pynetdicom object: receiving asks, sites answers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tinydb import TinyDB

from dicomtui.db.storage import flush_database
from dicomtui.db.writer import DBWriter
from dicomtui.models import AllowedCaller, Facility, Listener, PacsConfig
from dicomtui.service.sites import access
from dicomtui.service.sites.access import CallerList
from dicomtui.service.sites.facilities import (
    UNKNOWN,
    FacilityError,
    FacilityRegistry,
    Reserved,
)
from dicomtui.service.sites.ports import host_addresses
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.service")
AUTO_CREATE_LIMIT = 50  # each opens a port: a flood of made-up AE titles must not


class SitesError(RuntimeError):
    """A facility or caller change could not be saved; the message says why."""


class FacilityPorts(Protocol):
    """The listeners of facilities (receiving owns them)."""

    @property
    def running(self) -> bool: ...

    def open_facility(self, name: str, ae_title: str, port: int) -> str: ...
    def retire_facility(self, name: str) -> None: ...
    def facility_state(self, name: str) -> tuple[str, str]: ...
    def effective(self) -> Resolved: ...


@dataclass(frozen=True)
class Admission:
    """The answer to an association request: the facility, or why it is refused."""

    facility: str
    refusal: access.Refusal | None = None


class Sites:
    """Facilities, allowed callers and the access policy, each change saved at once."""

    def __init__(
        self,
        db: TinyDB,
        writer: DBWriter,
        settings: Callable[[], Resolved],
        ports: FacilityPorts,
        today_of: Callable[[str], tuple[int, int, str | None]],
        forget: Callable[[str], None],
    ) -> None:
        self._writer, self._settings, self._ports = writer, settings, ports
        self._today_of, self._forget = today_of, forget
        self._lock = threading.RLock()
        self._facilities, self._callers = FacilityRegistry(), CallerList()
        self._problems: list[str] = []
        for kind, table in (("facilities", self._facilities), ("callers", self._callers)):
            self._problems += table.load(db)
            writer.register(kind, table.write_batch, lambda: flush_database(db))
        self._policy = access.AccessPolicy()
        self.refresh_access()

    @property
    def problems(self) -> list[str]:
        """Unreadable facility or caller entries: while any is left, the receiver does
        not start (a lost "denied" entry would let its caller in)."""
        if not (self._facilities.unreadable or self._callers.unreadable):
            return []
        return [
            f"{p}; the receiver does not start until it is fixed: restore "
            "dicomtui.json from a backup, or correct the entry by hand"
            for p in self._problems
        ]

    # -- facilities --------------------------------------------------------------------
    def facility_list(self) -> list[Facility]:
        return [self._with_state(f) for f in self._facilities.all()]

    def add_facility(
        self,
        name: str,
        port: int | None = None,
        ae_title: str | None = None,
        calling_aes: list[str] | None = None,
        auto_created: bool = False,
        anonymize: str | None = None,
    ) -> Facility:
        """Add, save, and start its listener if the receiver runs (FacilityError)."""
        with self._lock:
            facility = self._facilities.add(
                name, port, ae_title, calling_aes, self._reserved(), auto_created, anonymize
            )
            self._save("facilities", self._facilities)
            LOG.info(
                "facility %r added: AE title %s, port %d%s",
                facility.name,
                facility.ae_title,
                facility.port,
                " (created automatically)" if auto_created else "",
            )
            if self._ports.running:
                self._open(facility)
        return self._with_state(facility)

    def update_facility(
        self,
        name: str,
        ae_title: str | None = None,
        port: int | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        with self._lock:
            before, after = self._facilities.update(
                name, ae_title, port, calling_aes, self._reserved(), anonymize
            )
            self._save("facilities", self._facilities)
            moved = (before.port, before.ae_title) != (after.port, after.ae_title)
            if moved and self._ports.running:
                self._ports.retire_facility(after.name)
                self._open(after)
            if moved:
                LOG.info(
                    "facility %r changed: AE title %s, port %d",
                    after.name,
                    after.ae_title,
                    after.port,
                )
            if before.anonymize != after.anonymize:
                LOG.info("facility %r: anonymize %s", after.name, after.anonymize)
        return self._with_state(after)

    def remove_facility(self, name: str) -> Facility:
        with self._lock:
            facility = self._facilities.remove(name)
            self._save("facilities", self._facilities)
            self._ports.retire_facility(facility.name)
            self._forget(facility.name)
            LOG.info(
                "facility %r removed: port %d no longer listens",
                facility.name,
                facility.port,
            )
        return facility

    def anonymize_choices(self) -> set[str]:
        """Every facility's anonymization choice."""
        return {f.anonymize for f in self._facilities.all()}

    def anonymize_choice(self, facility: str) -> str:
        """ "default", "on" or "off": the facility's own anonymization choice."""
        return self._facilities.anonymize_of(facility)

    def open_listeners(self) -> None:
        """The receiver started: every facility listens on its port."""
        with self._lock:
            for facility in self._facilities.all():
                self._open(facility)

    def facility_listeners(self) -> list[Listener]:
        host = self._ports.effective().host
        return [
            Listener(f.ae_title, host, f.port, f.listener, f.name, f.error)
            for f in self.facility_list()
        ]

    def pacs_config(self, main: list[Listener]) -> PacsConfig:
        """What a remote PACS enters to send here: host names, addresses, listeners
        (`main`: the receiver's own, plain and TLS, then each facility's)."""
        name = socket.getfqdn()
        if name.startswith("localhost"):
            name = socket.gethostname()
        return PacsConfig(
            name, host_addresses(main[0].host), main + self.facility_listeners()
        )

    def _open(self, facility: Facility) -> None:
        error = self._ports.open_facility(facility.name, facility.ae_title, facility.port)
        if error:
            LOG.error("facility %r: listener not started: %s", facility.name, error)
        else:
            LOG.info(
                "facility %r listening on port %d as %s",
                facility.name,
                facility.port,
                facility.ae_title,
            )

    def _with_state(self, facility: Facility) -> Facility:
        facility.listener, facility.error = self._ports.facility_state(facility.name)
        (facility.instances_today, facility.studies_today, facility.last_seen) = (
            self._today_of(facility.name)
        )
        return facility

    def _reserved(self) -> Reserved:
        s = self._ports.effective()
        return Reserved(s.ae_title, s.port, s.host, s.tls_port)

    # -- allowed callers ---------------------------------------------------------------
    def caller_list(self) -> list[AllowedCaller]:
        return self._callers.all()

    def allow_caller(
        self,
        ae_title: str,
        ip: str | None = None,
        description: str | None = None,
        active: bool = True,
    ) -> AllowedCaller:
        with self._lock:
            caller = self._callers.allow(ae_title, ip, description, active)
            self._save("callers", self._callers)
        LOG.info(
            "calling AE %s %s%s",
            caller.ae_title,
            "allowed" if active else "denied",
            f" from {caller.ip}" if caller.ip and active else "",
        )
        return caller

    def update_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        """Change where a known caller may call from and what it is; allowed stays
        allowed and denied stays denied (CallerMissing if unknown)."""
        with self._lock:
            caller = self._callers.allow(
                ae_title, ip, description, active=None, must_exist=True
            )
            self._save("callers", self._callers)
        LOG.info(
            "calling AE %s changed%s",
            caller.ae_title,
            f": from {caller.ip}" if caller.ip else "",
        )
        return caller

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        with self._lock:
            caller = self._callers.remove(ae_title)
            self._save("callers", self._callers)
        LOG.info("calling AE %s removed from the allowed callers", caller.ae_title)
        return caller

    def _save(self, kind: str, table: FacilityRegistry | CallerList) -> None:
        self._writer.put(kind, table.snapshot())
        self.refresh_access()
        if not self._writer.flush():
            raise SitesError(
                f"could not save {kind}: the DB writer is stuck "
                f"({self._writer.stats().get('last_error')})"
            )

    # -- at association request --------------------------------------------------------
    def refresh_access(self) -> None:
        """Swap in a new frozen policy (association threads read it without a lock)."""
        s, main = self._settings(), self._ports.effective()
        self._policy = access.AccessPolicy(
            require_calling_ae=s.require_calling_ae,
            networks=access.networks_of(s.allowed_ips),
            check_called_ae=s.check_called_ae,
            callers=self._callers.as_map(),
            our_aes=frozenset({main.ae_title.strip()} | self._facilities.ae_titles()),
        )

    def address_refusal(self, ip: str) -> str | None:
        """At accept: why a connection from `ip` is closed at once (allowed_ips)."""
        refusal = access.check_address(self._policy, ip)
        return refusal.reason if refusal is not None else None

    def admit(
        self, calling: str, called: str, ip: str, port_facility: str | None
    ) -> Admission:
        """Whether an association may go on, and the facility it belongs to."""
        facility = self._facilities.recognise(port_facility, called, calling)
        refusal = access.check(self._policy, calling, called, ip)
        if refusal is not None:
            return Admission(facility or UNKNOWN, refusal)
        if facility is None and calling and self._settings().auto_create_facilities:
            facility = self._auto_create(calling)
        return Admission(facility or UNKNOWN)

    def _auto_create(self, calling: str) -> str | None:
        """A facility named after an unknown calling AE; None if that is impossible."""
        with self._lock:
            existing = self._facilities.recognise(None, "", calling)
            if existing:
                return existing
            if sum(f.auto_created for f in self._facilities.all()) >= AUTO_CREATE_LIMIT:
                LOG.warning(
                    "no facility created for calling AE %s: %d facilities were "
                    "already created automatically (review them with `dicomtui "
                    "facility list`)",
                    calling,
                    AUTO_CREATE_LIMIT,
                )
                return None
            try:
                return self.add_facility(
                    calling, calling_aes=[calling], auto_created=True
                ).name
            except FacilityError as exc:
                return self._register_with_namesake(calling, exc)
            except SitesError as exc:
                LOG.error("%s", exc)
                return None

    def _register_with_namesake(self, calling: str, exc: FacilityError) -> str | None:
        """A facility already has the caller's name: it recognises the caller from now."""
        if "already exists" not in str(exc):
            LOG.warning("could not create a facility for calling AE %s: %s", calling, exc)
            return None
        self._facilities.register_caller(calling, calling)
        self._save("facilities", self._facilities)
        return self._facilities.get(calling).name
