"""The control API: the Backend as JSON over HTTP on a unix socket (mode 0600).

Only the service's user and root may control the receiver, so the socket is born 0600:
it is bound inside a fresh 0700 directory and renamed into place, leaving no window in
which another user could connect.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.models import TransactionFilter, from_dict, to_dict

LOG = logging.getLogger("dicomtui.control")


def _status(backend, _q, _b):
    return to_dict(backend.status())


def _events(backend, q, _b):
    return to_dict(backend.events(int(q.get("after", 0)), int(q.get("limit", 1000))))


def _transactions(backend, _q, body):
    return {"transactions": backend.transactions(from_dict(TransactionFilter, body or {}))}


def _settings(backend, _q, _b):
    return {"settings": to_dict(backend.settings())}


ROUTES = {
    ("GET", "/status"): _status,
    ("POST", "/start"): lambda b, q, body: to_dict(b.start()),
    ("POST", "/stop"): lambda b, q, body: to_dict(b.stop()),
    ("POST", "/restart"): lambda b, q, body: to_dict(b.restart()),
    ("GET", "/events"): _events,
    ("POST", "/transactions"): _transactions,
    ("GET", "/settings"): _settings,
}
PREFIX_ROUTES = {
    ("PUT", "/settings/"): lambda b, name, body: to_dict(
        b.set_setting(name, (body or {}).get("value"))),
    ("DELETE", "/settings/"): lambda b, name, body: to_dict(b.unset_setting(name)),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_UnixHTTPServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body()
            self._reply(200, self._route(method, url.path, query, body))
        except InvalidRequest as exc:
            self._error(400, "invalid", str(exc))
        except BackendError as exc:
            self._error(409, "backend", str(exc))
        except LookupError as exc:
            self._error(404, "invalid", str(exc))
        except Exception as exc:
            LOG.exception("control API %s %s failed", method, url.path)
            self._error(500, "internal", f"{type(exc).__name__}: {exc}")

    def _route(self, method: str, path: str, query: dict, body):
        backend = self.server.backend
        handler = ROUTES.get((method, path))
        if handler is not None:
            return handler(backend, query, body)
        for (verb, prefix), handler in PREFIX_ROUTES.items():
            if verb == method and path.startswith(prefix) and len(path) > len(prefix):
                return handler(backend, path[len(prefix):], body)
        raise LookupError(f"no such endpoint: {method} {path}")

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise InvalidRequest(f"request body is not JSON: {exc}") from None

    def _reply(self, code: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, kind: str, message: str) -> None:
        self._reply(code, {"error": message.splitlines()[0] if message else kind,
                           "kind": kind})

    def address_string(self) -> str:
        return "unix-socket"

    def log_message(self, fmt: str, *args) -> None:
        LOG.debug("control: " + fmt, *args)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, backend) -> None:
        self.backend = backend
        super().__init__(path, _Handler, bind_and_activate=False)


class ControlServer:
    """Serves a Backend on `socket_path` from a daemon thread."""

    def __init__(self, backend, socket_path: Path) -> None:
        self.backend = backend
        self.path = Path(socket_path)
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._clear_stale()
        server = _UnixHTTPServer(str(self.path), self.backend)
        _bind_private(server, self.path)
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.2}, name="dicomtui-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)

    def _clear_stale(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        if _answers(self.path):
            raise RuntimeError(f"another dicomtui service is answering on {self.path}")
        self.path.unlink()


def _bind_private(server: socketserver.UnixStreamServer, target: Path) -> None:
    """Bind in a fresh 0700 directory, make the socket 0600, then move it into place."""
    private = tempfile.mkdtemp(prefix=".dicomtui-sock-", dir=target.parent)
    try:
        temp_path = os.path.join(private, "s")
        server.socket.bind(temp_path)
        os.chmod(temp_path, 0o600)
        os.replace(temp_path, target)
        server.server_address = str(target)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
