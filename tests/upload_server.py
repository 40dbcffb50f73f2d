"""A small real HTTP server implementing the upload API, with failures on demand.

POST /api/users/login/  {"username","password"} -> {"access","refresh"} or 401
POST /api/data/upload/  multipart field "file", Authorization: Bearer <access> -> 201

`script` holds status codes to answer the next uploads with ("ok": as usual; then
success);
`expire_tokens()` makes every issued token stale (the next upload gets 401);
`delay` sleeps before answering; `read_pause` reads the body slowly (to kill a
client mid-upload). An upload counts as received only when its body was read whole
and answered 2xx.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    name: str
    data: bytes
    token: str
    key: str = ""  # the Idempotency-Key header (recorded, not acted on)

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ApiState:
    username: str = "uploader"
    password: str = "s3cret-pass"
    tokens: set[str] = field(default_factory=set)
    script: list = field(default_factory=list)  # ints, or (status, headers, body)
    delay: float = 0.0
    read_pause: float = 0.0
    discard: bool = False  # count the body's bytes instead of keeping them (big uploads)
    discarded: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    logins: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class UploadApi:
    """Start on 127.0.0.1 (a free port); stop() always."""

    def __init__(self) -> None:
        self.state = ApiState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def expire_tokens(self) -> None:
        with self.state.lock:
            self.state.tokens.clear()

    def names(self) -> list[str]:
        return [r.name for r in self.state.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: ApiState
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        if self.state.discard and self.path == "/api/data/upload/":
            return self._count_body()
        body = self._body()
        if body is None:
            return  # the client went away mid-body
        if self.state.delay:
            time.sleep(self.state.delay)
        if self.path == "/api/users/login/":
            self._login(body)
        elif self.path == "/api/data/upload/":
            self._upload(body)
        else:
            self._answer(404, {"detail": "not found"})

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length", "0"))
        chunks, left = [], length
        try:
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    return None
                chunks.append(chunk)
                left -= len(chunk)
                if self.state.read_pause:
                    time.sleep(self.state.read_pause)
        except OSError:
            return None
        return b"".join(chunks)

    def _count_body(self) -> None:
        left = int(self.headers.get("Content-Length", "0"))
        total = 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            total += len(chunk)
            left -= len(chunk)
        with self.state.lock:
            self.state.discarded.append(total)
        self._answer(201, {"bytes": total})

    def _login(self, body: bytes) -> None:
        try:
            given = json.loads(body)
        except ValueError:
            return self._answer(400, {"detail": "JSON expected"})
        if (given.get("username"), given.get("password")) != (self.state.username,
                                                               self.state.password):
            return self._answer(401, {"detail": "No active account found with the "
                                                "given credentials"})
        with self.state.lock:
            self.state.logins += 1
            token = f"access-{self.state.logins}-{time.monotonic_ns()}"
            self.state.tokens.add(token)
        self._answer(200, {"access": token, "refresh": "refresh-" + token})

    def _upload(self, body: bytes) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        with self.state.lock:
            scripted = self.state.script.pop(0) if self.state.script else None
            known = token in self.state.tokens
        if scripted is not None and scripted != "ok":  # "ok": answer as usual
            status, headers, payload = (scripted if isinstance(scripted, tuple)
                                        else (scripted, {}, {"detail": f"scripted {scripted}"}))
            return self._answer(status, payload, headers)
        if not known:
            return self._answer(401, {"detail": "Given token not valid for any token type"})
        name, data = _file_part(self.headers.get("Content-Type", ""), body)
        if data is None:
            return self._answer(400, {"detail": "multipart field 'file' is missing"})
        with self.state.lock:
            self.state.received.append(Received(name, data, token,
                                                self.headers.get("Idempotency-Key", "")))
        self._answer(201, {"id": len(self.state.received), "name": name})

    def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        with self.state.lock:
            self.state.requests.append((self.path, status))
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


def _file_part(content_type: str, body: bytes) -> tuple[str, bytes | None]:
    marker = "boundary="
    if marker not in content_type:
        return "", None
    boundary = content_type.split(marker, 1)[1].strip().strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, sep, rest = part.partition(b"\r\n\r\n")
        if not sep or b'name="file"' not in head:
            continue
        name = ""
        if b'filename="' in head:
            name = head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
        return name, rest[:-2] if rest.endswith(b"\r\n") else rest
    return "", None
