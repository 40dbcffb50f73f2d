"""Stored settings in dicomtui.json, layered under the command line and environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tinydb import TinyDB

from dicomtui.db.storage import flush_database
from dicomtui.db.writer import DBWriter
from dicomtui.models import SettingValue
from dicomtui.settings import (
    SPEC_BY_NAME,
    SPECS,
    Resolved,
    SettingError,
    display_value,
    parse_value,
    resolve,
)

TABLE = "settings"


class SettingsStore:
    """Holds stored values and the effective settings; persists through the DB writer."""

    def __init__(
        self,
        db: TinyDB,
        writer: DBWriter,
        cli: Mapping[str, Any],
        environ: Mapping[str, str] | None,
    ) -> None:
        self._db, self._writer = db, writer
        self._cli, self._environ = dict(cli), environ
        self.stored: dict[str, Any] = {}
        self._bad: dict[str, str] = {}  # setting -> why its stored value was not used
        self._bad_raw: dict[str, Any] = {}  # kept as saved until fixed, never dropped
        self._load()
        self.current: Resolved = resolve(self._cli, self._environ, self.stored)
        writer.register("settings", self.write_batch, lambda: flush_database(db))

    def get(self) -> Resolved:
        """The effective settings now (components call this; never keep the result)."""
        return self.current

    @property
    def problems(self) -> list[str]:
        """Stored values that could not be used; the receiver stays stopped until each
        is set or unset (a default in their place could open a door)."""
        return list(self._bad.values())

    def _load(self) -> None:
        """Read stored values; a bad one is kept out and reported (see problems)."""
        docs = self._db.table(TABLE).all()
        raw = dict(docs[0]) if docs else {}
        for name, value in raw.items():
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                continue
            try:
                self.stored[name] = parse_value(spec, value)
            except SettingError as exc:
                self._bad_raw[name] = value
                self._bad[name] = (
                    f"the stored setting {name} cannot be used ({exc}), so the receiver "
                    f"does not start: fix it with `dicomtui config set {name} VALUE` or "
                    f"`dicomtui config unset {name}`"
                )

    def set(self, name: str, raw: Any) -> None:
        spec = _spec(name)
        value = parse_value(spec, raw)
        self.stored[name] = value
        self._bad.pop(name, None)
        self._bad_raw.pop(name, None)
        self._save()

    def unset(self, name: str) -> None:
        _spec(name)
        self.stored.pop(name, None)
        self._bad.pop(name, None)
        self._bad_raw.pop(name, None)
        self._save()

    def _save(self) -> None:
        self.current = resolve(self._cli, self._environ, self.stored)
        self._writer.put("settings", {**self._bad_raw, **self.stored})

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
            pending = (
                running is not None and spec.restart and running.values[spec.name] != value
            )
            result.append(
                SettingValue(
                    spec.name,
                    display_value(spec, value),
                    self.current.sources[spec.name],
                    display_value(spec, spec.default),
                    spec.help,
                    spec.restart,
                    pending,
                )
            )
        return result


def _spec(name: str):
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        raise SettingError(
            name, "unknown setting (see `dicomtui config` for the list)", name
        )
    return spec
