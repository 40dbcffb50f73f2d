"""Stored settings in dicomtui.json, layered under the command line and environment."""

from __future__ import annotations

from typing import Any, Mapping

from dicomtui.models import SettingValue
from dicomtui.settings import (SPEC_BY_NAME, SPECS, Resolved, SettingError, display_value,
                               parse_value, resolve)

TABLE = "settings"


class SettingsStore:
    """Holds stored values and the effective settings; persists through the DB writer."""

    def __init__(self, cli: Mapping[str, Any], environ: Mapping[str, str] | None) -> None:
        self._cli, self._environ = dict(cli), environ
        self.stored: dict[str, Any] = {}
        self.current: Resolved = resolve(self._cli, environ, {})
        self._db = None

    def load(self, db) -> list[str]:
        """Read stored values; a bad one is ignored and reported, never fatal."""
        self._db = db
        docs = db.table(TABLE).all()
        raw = dict(docs[0]) if docs else {}
        problems = []
        for name, value in raw.items():
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                continue
            try:
                self.stored[name] = parse_value(spec, value)
            except SettingError as exc:
                problems.append(f"stored setting ignored: {exc}; fix it with "
                                f"`dicomtui config set {name} VALUE` or `config unset {name}`")
        self.current = resolve(self._cli, self._environ, self.stored)
        return problems

    def set(self, name: str, raw: Any, writer) -> None:
        spec = _spec(name)
        value = parse_value(spec, raw)
        self.stored[name] = value
        self._save(writer)

    def unset(self, name: str, writer) -> None:
        _spec(name)
        self.stored.pop(name, None)
        self._save(writer)

    def _save(self, writer) -> None:
        self.current = resolve(self._cli, self._environ, self.stored)
        writer.put("settings", dict(self.stored))

    def write_batch(self, batch: list[dict]) -> None:
        """Writer-thread sink: the newest snapshot of stored values wins."""
        table = self._db.table(TABLE)
        table.truncate()
        table.insert(batch[-1])

    def values(self, running: Resolved | None) -> list[SettingValue]:
        """Effective values with their source; `pending_restart` where running differs."""
        result = []
        for spec in SPECS:
            value = self.current.values[spec.name]
            pending = (running is not None and spec.restart
                       and running.values[spec.name] != value)
            result.append(SettingValue(
                spec.name, display_value(spec, value), self.current.sources[spec.name],
                display_value(spec, spec.default), spec.help, spec.restart, pending))
        return result


def _spec(name: str):
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        raise SettingError(name, "unknown setting (see `dicomtui config` for the list)",
                           name)
    return spec
