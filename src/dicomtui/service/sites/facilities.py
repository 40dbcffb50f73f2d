"""The facilities registry: names, AE titles, ports and registered calling AEs.

Held in memory (the association threads look facilities up on every request) and saved
as one snapshot through the DB writer after each change. Every rule a facility must
satisfy lives here, so the CLI, the console and auto-creation refuse the same things
with the same words.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from dicomtui.db.snapshot_table import SnapshotTable
from dicomtui.dicom.aetitle import ae_title_problem, generate_ae_title
from dicomtui.models import ANONYMIZE_CHOICES, Facility
from dicomtui.service.core.events import now_iso
from dicomtui.service.sites.ports import port_in_use

TABLE = "facilities"
FIRST_PORT = 11113
UNKNOWN = "unknown"  # the facility of an association nobody recognised
MAX_NAME = 64


class FacilityError(ValueError):
    """A facility request broke a rule; the message says which and what to do."""


class FacilityMissing(LookupError):
    """No facility has that name."""


class FacilityRegistry(SnapshotTable):
    """Facilities by name, with lookups by port, AE title and calling AE."""

    TABLE, WHAT = TABLE, "facility"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._by_name: dict[str, Facility] = {}

    # -- persistence -------------------------------------------------------------------
    def _parse(self, doc: dict) -> Facility:
        return Facility(
            name=str(doc["name"]),
            ae_title=str(doc["ae_title"]),
            port=int(doc["port"]),
            calling_aes=[str(a) for a in doc.get("calling_aes", [])],
            created=str(doc.get("created", "")),
            auto_created=bool(doc.get("auto_created", False)),
            anonymize=_check_anonymize(str(doc.get("anonymize", "default"))),
        )

    def _keep(self, facility: Facility) -> None:
        self._by_name[facility.name.casefold()] = facility

    def snapshot(self) -> list[dict]:
        """What the writer saves: the defining fields of every facility."""
        with self._lock:
            return [
                {
                    "name": f.name,
                    "ae_title": f.ae_title,
                    "port": f.port,
                    "calling_aes": list(f.calling_aes),
                    "created": f.created,
                    "auto_created": f.auto_created,
                    "anonymize": f.anonymize,
                }
                for f in self._by_name.values()
            ]

    # -- reading -----------------------------------------------------------------------
    def all(self) -> list[Facility]:
        with self._lock:
            return sorted(
                (
                    replace(f, calling_aes=list(f.calling_aes))
                    for f in self._by_name.values()
                ),
                key=lambda f: f.port,
            )

    def get(self, name: str) -> Facility:
        with self._lock:
            facility = self._by_name.get(name.strip().casefold())
        if facility is None:
            raise FacilityMissing(
                f"no facility named {name!r} (see `dicomtui facility list`)"
            )
        return replace(facility, calling_aes=list(facility.calling_aes))

    def anonymize_of(self, name: str) -> str:
        """The facility's anonymize choice ("default" for unknown or none)."""
        facility = self._by_name.get(name.casefold())
        return facility.anonymize if facility is not None else "default"

    def ae_titles(self) -> set[str]:
        with self._lock:
            return {f.ae_title for f in self._by_name.values()}

    def recognise(
        self, port_facility: str | None, called_ae: str, calling_ae: str
    ) -> str | None:
        """The facility an association belongs to: by the port it arrived on, else by
        the called AE title, else by the calling AE registered to a facility."""
        if port_facility is not None:
            return port_facility
        with self._lock:
            for facility in self._by_name.values():
                if facility.ae_title == called_ae:
                    return facility.name
            for facility in self._by_name.values():
                if calling_ae in facility.calling_aes:
                    return facility.name
        return None

    # -- changing ----------------------------------------------------------------------
    def add(
        self,
        name: str,
        port: int | None,
        ae_title: str | None,
        calling_aes: list[str] | None,
        reserved: Reserved,
        auto_created: bool = False,
        anonymize: str | None = None,
    ) -> Facility:
        """Validate and add a facility; FacilityError says what is wrong."""
        name = _check_name(name)
        with self._lock:
            if name.casefold() in self._by_name:
                raise FacilityError(
                    f"a facility named {self._by_name[name.casefold()].name!r}"
                    " already exists"
                )
            taken_aes = self.ae_titles() | {reserved.ae_title}
            if ae_title is None or not ae_title.strip():
                try:
                    ae_title = generate_ae_title(name, taken_aes)
                except ValueError as exc:
                    raise FacilityError(str(exc)) from None
            ae_title = self._check_ae(ae_title, None, reserved)
            port = (
                self._check_port(port, None, reserved)
                if port is not None
                else self._free_port(reserved)
            )
            facility = Facility(
                name,
                ae_title,
                port,
                _check_callers(calling_aes or []),
                now_iso(),
                auto_created,
                anonymize=_check_anonymize(anonymize or "default"),
            )
            self._by_name[name.casefold()] = facility
            return replace(facility, calling_aes=list(facility.calling_aes))

    def update(
        self,
        name: str,
        ae_title: str | None,
        port: int | None,
        calling_aes: list[str] | None,
        reserved: Reserved,
        anonymize: str | None = None,
    ) -> tuple[Facility, Facility]:
        """Change what is given; (before, after)."""
        with self._lock:
            before = self.get(name)
            after = replace(before)
            if ae_title is not None and ae_title.strip() != before.ae_title:
                after.ae_title = self._check_ae(ae_title, before.name, reserved)
            if port is not None and port != before.port:
                after.port = self._check_port(port, before.name, reserved)
            if calling_aes is not None:
                after.calling_aes = _check_callers(calling_aes)
            if anonymize is not None:
                after.anonymize = _check_anonymize(anonymize)
            self._by_name[before.name.casefold()] = after
            return before, replace(after, calling_aes=list(after.calling_aes))

    def remove(self, name: str) -> Facility:
        with self._lock:
            facility = self.get(name)
            del self._by_name[facility.name.casefold()]
            return facility

    def register_caller(self, name: str, calling_ae: str) -> None:
        with self._lock:
            facility = self._by_name[name.casefold()]
            if calling_ae not in facility.calling_aes:
                facility.calling_aes = [*facility.calling_aes, calling_ae]

    # -- rules -------------------------------------------------------------------------
    def _check_ae(self, ae_title: str, owner: str | None, reserved: Reserved) -> str:
        problem = ae_title_problem(ae_title)
        if problem:
            raise FacilityError(f"AE title {ae_title!r} {problem}")
        ae_title = ae_title.strip()
        if ae_title.upper() == reserved.ae_title.upper():
            raise FacilityError(
                f"AE title {ae_title} is the receiver's own (ae_title); choose another"
            )
        for facility in self._by_name.values():
            if facility.name != owner and facility.ae_title.upper() == ae_title.upper():
                raise FacilityError(
                    f"AE title {ae_title} is already used by facility {facility.name!r}"
                )
        return ae_title

    def _check_port(self, port: int, owner: str | None, reserved: Reserved) -> int:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise FacilityError(f"port must be an integer from 1 to 65535 (got {port!r})")
        owner_of = reserved.owner_of(port)
        if owner_of:
            raise FacilityError(f"port {port} is {owner_of}; choose another")
        for facility in self._by_name.values():
            if facility.name != owner and facility.port == port:
                raise FacilityError(
                    f"port {port} is already used by facility {facility.name!r}"
                )
        if port_in_use(reserved.host, port):
            raise FacilityError(
                f"port {port} is already in use on this host (another "
                "program?); choose another, or leave --port out to take "
                "the next free one"
            )
        return port

    def _free_port(self, reserved: Reserved) -> int:
        taken = {f.port for f in self._by_name.values()}
        taken |= {reserved.port, reserved.tls_port}
        for port in range(FIRST_PORT, 65536):
            if port not in taken and not port_in_use(reserved.host, port):
                return port
        raise FacilityError(f"no free port from {FIRST_PORT} upward")


class Reserved:
    """What facilities may not take: the main listeners' AE title, ports and host."""

    def __init__(self, ae_title: str, port: int, host: str, tls_port: int = 0) -> None:
        self.ae_title, self.port, self.host = ae_title, port, host
        self.tls_port = tls_port

    def owner_of(self, port: int) -> str | None:
        """Which main listener's setting `port` is, if it is one."""
        if port == self.port:
            return "the main listener's (port setting)"
        if port == self.tls_port:
            return "the TLS listener's (tls_port setting)"
        return None


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise FacilityError("a facility name must not be empty")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise FacilityError(f"a facility name must be at most {MAX_NAME} characters")
    if not name.isprintable():
        raise FacilityError("a facility name must not contain control characters")
    if name.casefold() == UNKNOWN:
        raise FacilityError(f"{UNKNOWN!r} is reserved for associations nobody recognised")
    return name


def _check_anonymize(value: str) -> str:
    choice = value.strip().lower()
    if choice not in ANONYMIZE_CHOICES:
        raise FacilityError(
            f"anonymize must be one of {', '.join(ANONYMIZE_CHOICES)} (got {value!r})"
        )
    return choice


def _check_callers(calling_aes: list[str]) -> list[str]:
    result = []
    for ae in calling_aes:
        problem = ae_title_problem(ae)
        if problem:
            raise FacilityError(f"calling AE title {ae!r} {problem}")
        if ae.strip() not in result:
            result.append(ae.strip())
    return result
