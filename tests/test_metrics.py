"""Prometheus metrics: what a scrape of a running receiver shows, from real traffic."""

from __future__ import annotations

import socket

import httpx
from conftest import free_port
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE

from helpers import eventually, fresh_ct, parked, send

VERIFICATION = "1.2.840.10008.1.1"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of http://127.0.0.1:port/metrics by (name, sorted labels)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_until(port: int, condition, what: str) -> dict:
    return eventually(lambda: (lambda s: s if condition(s) else None)(scrape(port)),
                      what=what)


def test_a_scrape_counts_stores_by_facility_and_status_and_refusals_by_rule(make_engine):
    port = free_port()
    engine = make_engine(metrics_port=str(port), duplicate_policy="reject",
                         check_called_ae="true")
    ct = fresh_ct()
    statuses = [r.Status for r in send(engine.port, [ct, ct])]  # the second: a duplicate
    assert statuses == [0x0000, 0xC211]
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(VERIFICATION)
    wrong = ae.associate("127.0.0.1", engine.port, ae_title="NOT_US")
    assert wrong.is_rejected
    ok = ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI")
    parked(ok).send_c_echo()
    ok.release()

    samples = scrape_until(port, lambda s: s.get(
        ("dicomtui_associations_total", (("outcome", "ok"),))) == 2,
        "both released associations counted")
    stores = engine.txlog.query(types=["store"])
    facility = stores[0]["facility"]
    stored = next(r for r in stores if r["status"] == 0)
    assert samples[("dicomtui_cstore_received_total",
                    (("facility", facility), ("status", "0x0000")))] == 1
    assert samples[("dicomtui_cstore_received_total",
                    (("facility", facility), ("status", "0xC211")))] == 1
    assert samples[("dicomtui_cstore_bytes_total", (("facility", facility),))] == \
        stored["bytes"] == (engine.storage.root / stored["path"]).stat().st_size
    assert samples[("dicomtui_cstore_duration_seconds_count", ())] == 2
    assert samples[("dicomtui_refused_associations_total", (("rule", "check_called_ae"),))] \
        == 1, [k for k in samples if k[0].startswith("dicomtui_refused")]
    assert samples[("dicomtui_requests_total",
                    (("outcome", "ok"), ("service", "echo")))] == 1
    assert samples[("dicomtui_receiver_up", ())] == 1
    assert samples[("dicomtui_storage_used_bytes", ())] == engine.storage.used_bytes > 0
    assert samples[("dicomtui_upload_queue", (("state", "queued"),))] == 0
    assert not [k for k in samples if "calling" in str(k) or "TESTSCU" in str(k)]


def test_metrics_are_off_by_default_and_a_busy_port_is_a_warning_not_a_stop(make_engine):
    quiet = make_engine()
    assert quiet.metrics_endpoint.address == ("127.0.0.1", 0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        engine = make_engine(metrics_port=str(busy))
        snapshot = engine.snapshot("service")
    assert snapshot.state == "running"
    assert any(f"metrics are not served on 127.0.0.1:{busy}" in w
               for w in snapshot.warnings), snapshot.warnings


def test_serve_exposes_metrics_on_the_port_it_is_given(service):
    port = free_port()
    svc = service("--set", f"metrics_port={port}")
    send(svc.port, [fresh_ct()])
    samples = scrape_until(port, lambda s: any(
        k[0] == "dicomtui_cstore_received_total" for k in s), "the store counted")
    assert sum(v for k, v in samples.items()
               if k[0] == "dicomtui_cstore_received_total") == 1
