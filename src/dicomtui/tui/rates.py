"""Receive rate over the last minutes, from the counters each poll brings."""

from __future__ import annotations

from collections import deque


class RateHistory:
    """Samples of a growing total; answers per-bucket rates for a sparkline."""

    def __init__(self, window: float = 300.0, buckets: int = 60) -> None:
        self.window, self.buckets = window, buckets
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, when: float, total: int) -> None:
        """Record the total at `when`; a total that went down (restart) starts afresh."""
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()
        if self._samples and when <= self._samples[-1][0]:
            return
        self._samples.append((when, total))
        while len(self._samples) > 2 and self._samples[1][0] < when - self.window:
            self._samples.popleft()

    def series(self, now: float) -> list[float]:
        """Items per second in each bucket of the window, oldest first."""
        width = self.window / self.buckets
        start = now - self.window
        counts = [0.0] * self.buckets
        samples = list(self._samples)
        for (_t0, n0), (t1, n1) in zip(samples, samples[1:], strict=False):
            if t1 <= start or n1 == n0:
                continue
            index = min(self.buckets - 1, max(0, int((t1 - start) / width)))
            counts[index] += n1 - n0
        return [c / width for c in counts]

    def current(self, now: float, span: float = 5.0) -> float:
        """Items per second over the last `span` seconds of samples."""
        recent = [(t, n) for t, n in self._samples if t >= now - span]
        if len(recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
