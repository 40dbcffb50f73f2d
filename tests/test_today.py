""""today" and the receive rate come from the service's log, so they survive a restart
and read the same in `dicomtui status`, on the Status screen and on Facilities."""

from __future__ import annotations

import time

from conftest import free_port
from helpers import fresh_ct, send

from dicomtui.service.engine import Engine
from dicomtui.service.receiving.rate_ring import RateRing


def test_today_and_the_rate_survive_a_restart_and_agree_everywhere(make_engine, service,
                                                                    tmp_path):
    data = tmp_path / "today"
    engine = make_engine(data_dir=data)
    site = engine.sites.add_facility("Main Hospital", port=free_port())
    sent_at = time.time()
    send(site.port, [fresh_ct() for _ in range(4)], called=site.ae_title)
    engine.close()

    stopped = Engine(data, {"host": "127.0.0.1", "port": str(free_port())}, environ={})
    try:  # opened, never started (what a CLI verb does without a service)
        snap = stopped.snapshot("local")
        (facility,) = stopped.sites.facility_list()
    finally:
        stopped.close()
    assert snap.counters.received == 0  # since start: nothing
    assert snap.today.received == 4 and snap.today.bytes > 0 and snap.today.associations == 1
    assert facility.instances_today == 4
    assert sum(n for _second, n in snap.received_by_second) == 4  # the last minutes, too
    assert all(sent_at - 1 <= second <= time.time() for second, _n in snap.received_by_second)

    svc = service(data_dir=data)  # a real `dicomtui serve` on the same data dir
    shown = svc.cli("status")
    assert "today: received 4 (" in " ".join(shown.stdout.split()), shown.stdout
    send(svc.port, [fresh_ct()])
    shown = svc.cli("status")
    words = " ".join(shown.stdout.split())
    assert "since start: received 1 (" in words and "today: received 5 (" in words, words
    listed = svc.cli("facility", "list").stdout
    assert "Main Hospital" in listed and " 4 " in listed, listed


def test_the_rate_ring_is_bounded_by_its_window_and_takes_late_seconds_in_place():
    ring = RateRing(window=300)
    for second in range(1000, 2000):
        ring.add(second + 0.5)
    ring.add(1900.2, 2)  # a seed from the log, older than the newest second
    samples = ring.samples(now=2000)
    assert len(samples) == 299 and samples[0][0] == 1701 and samples[-1] == [1999, 1]
    assert dict(map(tuple, samples))[1900] == 3
    assert ring.samples(now=2400) == []  # nothing in the last five minutes
