"""The control API over a real unix socket: ControlServer <-> RemoteBackend.

The server serves `FakeBackend`, a test double of the Backend protocol, so every route
and every error path can be driven deterministically without an engine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.backend.remote import RemoteBackend, probe
from dicomtui.control.server import ControlServer
from dicomtui.models import (AssociationInfo, Counters, Event, EventBatch, Listener,
                             SettingValue, StatusSnapshot, TransactionFilter)

DEFAULTS = {"port": "11112", "ae_title": "DICOMTUI"}


class FakeBackend:
    """A Backend double: settings in a dict, canned status, events and transactions."""

    mode = "service"

    def __init__(self) -> None:
        self.state = "running"
        self.stored: dict[str, str] = {}
        self.busy = False  # refuse to stop, like associations in progress
        self.broken = False  # restart raises a plain RuntimeError (a bug: 500)
        self.filters: list[TransactionFilter] = []
        self.kinds: list = []
        self.gate: threading.Event | None = None  # status() waits on it when set
        self.entered = threading.Event()

    def status(self) -> StatusSnapshot:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        return StatusSnapshot(
            state=self.state, mode=self.mode, pid=4242, version="test", data_dir="/data",
            storage_dir="/data/storage", started_at="2024-05-01T10:00:00+00:00",
            uptime_s=12.5, listeners=[Listener("DICOMTUI", "0.0.0.0", 11112, "listening")],
            associations=[AssociationInfo(7, "MODALITY", "DICOMTUI", "10.0.0.5:4000",
                                          "2024-05-01T10:00:10+00:00", 3, 1024)],
            counters=Counters(received=3, bytes=1024, echoes=1), today=Counters(received=3),
            last_errors=[_event(9, "ERROR")], warnings=["disk 91% full"])

    def start(self) -> StatusSnapshot:
        self.state = "running"
        return self.status()

    def stop(self) -> StatusSnapshot:
        if self.busy:
            raise BackendError("refusing to stop: 1 association in progress")
        self.state = "stopped"
        return self.status()

    def restart(self) -> StatusSnapshot:
        if self.broken:
            raise RuntimeError("boom\nsecret second line")
        return self.start()

    def events(self, after: int = 0, limit: int = 1000, kinds=None) -> EventBatch:
        self.kinds.append(kinds)
        events = [_event(seq, "INFO") for seq in range(after + 1, 11)][:limit]
        return EventBatch(seq=10, events=events, dropped=after // 2)

    def transactions(self, flt: TransactionFilter) -> list[dict]:
        self.filters.append(flt)
        return [{"id": 2, "type": "store", "outcome": "ok", "status": 0, "ae": "MOD"}]

    def settings(self) -> list[SettingValue]:
        return [self._value(name) for name in DEFAULTS]

    def set_setting(self, name: str, value: str) -> SettingValue:
        self._known(name)
        if name == "port" and not (value.isdigit() and 0 < int(value) < 65536):
            raise InvalidRequest(f"port: must be an integer 1-65535, got {value!r}")
        self.stored[name] = value
        return self._value(name)

    def unset_setting(self, name: str) -> SettingValue:
        self._known(name)
        self.stored.pop(name, None)
        return self._value(name)

    def close(self) -> None:
        pass

    def _known(self, name: str) -> None:
        if name not in DEFAULTS:
            raise InvalidRequest(f"unknown setting {name!r}")

    def _value(self, name: str) -> SettingValue:
        stored = name in self.stored
        return SettingValue(name, self.stored.get(name, DEFAULTS[name]),
                            "stored" if stored else "default", DEFAULTS[name],
                            f"help for {name}", restart_required=True,
                            pending_restart=stored)


def _event(seq: int, level: str) -> Event:
    return Event(seq, "2024-05-01T10:00:00+00:00", "log", level, f"event {seq}",
                 {"seq": seq, "nested": {"ok": True}})


@pytest.fixture
def sock_path(tmp_path) -> Path:
    return tmp_path / "dicomtui.sock"


@pytest.fixture
def api(sock_path):
    """A running ControlServer around a FakeBackend, and a RemoteBackend talking to it."""
    fake = FakeBackend()
    server = ControlServer(fake, sock_path)
    server.start()
    remote = RemoteBackend(sock_path)
    yield fake, server, remote
    if fake.gate is not None:
        fake.gate.set()
    remote.close()
    server.stop()


@pytest.fixture
def raw(sock_path, api):
    """A bare httpx client on the socket, for requests RemoteBackend never makes."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock_path)),
                      base_url="http://dicomtui") as client:
        yield client


def _stale_socket(path: Path) -> None:
    """What a crashed service leaves: a socket file nobody listens on."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


# --- round trips -------------------------------------------------------------------


def test_status_and_lifecycle_round_trip(api):
    fake, _server, remote = api
    assert remote.status() == fake.status()
    assert remote.stop() == fake.status() and fake.state == "stopped"
    assert remote.start().state == "running"
    assert remote.restart() == fake.status()


def test_events_round_trip_with_query_arguments(api):
    fake, _server, remote = api
    assert remote.events(after=4, limit=3) == fake.events(4, 3)
    assert remote.events() == fake.events()
    remote.events(kinds=["log", "state"])
    assert fake.kinds[-1] == ["log", "state"]


def test_transactions_send_the_whole_filter(api):
    fake, _server, remote = api
    flt = TransactionFilter(types=["store"], outcomes=["ok"], statuses=[0, 0xA700],
                            ae="MOD", since="2024-05-01T00:00:00", after_id=1, limit=5)
    assert remote.transactions(flt) == fake.transactions(flt)
    assert fake.filters[0] == flt


def test_settings_round_trip(api):
    fake, _server, remote = api
    assert remote.settings() == fake.settings()
    changed = remote.set_setting("port", "104")
    assert changed == fake._value("port") and changed.source == "stored"
    assert remote.unset_setting("port").source == "default"
    assert fake.stored == {}


def test_setting_names_survive_any_characters(api):
    _fake, _server, remote = api
    name = "we ird/na?me#%2F"
    with pytest.raises(InvalidRequest) as caught:
        remote.set_setting(name, "x")
    assert str(caught.value) == f"unknown setting {name!r}"
    with pytest.raises(InvalidRequest, match="unknown setting ''"):
        remote.unset_setting("")


def test_a_slow_request_does_not_block_others(api, sock_path):
    fake, _server, remote = api
    fake.gate = threading.Event()
    slow = RemoteBackend(sock_path)
    result = []
    worker = threading.Thread(target=lambda: result.append(slow.status()))
    worker.start()
    assert fake.entered.wait(10)  # the slow request is inside the backend now
    assert remote.settings() == fake.settings()
    fake.gate.set()
    worker.join(10)
    slow.close()
    assert result and result[0].state == "running"


# --- error mapping -----------------------------------------------------------------


def test_invalid_value_is_invalid_request(api):
    _fake, _server, remote = api
    with pytest.raises(InvalidRequest, match="port: must be an integer"):
        remote.set_setting("port", "70000")


def test_refused_operation_is_backend_error(api):
    fake, _server, remote = api
    fake.busy = True
    with pytest.raises(BackendError, match="refusing to stop") as caught:
        remote.stop()
    assert not isinstance(caught.value, InvalidRequest)


def test_a_bug_is_a_one_line_500_and_a_logged_traceback(api, raw, caplog):
    fake, _server, remote = api
    fake.broken = True
    caplog.set_level(logging.ERROR, logger="dicomtui.control")
    with pytest.raises(BackendError) as caught:
        remote.restart()
    assert "RuntimeError: boom" in str(caught.value)
    assert "secret" not in str(caught.value)
    answer = raw.post("/restart")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error in the service: RuntimeError: boom",
                             "kind": "internal"}
    logged = [r for r in caplog.records if r.name == "dicomtui.control"]
    assert logged and all(r.exc_info for r in logged)


@pytest.mark.parametrize("method, url, status", [
    ("GET", "/nope", 404), ("GET", "/start", 404), ("POST", "/status", 404),
    ("PUT", "/settings", 404), ("GET", "/settings/port/extra", 404),
    ("GET", "/events?after=x", 400), ("GET", "/events?limit=", 200),
])
def test_routes_and_query_arguments(raw, method, url, status):
    answer = raw.request(method, url)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    if status != 200:
        assert answer.json()["kind"] == "invalid" and answer.json()["error"]


@pytest.mark.parametrize("method, url, body, needle", [
    ("POST", "/transactions", b"{not json", "not JSON"),
    ("POST", "/transactions", b"[1, 2]", "JSON object"),
    ("PUT", "/settings/port", b'{"value": 104}', '"value" as a string'),
    ("PUT", "/settings/port", b"", '"value" as a string'),
])
def test_bad_bodies_are_400(raw, method, url, body, needle):
    answer = raw.request(method, url, content=body)
    assert answer.status_code == 400
    assert answer.json()["kind"] == "invalid" and needle in answer.json()["error"]


def _exchange(path: Path, request: bytes) -> tuple[int, dict]:
    """Send raw bytes, read until the server closes; (status, JSON body)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(request)
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("request_bytes, status", [
    (b"OPTIONS /status HTTP/1.1\r\n\r\n", 501),
    (b"POST /transactions HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"POST /transactions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /transactions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nX: " + b"x" * 70000 + b"\r\n\r\n", 431),
])
def test_protocol_errors_answer_json_and_close(api, sock_path, request_bytes, status):
    code, body = _exchange(sock_path, request_bytes)
    assert code == status and body["kind"] == "invalid" and body["error"]


def test_backend_errors_map_to_409(api, raw):
    api[0].busy = True
    answer = raw.post("/stop")
    assert answer.status_code == 409
    assert answer.json() == {"error": "refusing to stop: 1 association in progress",
                             "kind": "backend"}


def test_requests_are_logged_at_debug_not_printed(api, capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="dicomtui.control")
    api[2].status()
    assert "GET /status" not in capfd.readouterr().err
    assert any("GET /status" in r.getMessage() for r in caplog.records)


def test_unreachable_service_is_backend_error(tmp_path):
    remote = RemoteBackend(tmp_path / "nobody.sock")
    with pytest.raises(BackendError, match="cannot reach the dicomtui service at .*nobody"):
        remote.status()
    remote.close()


# --- the socket file ---------------------------------------------------------------


def test_socket_is_0600_and_nothing_is_left_behind(api, sock_path):
    mode = sock_path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert sorted(os.listdir(sock_path.parent)) == ["dicomtui.sock"]


def test_stop_removes_the_socket_and_ends_open_connections(api, sock_path):
    _fake, server, remote = api
    remote.status()  # leaves a keep-alive connection open
    server.stop()
    assert not sock_path.exists()
    with pytest.raises(BackendError, match="cannot reach"):
        remote.status()
    server.stop()  # a second stop is harmless


def test_a_stale_socket_is_replaced(sock_path):
    _stale_socket(sock_path)
    server = ControlServer(FakeBackend(), sock_path)
    server.start()
    try:
        assert stat.S_IMODE(sock_path.lstat().st_mode) == 0o600
        remote = RemoteBackend(sock_path)
        assert remote.status().state == "running"
        remote.close()
    finally:
        server.stop()


def test_a_live_socket_is_refused_and_left_alone(api, sock_path):
    _fake, _server, remote = api
    second = ControlServer(FakeBackend(), sock_path)
    with pytest.raises(RuntimeError, match="another dicomtui service is answering on"):
        second.start()
    second.stop()  # must not remove the first server's socket
    assert remote.status().state == "running"


def test_a_file_that_is_not_a_socket_is_never_removed(sock_path):
    sock_path.write_text("precious")
    with pytest.raises(RuntimeError, match="not a socket"):
        ControlServer(FakeBackend(), sock_path).start()
    assert sock_path.read_text() == "precious"


# --- probe -------------------------------------------------------------------------


def test_probe_missing_and_stale_are_none_without_waiting(tmp_path):
    stale = tmp_path / "stale.sock"
    _stale_socket(stale)
    started = time.monotonic()
    assert probe(tmp_path / "missing.sock", timeout=10) is None
    assert probe(stale, timeout=10) is None
    assert time.monotonic() - started < 2  # far below the 10 s timeout


def test_probe_of_a_silent_listener_gives_up_after_its_timeout(tmp_path):
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(path))
        silent.listen()  # connects succeed, nobody ever answers
        assert probe(path, timeout=0.2) is None


def test_probe_of_a_live_service_returns_a_usable_backend(api, sock_path):
    live = probe(sock_path)
    try:
        assert isinstance(live, RemoteBackend) and live.mode == "service"
        assert live.status() == api[0].status()
    finally:
        live.close()


# --- a real engine behind the socket -------------------------------------------------


@pytest.fixture
def engine_api(engine, tmp_path):
    """The engine's LocalBackend served on a socket, as `dicomtui serve` does."""
    from dicomtui.backend.local import LocalBackend
    server = ControlServer(LocalBackend(engine, mode="service"), tmp_path / "engine.sock")
    server.start()
    remote = RemoteBackend(server.path)
    yield engine, remote
    remote.close()
    server.stop()


def test_engine_round_trip(engine_api):
    engine, remote = engine_api
    snap = remote.status()
    assert snap.state == "running" and snap.mode == "service"
    assert snap.listeners[0].port == engine.port
    with pytest.raises(InvalidRequest, match="since"):
        remote.transactions(TransactionFilter(since="not a time"))
    assert remote.set_setting("duplicate_policy", "keep").source == "stored"
    assert remote.unset_setting("duplicate_policy").source == "default"


def test_engine_port_clash_on_start_is_a_backend_error(engine_api):
    engine, remote = engine_api
    port = engine.port  # None while stopped
    assert remote.stop().state == "stopped"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(BackendError, match=f"port {port} is already in use"):
            remote.start()
    assert remote.start().state == "running"  # recovers once the port is free


def test_caller_edit_and_uploads_round_trip(sock_path, tmp_path):
    """PATCH /callers/{ae} keeps a denied caller denied; the upload routes carry ids.
    (Served from the console's fuller double, which has callers and uploads.)"""
    from fake_backend import FakeBackend as ConsoleFake
    fake = ConsoleFake()
    server = ControlServer(fake, sock_path)
    server.start()
    remote = RemoteBackend(sock_path)
    try:
        _caller_edit_and_uploads(fake, remote, tmp_path)
    finally:
        remote.close()
        server.stop()


def _caller_edit_and_uploads(fake, remote, tmp_path) -> None:
    edited = remote.update_caller("OLD_US", ip="10.0.0.9", description="cart")
    assert (edited.active, edited.ip) == (False, "10.0.0.9/32")
    with pytest.raises(NotFound):
        remote.update_caller("NOBODY")
    items = remote.uploads()
    assert items and items == fake.uploads()
    failed = next(i for i in items if i.state == "failed")
    assert remote.retry_upload(failed.id).state == "queued"
    with pytest.raises(InvalidRequest):
        remote.upload(str(tmp_path / "nowhere"))
