"""The engine's event stream: a bounded ring of events with increasing sequence numbers.

Front ends poll `since(seq)`; nothing pushes into the UI, so a flood of images costs the
console one batch per poll, and memory stays bounded whatever the receive rate.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timezone
from itertools import islice

from dicomtui.models import Event, EventBatch


def now_iso() -> str:
    """The current time as an aware ISO 8601 string (local zone)."""
    return datetime.now(timezone.utc).astimezone().isoformat()


PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


class EventRing:
    """Thread-safe bounded buffer of events; the oldest fall out first.

    Failed and refused transactions are also kept in a small ring of their own, so the
    status snapshot finds the last errors without scanning thousands of good stores.
    """

    def __init__(self, capacity: int = 10_000, problems: int = 50) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._problems: deque[Event] = deque(maxlen=problems)
        self._lock = threading.Lock()
        self._seq = 0

    def emit(self, kind: str, level: str, message: str, data: dict | None = None) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(self._seq, now_iso(), kind, level, message, data or {})
            self._events.append(event)
            if kind == "transaction" and level in PROBLEM_LEVELS:
                self._problems.append(event)
        return event

    def since(
        self, after: int, limit: int = 1000, kinds: frozenset[str] | None = None
    ) -> EventBatch:
        """Events with seq > after (oldest first, only `kinds` if given), and how many
        fell out of the ring before being read."""
        with self._lock:
            seq = self._seq
            if not self._events:
                return EventBatch(seq=seq)
            oldest = self._events[0].seq
            start = max(0, after - oldest + 1)
            if kinds is None:
                picked = list(islice(self._events, start, start + limit))
            else:
                wanted = (e for e in islice(self._events, start, None) if e.kind in kinds)
                picked = list(islice(wanted, limit))
        dropped = max(0, oldest - after - 1)
        if kinds is not None and len(picked) == limit:
            seq = picked[-1].seq  # more may follow: the caller asks again from here
        return EventBatch(seq=seq, events=picked, dropped=dropped)

    def problems(self, limit: int) -> list[Event]:
        """The newest failed or refused transactions, newest first."""
        with self._lock:
            return list(reversed(self._problems))[:limit]


class RingLogHandler(logging.Handler):
    """Feeds Python logging (ours and pynetdicom's) into the event stream."""

    def __init__(self, ring: EventRing, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._ring = ring

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            self._ring.emit("log", record.levelname, message, {"logger": record.name})
        except Exception:  # logging must never break the caller
            self.handleError(record)
