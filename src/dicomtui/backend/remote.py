"""RemoteBackend: the Backend of a running `dicomtui serve`, over its unix socket."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.models import (
    AllowedCaller,
    AnonExport,
    AnonSubject,
    CleanupPlan,
    Destination,
    EventBatch,
    Facility,
    Job,
    PacsConfig,
    SendReport,
    SeriesRow,
    SettingValue,
    StatusSnapshot,
    StorageReport,
    StudyPage,
    StudyQuery,
    TransactionFilter,
    UploadItem,
    from_dict,
    to_dict,
)

BASE_URL = "http://dicomtui"  # the host name is a placeholder: the socket is the address

ORIGINALS_PER_CALL = 500  # restore asks for this many instances per request


class RemoteBackend:
    """Talks JSON to the control API; failures come back as BackendError/InvalidRequest."""

    mode = "service"

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.path = Path(socket_path)
        # Plain HTTP on a local socket: no TLS, so skip loading CA certificates
        # (~30 ms per client, and probe() builds one each time it looks).
        transport = httpx.HTTPTransport(uds=str(self.path), verify=False)
        self._client = httpx.Client(transport=transport, base_url=BASE_URL, timeout=timeout)

    def status(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("GET", "/status"))

    def start(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/start"))

    def stop(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/stop"))

    def restart(self) -> StatusSnapshot:
        return from_dict(StatusSnapshot, self._call("POST", "/restart"))

    def events(
        self, after: int = 0, limit: int = 1000, kinds: list[str] | None = None
    ) -> EventBatch:
        params: dict[str, int | str] = {"after": after, "limit": limit}
        if kinds:
            params["kinds"] = ",".join(kinds)
        data = self._call("GET", "/events", params=params)
        return from_dict(EventBatch, data)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        return self._call("POST", "/transactions", json=to_dict(flt))["transactions"]

    def settings(self) -> list[SettingValue]:
        return [
            from_dict(SettingValue, v) for v in self._call("GET", "/settings")["settings"]
        ]

    def set_setting(self, name: str, value: str) -> SettingValue:
        data = self._call("PUT", _setting_url(name), json={"value": value})
        return from_dict(SettingValue, data)

    def unset_setting(self, name: str) -> SettingValue:
        return from_dict(SettingValue, self._call("DELETE", _setting_url(name)))

    def facilities(self) -> list[Facility]:
        return [
            from_dict(Facility, f) for f in self._call("GET", "/facilities")["facilities"]
        ]

    def add_facility(
        self,
        name: str,
        port: int | None = None,
        ae_title: str | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        body = {
            "name": name,
            "port": port,
            "ae_title": ae_title,
            "calling_aes": calling_aes,
            "anonymize": anonymize,
        }
        return from_dict(Facility, self._call("POST", "/facilities", json=body))

    def update_facility(
        self,
        name: str,
        ae_title: str | None = None,
        port: int | None = None,
        calling_aes: list[str] | None = None,
        anonymize: str | None = None,
    ) -> Facility:
        body = {
            "ae_title": ae_title,
            "port": port,
            "calling_aes": calling_aes,
            "anonymize": anonymize,
        }
        return from_dict(Facility, self._call("PATCH", _url("facilities", name), json=body))

    def remove_facility(self, name: str) -> Facility:
        return from_dict(Facility, self._call("DELETE", _url("facilities", name)))

    def anon_subjects(self, search: str = "", reveal: bool = False) -> list[AnonSubject]:
        body = {"search": search, "reveal": reveal}
        answer = self._call("POST", "/anonymization/subjects", json=body)
        return [from_dict(AnonSubject, s) for s in answer["subjects"]]

    def export_anonymization(self, path: str) -> AnonExport:
        answer = self._call("POST", "/anonymization/export", json={"path": path})
        return from_dict(AnonExport, answer)

    def anon_originals(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        answers = []
        for start in range(0, len(keys), ORIGINALS_PER_CALL):
            chunk = [list(k) for k in keys[start : start + ORIGINALS_PER_CALL]]
            body = self._call("POST", "/anonymization/originals", json={"keys": chunk})
            answers += body["answers"]
        return answers

    def uploads(self) -> list[UploadItem]:
        return [from_dict(UploadItem, i) for i in self._call("GET", "/uploads")["uploads"]]

    def upload(self, path: str) -> UploadItem:
        return from_dict(UploadItem, self._call("POST", "/uploads", json={"path": path}))

    def retry_upload(self, item_id: int) -> UploadItem:
        return from_dict(UploadItem, self._call("POST", f"/uploads/{int(item_id)}/retry"))

    def cancel_upload(self, item_id: int) -> UploadItem:
        return from_dict(UploadItem, self._call("POST", f"/uploads/{int(item_id)}/cancel"))

    def pacs_config(self) -> PacsConfig:
        return from_dict(PacsConfig, self._call("GET", "/pacs-config"))

    def callers(self) -> list[AllowedCaller]:
        return [
            from_dict(AllowedCaller, c) for c in self._call("GET", "/callers")["callers"]
        ]

    def allow_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        body = {"ip": ip, "description": description}
        return from_dict(
            AllowedCaller, self._call("PUT", _url("callers", ae_title), json=body)
        )

    def update_caller(
        self, ae_title: str, ip: str | None = None, description: str | None = None
    ) -> AllowedCaller:
        body = {"ip": ip, "description": description}
        return from_dict(
            AllowedCaller, self._call("PATCH", _url("callers", ae_title), json=body)
        )

    def deny_caller(self, ae_title: str) -> AllowedCaller:
        return from_dict(
            AllowedCaller, self._call("POST", _url("callers", ae_title) + "/deny")
        )

    def remove_caller(self, ae_title: str) -> AllowedCaller:
        return from_dict(AllowedCaller, self._call("DELETE", _url("callers", ae_title)))

    def studies(self, query: StudyQuery) -> StudyPage:
        return from_dict(StudyPage, self._call("POST", "/studies", json=to_dict(query)))

    def series(self, study_uid: str) -> list[SeriesRow]:
        data = self._call("GET", _url("studies", study_uid) + "/series")
        return [from_dict(SeriesRow, s) for s in data["series"]]

    def destinations(self) -> list[Destination]:
        return [
            from_dict(Destination, d)
            for d in self._call("GET", "/destinations")["destinations"]
        ]

    def add_destination(
        self, ae_title: str, host: str, port: int, description: str = ""
    ) -> Destination:
        try:
            number = int(port)
        except (TypeError, ValueError):
            raise InvalidRequest(f"port {port!r} is not a number") from None
        body = {"host": host, "port": number, "description": description}
        return from_dict(
            Destination, self._call("PUT", _url("destinations", ae_title), json=body)
        )

    def remove_destination(self, ae_title: str) -> Destination:
        return from_dict(Destination, self._call("DELETE", _url("destinations", ae_title)))

    def send_study(self, study_uid: str, ae_title: str) -> Job:
        return from_dict(
            Job,
            self._call(
                "POST", _url("studies", study_uid) + "/send", json={"ae_title": ae_title}
            ),
        )

    def record_send(self, report: SendReport) -> None:
        self._call("POST", "/sends", json=to_dict(report))

    def storage_report(self) -> StorageReport:
        return from_dict(StorageReport, self._call("GET", "/storage", timeout=60))

    def cleanup_plan(self, older_than_days: float | None = None) -> CleanupPlan:
        return from_dict(
            CleanupPlan,
            self._call("POST", "/cleanup/plan", json={"older_than_days": older_than_days}),
        )

    def start_cleanup(self, older_than_days: float | None = None) -> Job:
        return from_dict(
            Job, self._call("POST", "/cleanup", json={"older_than_days": older_than_days})
        )

    def start_reindex(self) -> Job:
        return from_dict(Job, self._call("POST", "/reindex"))

    def jobs(self) -> list[Job]:
        return [from_dict(Job, j) for j in self._call("GET", "/jobs")["jobs"]]

    def job(self, job_id: int) -> Job:
        return from_dict(Job, self._call("GET", f"/jobs/{int(job_id)}"))

    def close(self) -> None:
        self._client.close()

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop the service process itself, as systemd would (SIGTERM: in-flight stores
        finish, the DB is flushed), and return once it has exited.

        Only for a service a console started (StatusSnapshot.started_by): the console
        runs as the user that started it, on this machine (the socket is local)."""
        pid = self.status().pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError:
            raise BackendError(f"not allowed to stop the service (pid {pid})") from None
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise BackendError(
                    f"the service (pid {pid}) is still stopping after {timeout:.0f} s"
                )
            time.sleep(0.1)

    def _call(self, method: str, url: str, **kwargs) -> Any:
        """One request; the decoded JSON answer, or the matching exception."""
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise BackendError(
                f"cannot reach the dicomtui service at {self.path}: {reason}"
            ) from None
        return _payload(response)


def _alive(pid: int) -> bool:
    """Whether the process runs (an exited child waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _setting_url(name: str) -> str:
    """The setting's URL; any character of the name survives the trip."""
    return _url("settings", name)


def _url(collection: str, name: str) -> str:
    """/collection/name with any character of the name (spaces, slashes) kept."""
    return f"/{collection}/" + quote(name, safe="")


def _payload(response: httpx.Response) -> Any:
    """The JSON of a 200 answer; 400 is InvalidRequest, any other status BackendError."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code == 200 and data is not None:
        return data
    message = _message(response, data)
    if response.status_code == 400:
        raise InvalidRequest(message)
    if isinstance(data, dict) and data.get("kind") == "not_found":
        raise NotFound(message)
    raise BackendError(message)


def _message(response: httpx.Response, data: Any) -> str:
    """The service's one-line error, or a description of what came back instead."""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = data["error"]
        if response.status_code == 404 and data.get("kind") != "not_found":
            message += " (is the service running a different dicomtui version?)"
        return message
    return f"the dicomtui service answered HTTP {response.status_code} without a JSON body"


def probe(socket_path: Path, timeout: float = 1.0) -> RemoteBackend | None:
    """A RemoteBackend if a live service answers GET /status on `socket_path`, else None.

    Quick when nobody is there: a missing file costs one stat, a stale socket one refused
    connect; only a process that accepts and then stays silent costs `timeout`.
    """
    path = Path(socket_path)
    if not path.exists():
        return None
    backend = RemoteBackend(path)
    try:
        backend._call("GET", "/status", timeout=timeout)
    except BackendError:
        backend.close()
        return None
    return backend
