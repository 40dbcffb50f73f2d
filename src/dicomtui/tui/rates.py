"""Receive rate over the last minutes, drawn from the service's own per-second counts
(StatusSnapshot.received_by_second), so every console shows the same history."""

from __future__ import annotations


class RateHistory:
    """The last poll's [second, images] pairs; answers per-bucket rates for a sparkline."""

    def __init__(self, window: float = 300.0, buckets: int = 60) -> None:
        self.window, self.buckets = window, buckets
        self._seconds: list[tuple[int, int]] = []

    def take(self, seconds: list[list[int]]) -> None:
        """The service's counts, replacing the last poll's."""
        self._seconds = [(int(s), int(n)) for s, n in seconds]

    def series(self, now: float) -> list[float]:
        """Images per second in each bucket of the window, oldest first."""
        width = self.window / self.buckets
        start = now - self.window
        counts = [0.0] * self.buckets
        for second, n in self._seconds:
            if start < second + 1 <= now + 1:
                index = min(self.buckets - 1, max(0, int((second - start) / width)))
                counts[index] += n
        return [c / width for c in counts]

    def current(self, now: float, span: float = 5.0) -> float:
        """Images per second over the last `span` seconds (the one in progress left
        out: it has only begun)."""
        recent = sum(n for second, n in self._seconds if now - span - 1 < second < int(now))
        return recent / span
