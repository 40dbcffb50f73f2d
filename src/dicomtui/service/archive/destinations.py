"""C-MOVE destinations: the AE titles a C-MOVE may name, and where they listen.

A C-MOVE names its destination by AE title only; without this list we could not know
where to send, and an unknown title is answered 0xA801 (PS3.4 C.4.2.1.4).
"""

from __future__ import annotations

import ipaddress
import re
import threading
from dataclasses import replace

from dicomtui.db.snapshot_table import SnapshotTable
from dicomtui.dicom.aetitle import ae_title_problem
from dicomtui.models import Destination
from dicomtui.service.core.events import now_iso

TABLE = "destinations"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$"
)


class DestinationError(ValueError):
    """A destination that cannot be added as given; the message says why."""


class DestinationMissing(KeyError):
    """No destination with that AE title."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such destination"


class DestinationList(SnapshotTable):
    """The destinations, in memory, saved whole through the DB writer."""

    TABLE, WHAT = TABLE, "destination"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._by_ae: dict[str, Destination] = {}

    def _parse(self, doc: dict) -> Destination:
        return Destination(
            check_ae(str(doc["ae_title"])),
            check_host(str(doc["host"])),
            check_port(doc["port"]),
            str(doc.get("description", "")),
            str(doc.get("created", "")),
        )

    def _keep(self, item: Destination) -> None:
        self._by_ae[item.ae_title] = item

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [vars(replace(d)) for d in self._by_ae.values()]

    def all(self) -> list[Destination]:
        with self._lock:
            return sorted(
                (replace(d) for d in self._by_ae.values()), key=lambda d: d.ae_title
            )

    def get(self, ae_title: str) -> Destination | None:
        with self._lock:
            found = self._by_ae.get(ae_title.strip())
        return replace(found) if found else None

    def add(self, ae_title: str, host: str, port, description: str = "") -> Destination:
        """Add, or replace the address of, one destination."""
        ae_title, host, port = check_ae(ae_title), check_host(host), check_port(port)
        description = " ".join((description or "").split())
        if not description.isprintable() or len(description) > 64:
            raise DestinationError(
                "a description must be printable and at most 64 characters"
            )
        with self._lock:
            current = self._by_ae.get(ae_title)
            created = current.created if current else now_iso()
            item = self._by_ae[ae_title] = Destination(
                ae_title, host, port, description, created
            )
            return replace(item)

    def remove(self, ae_title: str) -> Destination:
        with self._lock:
            item = self._by_ae.pop(ae_title.strip(), None)
        if item is None:
            raise DestinationMissing(
                f"no destination {ae_title.strip()!r} (see `dicomtui dest list`)"
            )
        return item


def check_ae(ae_title: str) -> str:
    problem = ae_title_problem(ae_title)
    if problem:
        raise DestinationError(f"AE title {ae_title!r} {problem}")
    return ae_title.strip()


def check_host(host: str) -> str:
    host = host.strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise DestinationError(f"host {host!r} is not an IP address or a host name")
    return host


def check_port(port) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise DestinationError(f"port {port!r} is not a number") from None
    if not 1 <= value <= 65535:
        raise DestinationError(f"port {value} is out of range (1-65535)")
    return value
