"""RemoteBackend: the Backend of a running `dicomtui serve`, over its unix socket."""

from __future__ import annotations

from pathlib import Path

import httpx

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.models import (EventBatch, SettingValue, StatusSnapshot,
                                     TransactionFilter, from_dict, to_dict)


class RemoteBackend:
    """Talks JSON to the control API; errors come back as BackendError/InvalidRequest."""

    mode = "service"

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.path = Path(socket_path)
        self._client = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.path)),
                                    base_url="http://dicomtui", timeout=timeout)

    def _call(self, method: str, url: str, **kwargs):
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach the dicomtui service at {self.path}: "
                               f"{exc or type(exc).__name__}") from None
        if response.status_code == 200:
            return response.json()
        message = _error_text(response)
        if response.status_code in (400, 404):
            raise InvalidRequest(message)
        raise BackendError(message)

    def status(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("GET", "/status"))

    def start(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/start"))

    def stop(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/stop"))

    def restart(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/restart"))

    def events(self, after: int = 0, limit: int = 1000) -> EventBatch:
        data = self._call("GET", "/events", params={"after": after, "limit": limit})
        return from_dict(EventBatch, data)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        return self._call("POST", "/transactions", json=to_dict(flt))["transactions"]

    def settings(self) -> list[SettingValue]:
        return [from_dict(SettingValue, v) for v in self._call("GET", "/settings")["settings"]]

    def set_setting(self, name: str, value: str) -> SettingValue:
        return from_dict(SettingValue, self._call("PUT", f"/settings/{name}",
                                                  json={"value": value}))

    def unset_setting(self, name: str) -> SettingValue:
        return from_dict(SettingValue, self._call("DELETE", f"/settings/{name}"))

    def close(self) -> None:
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return f"service answered HTTP {response.status_code}"


def probe(socket_path: Path, timeout: float = 1.0) -> RemoteBackend | None:
    """A RemoteBackend if a live service answers on `socket_path`, else None (fast)."""
    path = Path(socket_path)
    if not path.exists():
        return None
    backend = RemoteBackend(path, timeout=timeout)
    try:
        backend.status()
    except BackendError:
        backend.close()
        return None
    backend._client.timeout = httpx.Timeout(30.0)
    return backend
