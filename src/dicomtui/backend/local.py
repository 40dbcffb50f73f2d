"""LocalBackend: the engine in this process, behind the same seam as the service."""

from __future__ import annotations

from datetime import datetime

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.models import (EventBatch, SettingValue, StatusSnapshot,
                                     TransactionFilter)
from dicomtui.service.engine import Engine, EngineError
from dicomtui.settings import SettingError


class LocalBackend:
    """Adapts an open Engine to the Backend protocol; `mode` says who runs it."""

    def __init__(self, engine: Engine, mode: str = "local") -> None:
        self.engine = engine
        self.mode = mode

    def status(self) -> StatusSnapshot:
        return self.engine.snapshot(self.mode)

    def start(self) -> StatusSnapshot:
        return self._do(self.engine.start)

    def stop(self) -> StatusSnapshot:
        return self._do(self.engine.stop)

    def restart(self) -> StatusSnapshot:
        return self._do(self.engine.restart)

    def _do(self, action) -> StatusSnapshot:
        try:
            action()
        except EngineError as exc:
            raise BackendError(str(exc)) from None
        return self.status()

    def events(self, after: int = 0, limit: int = 1000,
               kinds: list[str] | None = None) -> EventBatch:
        return self.engine.ring.since(after, limit, frozenset(kinds) if kinds else None)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        try:
            since = datetime.fromisoformat(flt.since) if flt.since else None
        except ValueError:
            raise InvalidRequest(f"since: not an ISO 8601 time: {flt.since!r}") from None
        if since is not None and since.tzinfo is None:
            since = since.astimezone()
        return self.engine.txlog.query(
            types=flt.types, outcomes=flt.outcomes, statuses=flt.statuses, ae=flt.ae,
            since=since, after_id=flt.after_id, before_id=flt.before_id, text=flt.text,
            limit=flt.limit)

    def settings(self) -> list[SettingValue]:
        return self.engine.setting_values()

    def set_setting(self, name: str, value: str) -> SettingValue:
        return self._change(self.engine.set_setting, name, value)

    def unset_setting(self, name: str) -> SettingValue:
        return self._change(lambda n, _v: self.engine.unset_setting(n), name, None)

    def _change(self, action, name: str, value) -> SettingValue:
        try:
            action(name, value)
        except SettingError as exc:
            raise InvalidRequest(str(exc)) from None
        except EngineError as exc:
            raise BackendError(str(exc)) from None
        return next(v for v in self.settings() if v.name == name)

    def close(self) -> None:
        self.engine.close()
