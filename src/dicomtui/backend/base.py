"""The Backend seam: the whole surface a front end (CLI, console, control API) may use."""

from __future__ import annotations

from typing import Protocol

from dicomtui.models import (EventBatch, SettingValue, StatusSnapshot,
                                     TransactionFilter)


class BackendError(RuntimeError):
    """An operation the engine refused or could not do; the message is for people."""


class InvalidRequest(BackendError):
    """The request itself was wrong (bad setting value, unknown name): a usage error."""


class Backend(Protocol):
    """Implemented by LocalBackend (engine in this process) and RemoteBackend (service)."""

    mode: str  # "local" | "service"

    def status(self) -> StatusSnapshot: ...

    def start(self) -> StatusSnapshot: ...

    def stop(self) -> StatusSnapshot: ...

    def restart(self) -> StatusSnapshot: ...

    def events(self, after: int = 0, limit: int = 1000,
               kinds: list[str] | None = None) -> EventBatch: ...

    def transactions(self, flt: TransactionFilter) -> list[dict]: ...

    def settings(self) -> list[SettingValue]: ...

    def set_setting(self, name: str, value: str) -> SettingValue: ...

    def unset_setting(self, name: str) -> SettingValue: ...

    def close(self) -> None: ...
