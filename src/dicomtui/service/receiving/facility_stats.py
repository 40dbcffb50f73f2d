"""Per-facility activity today: instances, distinct studies, last seen (in memory).

Counted as transactions happen, under the engine's stats lock; a new day starts from
zero. Not saved separately: when a receiver starts, today's store records in the
transaction log are counted back in (Engine._seed_facility_stats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass
class _Today:
    instances: int = 0
    studies: set = field(default_factory=set)
    last_seen: str | None = None


class FacilityStats:
    """Counts by facility name; the caller serializes access (the engine's stats lock)."""

    MAX_STUDIES = 100_000  # a bound on memory, far above any site's day

    def __init__(self) -> None:
        self._day = date.today()
        self._by_name: dict[str, _Today] = {}

    def _entry(self, name: str) -> _Today:
        if date.today() != self._day:
            self._day, self._by_name = date.today(), {}
        return self._by_name.setdefault(name, _Today())

    def seen(self, name: str, when: str) -> None:
        self._entry(name).last_seen = when

    def stored(self, name: str, study_uid: str, when: str) -> None:
        entry = self._entry(name)
        entry.instances += 1
        entry.last_seen = when
        if study_uid and len(entry.studies) < self.MAX_STUDIES:
            entry.studies.add(study_uid)

    def today(self, name: str) -> tuple[int, int, str | None]:
        """(instances, studies, last seen) for `name` today."""
        entry = self._entry(name)
        return entry.instances, len(entry.studies), entry.last_seen

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)
