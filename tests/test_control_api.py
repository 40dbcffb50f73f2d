"""The control API over a real unix socket, serving a real engine."""

from __future__ import annotations

import socket
import stat
import time

import httpx
import pytest

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.backend.local import LocalBackend
from dicomtui.models import TransactionFilter
from dicomtui.backend.remote import RemoteBackend, probe
from dicomtui.control.server import ControlServer

from helpers import fresh_ct, send


@pytest.fixture
def api(engine, tmp_path):
    path = tmp_path / "dicomtui.sock"
    server = ControlServer(LocalBackend(engine, mode="service"), path)
    server.start()
    remote = RemoteBackend(path)
    yield engine, server, remote
    remote.close()
    server.stop()


def test_socket_is_private_and_removed_on_stop(api):
    _engine, server, _remote = api
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(server.path.stat().st_mode)
    server.stop()
    assert not server.path.exists()


def test_round_trip_of_the_backend(api):
    engine, _server, remote = api
    snap = remote.status()
    assert snap.state == "running" and snap.mode == "service"
    assert snap.listeners[0].port == engine.port
    send(engine.port, [fresh_ct()])
    engine.writer.flush()
    stores = remote.transactions(TransactionFilter(types=["store"]))
    assert len(stores) == 1 and stores[0]["outcome"] == "ok"
    batch = remote.events(after=0)
    assert batch.seq >= len(batch.events) > 0
    assert any(e.kind == "transaction" for e in batch.events)
    changed = remote.set_setting("duplicate_policy", "keep")
    assert changed.value == "keep" and changed.source == "stored"
    assert remote.unset_setting("duplicate_policy").source == "default"
    assert remote.stop().state == "stopped"
    assert remote.start().state == "running"


def test_errors_map_to_the_right_exceptions(api):
    _engine, server, remote = api
    with pytest.raises(InvalidRequest, match="port: must be an integer"):
        remote.set_setting("port", "70000")
    with pytest.raises(InvalidRequest, match="since"):
        remote.transactions(TransactionFilter(since="not a time"))
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(server.path)),
                          base_url="http://dicomtui")
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["kind"] == "invalid"
    bad_json = client.post("/transactions", content=b"{not json",
                           headers={"Content-Length": "9"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    client.close()


def test_port_clash_on_restart_is_a_backend_error(api):
    engine, _server, remote = api
    port = engine.port
    remote.stop()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(BackendError, match=f"port {port} is already in use"):
            remote.start()
    assert remote.status().state == "error"
    assert remote.start().state == "running"  # recovers once the port is free


def test_probe(tmp_path, api):
    assert probe(tmp_path / "missing.sock") is None
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # bound, never listening: what a crash leaves behind
    started = time.monotonic()
    assert probe(stale) is None
    assert time.monotonic() - started < 2
    live = probe(api[1].path)
    assert live is not None and live.status().state == "running"
    live.close()


def test_stale_socket_is_replaced_and_live_one_refused(engine, tmp_path):
    path = tmp_path / "dicomtui.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    first = ControlServer(LocalBackend(engine), path)
    first.start()
    try:
        with pytest.raises(RuntimeError, match="another dicomtui service"):
            ControlServer(LocalBackend(engine), path).start()
    finally:
        first.stop()
