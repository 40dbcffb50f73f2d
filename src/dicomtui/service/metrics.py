"""Prometheus metrics: what a monitoring system scrapes from a running receiver.

Counters are fed by the Recorder, which sees every transaction record (stores, echoes,
queries, retrieves, associations, refusals), so nothing is counted twice or in two
places. Gauges (storage, upload queue, associations open) are read from their owners at
scrape time. Each engine has its own registry, never prometheus-client's global one.

Label values are bounded: facility names come from the facility registry (plus "main"
and "unknown"; auto-created facilities are capped), statuses are the few DIMSE codes we
answer, rules and outcomes are fixed words. Calling AE titles and peers are never labels:
a sender could make up unboundedly many (see README, "Metrics").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dicomtui.models import FAILED, StatusSnapshot
from dicomtui.service.core.records import (
    AssociationEnd,
    Echo,
    Find,
    Move,
    OperatorSend,
    Refusal,
    Retrieve,
    Store,
    Transaction,
)

LOG = logging.getLogger("dicomtui.metrics")
# C-STORE takes ~1 ms to a few seconds (large instances, fsync on a slow disk)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SERVICES = {Echo: "echo", Find: "find", Move: "move", Retrieve: "get"}


class Metrics:
    """The counters of one engine and its gauges; `observe` is called for each record."""

    def __init__(self, snapshot: Callable[[], StatusSnapshot]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "dicomtui_cstore_received",
            "C-STORE requests answered, by facility and DIMSE status",
            ["facility", "status"],
            registry=r,
        )
        self.bytes = Counter(
            "dicomtui_cstore_bytes",
            "Bytes of instances stored (acknowledged), by facility",
            ["facility"],
            registry=r,
        )
        self.duration = Histogram(
            "dicomtui_cstore_duration_seconds",
            "Time from a C-STORE's dataset received to its answer (write, fsync, journal)",
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "dicomtui_requests",
            "C-ECHO, C-FIND, C-MOVE and C-GET requests, by service and outcome",
            ["service", "outcome"],
            registry=r,
        )
        self.associations = Counter(
            "dicomtui_associations",
            "Associations ended or refused, by outcome",
            ["outcome"],
            registry=r,
        )
        self.refused = Counter(
            "dicomtui_refused_associations",
            "Connections and associations refused, by the rule that refused them",
            ["rule"],
            registry=r,
        )
        r.register(_Gauges(snapshot))

    def observe(self, tx: Transaction) -> None:
        """Count one record (the Recorder calls this for every record it takes)."""
        if isinstance(tx, Store):
            facility = tx.facility or "unknown"
            self.received.labels(facility, f"0x{tx.status or 0:04X}").inc()
            if tx.outcome != FAILED:
                self.bytes.labels(facility).inc(tx.bytes)
            self.duration.observe(tx.duration_ms / 1000)
        elif isinstance(tx, Refusal):
            self.associations.labels("refused").inc()
            self.refused.labels(tx.rule or "negotiation").inc(1 + tx.repeats)
        elif isinstance(tx, AssociationEnd):
            self.associations.labels(tx.outcome or "unknown").inc()
        elif not isinstance(tx, OperatorSend):  # an operator's send is no request
            service = next((n for k, n in SERVICES.items() if isinstance(tx, k)), None)
            if service is not None:
                self.requests.labels(service, tx.outcome or "unknown").inc()


class _Gauges(Collector):
    """Values whose owners already know them: read at scrape time, not mirrored."""

    def __init__(self, snapshot: Callable[[], StatusSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._snapshot()
        yield _gauge(
            "dicomtui_receiver_up",
            "1 while the receiver listens",
            1.0 * (s.state == "running"),
        )
        yield _gauge(
            "dicomtui_associations_open", "Associations open now", len(s.associations)
        )
        yield _gauge(
            "dicomtui_storage_used_bytes",
            "Bytes the storage holds (instances and zips waiting to be shipped)",
            s.storage_used_bytes,
        )
        yield _gauge(
            "dicomtui_storage_quota_bytes",
            "The storage quota in bytes (0 = none)",
            s.quota_bytes or 0,
        )
        queue = GaugeMetricFamily(
            "dicomtui_upload_queue", "Upload queue items by state", labels=["state"]
        )
        for state in ("queued", "uploading", "failed"):
            queue.add_metric([state], getattr(s.uploads, state))
        yield queue


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


@dataclass
class MetricsEndpoint:
    """The HTTP endpoint: bound at the receiver's start, rebound when its address
    changed, closed with the engine."""

    registry: CollectorRegistry
    address: tuple[str, int] | None = None
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    def ensure(self, host: str, port: int) -> str | None:
        """Serve on host:port (port 0: off). A problem comes back as a warning: the
        receiver runs on without metrics rather than not at all."""
        if self.address == (host, port) and (port == 0 or self._server is not None):
            return None
        self.close()
        self.address = (host, port)
        if port == 0:
            return None
        try:
            self._server, self._thread = start_http_server(port, host, self.registry)
        except OSError as exc:
            return f"metrics are not served on {host}:{port}: {exc.strerror or exc}"
        LOG.info("Prometheus metrics on http://%s:%d/metrics", host, port)
        return None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None
        self.address = None
