"""The control API: any Backend as JSON over HTTP/1.1 on a unix socket born 0600.

Only the service's user and root may control the receiver, so the socket's mode must never
be wider than 0600, not even for an instant. It is bound inside a fresh 0700 directory
(nobody else can reach it there), chmod'ed 0600 and set listening, then hard-linked to its
real name; the link fails rather than clobber a socket that appeared meanwhile. No umask
juggling: umask is process-wide and would race files other threads create.

A new Backend method is one new line in ROUTES.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import socketserver
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.models import SendReport, StudyQuery, TransactionFilter, from_dict, to_dict

LOG = logging.getLogger("dicomtui.control")

MAX_BODY = 1 << 20  # bytes; requests are small JSON documents
IDLE_TIMEOUT = 60.0  # seconds an idle keep-alive connection may hold a thread
MAX_MESSAGE = 500  # characters of an error message sent back


class _HTTPError(Exception):
    """A request the router itself refuses (unknown route, unusable body)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Request:
    """What a route sees: query arguments, path parameters and the JSON body."""

    query: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def int_arg(self, name: str, default: int) -> int:
        """A query argument as an int; a bad one is the caller's mistake (400)."""
        raw = self.query.get(name)
        try:
            return default if raw is None else int(raw)
        except ValueError:
            raise InvalidRequest(f"{name}: not an integer: {raw!r}") from None

    def words(self, name: str) -> list[str] | None:
        """A comma-separated query argument as a list (None when absent or empty)."""
        raw = self.query.get(name, "")
        words = [w.strip() for w in raw.split(",") if w.strip()]
        return words or None

    def obj(self) -> dict:
        """The body as a JSON object ({} when there is none)."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise InvalidRequest("request body must be a JSON object")
        return self.body

    def text(self, key: str) -> str:
        """A required string member of the body."""
        value = self.obj().get(key)
        if not isinstance(value, str):
            raise InvalidRequest(f'request body needs "{key}" as a string')
        return value

    def optional(self, key: str, kind: type) -> Any:
        """A member of the body that may be absent or null; else it must be `kind`."""
        value = self.obj().get(key)
        if value is None:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise InvalidRequest(f'"{key}" must be a {kind.__name__}')
        return value

    def id_param(self) -> int:
        """The {id} of the path as a number."""
        try:
            return int(self.params["id"])
        except ValueError:
            raise InvalidRequest(f"not an id: {self.params['id']!r}") from None

    def days(self) -> float | None:
        """The optional "older_than_days" member: a number of days or null."""
        value = self.obj().get("older_than_days")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise InvalidRequest('"older_than_days" must be a number')
        return value

    def keys(self) -> list[tuple[str, str, str]]:
        """The "keys" member: a list of [subject code, study UID, SOP UID] strings."""
        keys = self.obj().get("keys")
        if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 3 and all(isinstance(v, str) for v in k)
            for k in keys
        ):
            raise InvalidRequest('"keys" must be a list of [code, study UID, SOP UID]')
        return [(k[0], k[1], k[2]) for k in keys]

    def shape(self, cls: type) -> Any:
        """The body rebuilt as dataclass `cls`."""
        try:
            return from_dict(cls, self.obj())
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"request body is not a {cls.__name__}: {exc}") from None


Route = Callable[[Any, Request], Any]

ROUTES: list[tuple[str, str, Route]] = [
    ("GET", "/status", lambda b, r: to_dict(b.status())),
    ("POST", "/start", lambda b, r: to_dict(b.start())),
    ("POST", "/stop", lambda b, r: to_dict(b.stop())),
    ("POST", "/restart", lambda b, r: to_dict(b.restart())),
    (
        "GET",
        "/events",
        lambda b, r: to_dict(
            b.events(r.int_arg("after", 0), r.int_arg("limit", 1000), r.words("kinds"))
        ),
    ),
    (
        "POST",
        "/transactions",
        lambda b, r: {"transactions": b.transactions(r.shape(TransactionFilter))},
    ),
    ("GET", "/settings", lambda b, r: {"settings": to_dict(b.settings())}),
    (
        "PUT",
        "/settings/{name}",
        lambda b, r: to_dict(b.set_setting(r.params["name"], r.text("value"))),
    ),
    ("DELETE", "/settings/{name}", lambda b, r: to_dict(b.unset_setting(r.params["name"]))),
    ("GET", "/facilities", lambda b, r: {"facilities": to_dict(b.facilities())}),
    (
        "POST",
        "/facilities",
        lambda b, r: to_dict(
            b.add_facility(
                r.text("name"),
                r.optional("port", int),
                r.optional("ae_title", str),
                r.optional("calling_aes", list),
                r.optional("anonymize", str),
            )
        ),
    ),
    (
        "PATCH",
        "/facilities/{name}",
        lambda b, r: to_dict(
            b.update_facility(
                r.params["name"],
                r.optional("ae_title", str),
                r.optional("port", int),
                r.optional("calling_aes", list),
                r.optional("anonymize", str),
            )
        ),
    ),
    (
        "DELETE",
        "/facilities/{name}",
        lambda b, r: to_dict(b.remove_facility(r.params["name"])),
    ),
    ("GET", "/pacs-config", lambda b, r: to_dict(b.pacs_config())),
    ("GET", "/callers", lambda b, r: {"callers": to_dict(b.callers())}),
    (
        "PUT",
        "/callers/{ae}",
        lambda b, r: to_dict(
            b.allow_caller(
                r.params["ae"], r.optional("ip", str), r.optional("description", str)
            )
        ),
    ),
    (
        "PATCH",
        "/callers/{ae}",
        lambda b, r: to_dict(
            b.update_caller(
                r.params["ae"], r.optional("ip", str), r.optional("description", str)
            )
        ),
    ),
    ("POST", "/callers/{ae}/deny", lambda b, r: to_dict(b.deny_caller(r.params["ae"]))),
    ("DELETE", "/callers/{ae}", lambda b, r: to_dict(b.remove_caller(r.params["ae"]))),
    # POST: a search term and a reveal flag are not for URLs and proxy logs.
    (
        "POST",
        "/anonymization/subjects",
        lambda b, r: {
            "subjects": to_dict(
                b.anon_subjects(
                    r.optional("search", str) or "", bool(r.optional("reveal", bool))
                )
            )
        },
    ),
    (
        "POST",
        "/anonymization/export",
        lambda b, r: to_dict(b.export_anonymization(r.text("path"))),
    ),
    (
        "POST",
        "/anonymization/originals",
        lambda b, r: {"answers": b.anon_originals(r.keys())},
    ),
    ("GET", "/uploads", lambda b, r: {"uploads": to_dict(b.uploads())}),
    ("POST", "/uploads", lambda b, r: to_dict(b.upload(r.text("path")))),
    ("POST", "/uploads/{id}/retry", lambda b, r: to_dict(b.retry_upload(r.id_param()))),
    ("POST", "/uploads/{id}/cancel", lambda b, r: to_dict(b.cancel_upload(r.id_param()))),
    ("POST", "/studies", lambda b, r: to_dict(b.studies(r.shape(StudyQuery)))),
    (
        "GET",
        "/studies/{uid}/series",
        lambda b, r: {"series": to_dict(b.series(r.params["uid"]))},
    ),
    (
        "POST",
        "/studies/{uid}/send",
        lambda b, r: to_dict(b.send_study(r.params["uid"], r.text("ae_title"))),
    ),
    ("GET", "/destinations", lambda b, r: {"destinations": to_dict(b.destinations())}),
    (
        "PUT",
        "/destinations/{ae}",
        lambda b, r: to_dict(
            b.add_destination(
                r.params["ae"],
                r.text("host"),
                r.optional("port", int),
                r.optional("description", str) or "",
            )
        ),
    ),
    (
        "DELETE",
        "/destinations/{ae}",
        lambda b, r: to_dict(b.remove_destination(r.params["ae"])),
    ),
    ("POST", "/sends", lambda b, r: b.record_send(_send_report(r)) or {}),
    ("GET", "/storage", lambda b, r: to_dict(b.storage_report())),
    ("POST", "/cleanup/plan", lambda b, r: to_dict(b.cleanup_plan(r.days()))),
    ("POST", "/cleanup", lambda b, r: to_dict(b.start_cleanup(r.days()))),
    ("POST", "/reindex", lambda b, r: to_dict(b.start_reindex())),
    ("GET", "/jobs", lambda b, r: {"jobs": to_dict(b.jobs())}),
    ("GET", "/jobs/{id}", lambda b, r: to_dict(b.job(r.id_param()))),
]


def _send_report(request: Request) -> SendReport:
    try:
        return from_dict(SendReport, request.obj())
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"not a send report: {exc}") from None


def _match(pattern: str, segments: list[str]) -> dict[str, str] | None:
    """Path parameters if `segments` fit `pattern` ("{x}" takes one segment), else None."""
    parts = pattern.split("/")
    if len(parts) != len(segments):
        return None
    params = {}
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = unquote(segment)
        elif part != segment:
            return None
    return params


def _find(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for `method path` and its path parameters; 404 if none."""
    segments = path.split("/")
    for verb, pattern, route in ROUTES:
        params = _match(pattern, segments) if verb == method else None
        if params is not None:
            return route, params
    raise _HTTPError(404, f"no such endpoint: {method} {path}")


def _parse(raw: bytes) -> Any:
    """The JSON body (None when empty); bad JSON is a 400."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"request body is not JSON: {exc}") from None


def _dispatch(backend, method: str, target: str, raw: bytes) -> bytes:
    """Run the route for one request and encode its answer."""
    url = urlsplit(target)
    route, params = _find(method, url.path)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    payload = route(backend, Request(query, params, _parse(raw)))
    return json.dumps(payload).encode()


def _one_line(text: str, fallback: str) -> str:
    """The first non-blank line of `text`, bounded, for an error answer."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else fallback)[:MAX_MESSAGE]


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"error": message, "kind": kind}).encode()


def _answer(
    backend, method: str, target: str, read_body: Callable[[], bytes]
) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for one request; every failure becomes a one-line error."""
    try:
        return 200, _dispatch(backend, method, target, read_body())
    except InvalidRequest as exc:
        return 400, _error("invalid", _one_line(str(exc), "invalid request"))
    except NotFound as exc:
        return 404, _error("not_found", _one_line(str(exc), "not found"))
    except BackendError as exc:
        return 409, _error("backend", _one_line(str(exc), "refused by the service"))
    except _HTTPError as exc:
        return exc.code, _error("invalid", _one_line(str(exc), HTTPStatus(exc.code).phrase))
    except Exception as exc:
        LOG.exception("control API: %s %s failed", method, target)
        text = _one_line(f"{type(exc).__name__}: {exc}", type(exc).__name__)
        return 500, _error("internal", f"internal error in the service: {text}")


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads the body, lets `_answer` do the rest."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: _UnixHTTPServer

    def _serve(self) -> None:
        code, data = _answer(self.server.backend, self.command, self.path, self._body)
        self._send(code, data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _body(self) -> bytes:
        """The request body; a missing, huge or broken one also ends the connection."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if "Transfer-Encoding" in self.headers or not 0 <= length <= MAX_BODY:
            self.close_connection = True
            raise _HTTPError(
                400 if length <= MAX_BODY else 413,
                f"need a Content-Length of at most {MAX_BODY} bytes",
            )
        return self._read(length)

    def _read(self, length: int) -> bytes:
        try:
            return self.rfile.read(length)
        except OSError as exc:
            self.close_connection = True
            raise _HTTPError(400, f"request body incomplete: {exc}") from None

    def _send(self, code: int, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain=None) -> None:
        """Protocol-level errors (bad request line, unknown method) answer in JSON too."""
        self.close_connection = True
        self._send(code, _error("invalid", message or HTTPStatus(code).phrase))

    def address_string(self) -> str:
        return "control-socket"  # unix peers have no address

    def log_message(self, fmt: str, *args) -> None:
        LOG.debug("control: " + fmt, *args)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per connection; remembers open connections so stop() can cut them."""

    daemon_threads = True

    def __init__(self, backend) -> None:
        super().__init__("", _Handler, bind_and_activate=False)
        self.backend = backend
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """End keep-alive connections, so nobody is served after stop()."""
        with self._lock:
            still_open = list(self._open)
        for request in still_open:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        """A client that went away is routine; anything else is logged, never printed."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            LOG.debug("control: connection ended early", exc_info=True)
        else:
            LOG.exception("control: connection failed")


class ControlServer:
    """Serves a Backend on `socket_path` from a daemon thread, one thread per connection."""

    def __init__(self, backend, socket_path: Path) -> None:
        self.backend = backend
        self.path = Path(socket_path)
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._identity: tuple[int, int] | None = None

    def start(self) -> None:
        """Bind (replacing a stale socket, refusing a live one) and start serving."""
        if self._server is not None:
            raise RuntimeError(f"control server on {self.path} is already running")
        _remove_stale(self.path)
        server = _UnixHTTPServer(self.backend)
        try:
            self._identity = _bind_private(server, self.path)
        except BaseException:
            server.server_close()
            raise
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.2,), name="dicomtui-control", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, end open connections, remove our socket file; safe to repeat."""
        server, self._server = self._server, None
        if server is None:
            return
        self._remove_own_socket()
        with contextlib.suppress(OSError):  # refuse new clients, wake serve_forever now
            server.socket.shutdown(socket.SHUT_RDWR)
        server.shutdown()
        server.server_close()
        server.cut_connections()
        self._thread.join()

    def _remove_own_socket(self) -> None:
        """Unlink the socket file only if it is still the one we created."""
        with contextlib.suppress(FileNotFoundError):
            st = self.path.lstat()
            if (st.st_dev, st.st_ino) == self._identity:
                self.path.unlink()


def _bind_private(server: socketserver.UnixStreamServer, target: Path) -> tuple[int, int]:
    """Bind and listen in a fresh 0700 dir, chmod 0600, link to `target`; (dev, inode)."""
    private = tempfile.mkdtemp(prefix=".s", dir=target.parent)
    try:
        temp = os.path.join(private, "s")
        _bind(server.socket, temp)
        os.chmod(temp, 0o600)
        server.server_activate()  # listening before it is reachable: never looks stale
        _link(temp, target)
        server.server_address = str(target)
        st = target.lstat()
        return st.st_dev, st.st_ino
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _bind(sock: socket.socket, path: str) -> None:
    try:
        sock.bind(path)
    except OSError as exc:
        hint = " (unix socket paths are limited to ~100 bytes)" if len(path) > 100 else ""
        raise RuntimeError(
            f"cannot create the control socket {path}: {exc}{hint}"
        ) from None


def _link(temp: str, target: Path) -> None:
    """Give the socket its real name; a link never replaces what appeared meanwhile."""
    try:
        os.link(temp, target)
    except FileExistsError:
        _remove_stale(target)  # raises if someone is answering there now
        os.link(temp, target)


def _remove_stale(path: Path) -> None:
    """Remove a socket nobody answers on (a crashed service's); refuse anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; move it away")
    if _answers(path):
        raise RuntimeError(f"another dicomtui service is answering on {path}")
    path.unlink(missing_ok=True)


def _answers(path: Path) -> bool:
    """True if a process listens on `path`; a full backlog (timeout) counts as alive."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True
        except OSError as exc:
            raise RuntimeError(f"cannot tell whether {path} is in use: {exc}") from None
    return True
