"""The engine's event ring: reading by kind, and the last problems kept apart."""

from __future__ import annotations

from dicomtui.service.core.events import EventRing


def fill(ring: EventRing, n: int) -> None:
    for i in range(n):
        kind = "log" if i % 10 == 0 else "transaction"
        level = "WARNING" if i % 25 == 0 else "INFO"
        ring.emit(kind, level, f"event {i}")


def test_since_with_kinds_returns_only_those_and_pages_by_seq():
    ring = EventRing(capacity=1000)
    fill(ring, 300)
    logs = ring.since(0, limit=1000, kinds=frozenset({"log"}))
    assert [e.message for e in logs.events] == [f"event {i}" for i in range(0, 300, 10)]
    assert logs.seq == 300
    first = ring.since(0, limit=5, kinds=frozenset({"log"}))
    assert len(first.events) == 5 and first.seq == first.events[-1].seq
    rest = ring.since(first.seq, limit=1000, kinds=frozenset({"log"}))
    assert [e.seq for e in first.events + rest.events] == [e.seq for e in logs.events]


def test_since_counts_what_fell_out_of_the_ring():
    ring = EventRing(capacity=100)
    fill(ring, 250)
    batch = ring.since(0, kinds=frozenset({"log"}))
    assert batch.dropped == 150 and batch.events[0].seq > 150


def test_problems_keeps_the_newest_failed_transactions_only():
    ring = EventRing(capacity=100, problems=3)
    fill(ring, 400)
    problems = ring.problems(10)
    assert [e.message for e in problems] == ["event 375", "event 325", "event 275"]
    assert all(e.kind == "transaction" and e.level == "WARNING" for e in problems)
