"""Who may associate: allowed callers, and the policy checked at association request
(allowed_ips also at accept, by the gate).

The check is a pure function of an immutable AccessPolicy; the engine swaps in a new
policy whenever a setting, caller or facility changes, so association threads never
take a lock to read it. A refusal carries the A-ASSOCIATE-RJ fields (PS3.8 9.3.4) and
the name of the rule that refused, for the log.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field, replace

from dicomtui.db.snapshot_table import SnapshotTable
from dicomtui.dicom.aetitle import ae_title_problem
from dicomtui.models import AllowedCaller
from dicomtui.service.core.events import now_iso
from dicomtui.settings import parse_networks

TABLE = "callers"
MAX_DESCRIPTION = 200
PERMANENT = 1  # result: rejected-permanent
SERVICE_USER = 1  # source: DICOM UL service-user
NO_REASON, CALLING_AE_NOT_RECOGNISED, CALLED_AE_NOT_RECOGNISED = 1, 3, 7


class CallerError(ValueError):
    """An allowed-caller request broke a rule; the message says which."""


class CallerMissing(LookupError):
    """No allowed caller has that AE title."""


@dataclass(frozen=True)
class Refusal:
    """Why an association is refused, and how to say so on the wire."""

    rule: str  # the setting or list that refused it
    reason: str
    result: int = PERMANENT
    source: int = SERVICE_USER
    diagnostic: int = NO_REASON


@dataclass(frozen=True)
class AccessPolicy:
    """Everything the check needs, frozen at one moment."""

    require_calling_ae: bool = False
    networks: tuple = ()
    check_called_ae: bool = False
    callers: dict = field(default_factory=dict)  # AE title -> AllowedCaller
    our_aes: frozenset = frozenset()


def check_address(policy: AccessPolicy, ip: str) -> Refusal | None:
    """allowed_ips alone: what the gate checks at accept, before any PDU is read."""
    address = _address(ip)
    if policy.networks and not any(
        address in net for net in policy.networks if address is not None
    ):
        return Refusal("allowed_ips", f"address {ip} is not in allowed_ips")
    return None


def check(policy: AccessPolicy, calling_ae: str, called_ae: str, ip: str) -> Refusal | None:
    """None if the association may go on, else the first rule that refuses it."""
    refusal = check_address(policy, ip)
    if refusal is not None:  # a change of allowed_ips since the connection was accepted
        return refusal
    address = _address(ip)
    caller = policy.callers.get(calling_ae)
    if caller is not None and not caller.active:
        return Refusal(
            "denied",
            f"calling AE title {calling_ae} is denied (`dicomtui ae allow` re-allows it)",
            diagnostic=CALLING_AE_NOT_RECOGNISED,
        )
    if caller is None and policy.require_calling_ae:
        return Refusal(
            "require_calling_ae",
            f"calling AE title {calling_ae or '(empty)'} is not an allowed caller",
            diagnostic=CALLING_AE_NOT_RECOGNISED,
        )
    if caller is not None and caller.ip and not _in(address, caller.ip):
        return Refusal(
            "caller_ip",
            f"calling AE title {calling_ae} is allowed only from {caller.ip}, not {ip}",
            diagnostic=CALLING_AE_NOT_RECOGNISED,
        )
    if policy.check_called_ae and called_ae not in policy.our_aes:
        return Refusal(
            "check_called_ae",
            f"called AE title {called_ae or '(empty)'} is neither ours nor a facility's",
            diagnostic=CALLED_AE_NOT_RECOGNISED,
        )
    return None


def _address(ip: str):
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _in(address, network: str) -> bool:
    if address is None:
        return False
    return address in ipaddress.ip_network(network, strict=False)


def check_network(text: str) -> str:
    """An IP or CIDR as stored; CallerError when it is neither."""
    text = text.strip()
    if not text:
        return ""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise CallerError(
            f"{text!r} is not an IP address or CIDR network (e.g. 10.1.2.3 or 10.1.2.0/24)"
        ) from None


def networks_of(allowed_ips: str) -> tuple:
    return tuple(parse_networks(allowed_ips))


class CallerList(SnapshotTable):
    """The allowed (and denied) calling AE titles, saved through the DB writer."""

    TABLE, WHAT = TABLE, "allowed caller"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._by_ae: dict[str, AllowedCaller] = {}

    def _parse(self, doc: dict) -> AllowedCaller:
        return AllowedCaller(
            str(doc["ae_title"]),
            str(doc.get("description", "")),
            str(doc.get("ip", "")),
            bool(doc.get("active", True)),
            str(doc.get("created", "")),
        )

    def _keep(self, caller: AllowedCaller) -> None:
        self._by_ae[caller.ae_title] = caller

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [vars(replace(c)) for c in self._by_ae.values()]

    def as_map(self) -> dict[str, AllowedCaller]:
        with self._lock:
            return dict(self._by_ae)

    def all(self) -> list[AllowedCaller]:
        with self._lock:
            return sorted(
                (replace(c) for c in self._by_ae.values()), key=lambda c: c.ae_title
            )

    def allow(
        self,
        ae_title: str,
        ip: str | None,
        description: str | None,
        active: bool | None = True,
        must_exist: bool = False,
    ) -> AllowedCaller:
        """Add or update; None keeps the current ip/description/active, "" clears."""
        ae_title = _check_ae(ae_title)
        ip = check_network(ip) if ip is not None else None
        if description is not None:
            description = _check_description(description)
        with self._lock:
            current = self._by_ae.get(ae_title)
            if current is None and must_exist:
                raise CallerMissing(
                    f"no allowed caller {ae_title!r} (see `dicomtui ae list`)"
                )
            current = current or AllowedCaller(ae_title, created=now_iso())
            updated = replace(
                current,
                active=current.active if active is None else active,
                ip=current.ip if ip is None else ip,
                description=(current.description if description is None else description),
            )
            self._by_ae[ae_title] = updated
            return replace(updated)

    def remove(self, ae_title: str) -> AllowedCaller:
        with self._lock:
            caller = self._by_ae.pop(ae_title.strip(), None)
        if caller is None:
            raise CallerMissing(
                f"no allowed caller {ae_title.strip()!r} (see `dicomtui ae list`)"
            )
        return caller


def _check_ae(ae_title: str) -> str:
    problem = ae_title_problem(ae_title)
    if problem:
        raise CallerError(f"AE title {ae_title!r} {problem}")
    return ae_title.strip()


def _check_description(text: str) -> str:
    text = " ".join(text.split())
    if not text.isprintable():
        raise CallerError("a description must not contain control characters")
    if len(text) > MAX_DESCRIPTION:
        raise CallerError(f"a description must be at most {MAX_DESCRIPTION} characters")
    return text
