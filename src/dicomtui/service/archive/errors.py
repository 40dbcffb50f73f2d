"""The archive's errors, shared by its components and translated by the Backend."""

from __future__ import annotations


class ArchiveError(ValueError):
    """A request about the archive that cannot be done as asked; says why."""


class ArchiveMissing(LookupError):
    """No such study, series or destination."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
