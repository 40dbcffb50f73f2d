"""Images received per second over the last minutes, kept by the service.

The console draws its rate and sparkline from this, so a console that attaches (or
opens again) sees the history since the service started, not since it looked; the
stores of the last minutes are read back from the log at start, so a restart keeps it.
"""

from __future__ import annotations

from collections import deque

WINDOW = 300  # seconds kept: the sparkline's five minutes


class RateRing:
    """[second, count] for each second that received something, oldest first; bounded
    by WINDOW seconds (at most WINDOW entries). Not thread-safe: its owner locks."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._seconds: deque[list[int]] = deque()

    def add(self, when: float, n: int = 1) -> None:
        """Count `n` images at `when` (epoch seconds); an older second than the newest
        (a seed, or a clock step back) counts in its place when still in the window."""
        second = int(when)
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += n
        elif not self._seconds or self._seconds[-1][0] < second:
            self._seconds.append([second, n])
        else:
            self._insert(second, n)
        self._trim(max(second, self._seconds[-1][0]))

    def _insert(self, second: int, n: int) -> None:
        for entry in self._seconds:
            if entry[0] == second:
                entry[1] += n
                return
        ordered = sorted([*self._seconds, [second, n]])
        self._seconds = deque(ordered)

    def _trim(self, newest: int) -> None:
        while self._seconds and self._seconds[0][0] <= newest - self.window:
            self._seconds.popleft()

    def samples(self, now: float) -> list[list[int]]:
        """The seconds of the last window before `now`, as [second, count] copies."""
        self._trim(int(now))
        return [list(entry) for entry in self._seconds]
