"""A small TinyDB table kept whole in memory and saved as one snapshot per change.

For lists people edit by hand (facilities, allowed callers): the newest snapshot
replaces the table on the DB writer thread. A saved document that no longer parses is
kept as it is (saved back with every snapshot) and reported; what it protects decides
what else happens (the access lists keep the receiver stopped).
"""

from __future__ import annotations

from typing import Any

from tinydb import TinyDB


class SnapshotTable:
    """Subclasses set TABLE and WHAT and implement _parse(doc) and _keep(item)."""

    TABLE = ""
    WHAT = "record"

    def __init__(self) -> None:
        self._db: TinyDB | None = None
        self.unreadable: list[dict] = []  # saved back as they were: never dropped

    def load(self, db) -> list[str]:
        """Parse every saved document; the problems, one line each."""
        self._db = db
        problems = []
        for doc in db.table(self.TABLE).all():
            try:
                self._keep(self._parse(doc))
            except (KeyError, TypeError, ValueError) as exc:
                self.unreadable.append(dict(doc))
                problems.append(
                    f"a saved {self.WHAT} in {self.TABLE} cannot be read: "
                    f"{dict(doc)!r} ({exc})"
                )
        return problems

    def write_batch(self, batch: list[list[dict]]) -> None:
        """Writer-thread sink: the newest snapshot replaces the table."""
        assert self._db is not None, "load() first"
        table = self._db.table(self.TABLE)
        table.truncate()
        table.insert_multiple(batch[-1] + self.unreadable)

    def _parse(self, doc: dict) -> Any:
        raise NotImplementedError

    def _keep(self, item: Any) -> None:
        raise NotImplementedError
