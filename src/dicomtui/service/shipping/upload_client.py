"""One upload attempt to the remote API, and what to do next: done, retry, or give up.

The zip is streamed from disk (httpx reads the file in chunks), so a 2 GB study does not
load into memory; bytes sent are reported as they go. Credentials are never put into a
message: anything the server echoes back is scrubbed of them.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpcore
import httpx

from dicomtui.settings import Resolved

CONNECT_S = 5.0  # at most this long to connect: an unreachable API fails fast
RETRYABLE_4XX = (408, 429)


class UploadCancelled(Exception):
    """The item was cancelled while its bytes were going out."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt ended in: "done", "retry" (after `retry_after` s if the server
    said) or "failed" (not worth retrying), with a message for people."""

    kind: str
    message: str = ""
    status: int | None = None
    retry_after: float | None = None


class UploadClient:
    """Logs in when needed (once again on a 401), then POSTs the file as `file`."""

    def __init__(self, settings: Callable[[], Resolved]) -> None:
        self._settings = settings
        self._access: str | None = None
        self._key = ""
        self._sockets = _Sockets()  # of the attempt in progress

    def abort(self) -> None:
        """From another thread: end the attempt in progress now (its sockets are shut
        down, so a request waiting on the server fails at once)."""
        self._sockets.cut()

    def send(
        self,
        path: Path,
        progress: Callable[[int], None],
        cancelled: Callable[[], bool],
        key: str = "",
    ) -> Outcome:
        """One attempt; `key` goes out as Idempotency-Key, the same on every retry of
        one item, so an API that honours it can drop the copy a crash between its 2xx
        and our record of it would send again."""
        s = self._settings()
        self._key = key
        self._sockets = sockets = _Sockets()
        try:
            with _client(s, sockets) as client:
                return self._send(client, s, path, progress, cancelled)
        except UploadCancelled:
            return Outcome("cancelled", "cancelled while uploading")
        except httpx.TransportError as exc:
            if cancelled() or sockets.was_cut:
                return Outcome("cancelled", "cancelled while uploading")
            if isinstance(exc, httpx.TimeoutException):
                return Outcome(
                    "retry", f"no answer from {s.api_url} within {s.upload_timeout:g} s"
                )
            return Outcome(
                "retry",
                self._scrub(f"cannot reach {s.api_url}: {exc or type(exc).__name__}", s),
            )

    def _send(self, client: httpx.Client, s, path: Path, progress, cancelled) -> Outcome:
        token = s.api_token or self._access
        if not token:
            if not s.api_username:
                return Outcome(
                    "failed",
                    "no credentials: set api_token, or api_username "
                    "and api_password (DICOMTUI_API_PASSWORD)",
                )
            login = self._login(client, s)
            if login is not None:
                return login
            token = self._access
        response = self._post(client, s, path, token, progress, cancelled)
        if response.status_code == 401 and s.api_username and s.api_password:
            self._access = None  # expired: log in again, once, then retry once
            login = self._login(client, s)
            if login is not None:
                return login
            response = self._post(client, s, path, self._access, progress, cancelled)
        return self._judge(response, s, "upload")

    def _post(self, client, s, path: Path, token, progress, cancelled) -> httpx.Response:
        with open(path, "rb") as fh:
            body = _CountingReader(fh, progress, cancelled)
            headers = {"Authorization": f"Bearer {token}"}
            if self._key:
                headers["Idempotency-Key"] = self._key
            return client.post(
                _url(s.api_url, "data/upload/"),
                headers=headers,
                files={"file": (path.name, body, "application/zip")},
            )

    def _login(self, client, s) -> Outcome | None:
        """None when logged in; else the Outcome that ends this attempt."""
        response = client.post(
            _url(s.api_url, "users/login/"),
            json={"username": s.api_username, "password": s.api_password},
        )
        if response.is_success:
            try:
                self._access = str(response.json()["access"])
                return None
            except (ValueError, KeyError, TypeError):
                return Outcome("retry", "the login answer had no access token")
        outcome = self._judge(response, s, "login")
        if outcome.kind == "failed":
            return Outcome("failed", outcome.message, outcome.status)
        return outcome

    def _judge(self, response: httpx.Response, s, what: str) -> Outcome:
        code = response.status_code
        if response.is_success:
            return Outcome("done", f"{what}: {code}", code)
        said = self._scrub(_server_message(response), s)
        message = f"{what} refused: {code} {response.reason_phrase}" + (
            f": {said}" if said else ""
        )
        if code in (429, 503):
            return Outcome("retry", message, code, _retry_after(response))
        if code >= 500 or code in RETRYABLE_4XX:
            return Outcome("retry", message, code)
        return Outcome("failed", message, code)

    def _scrub(self, text: str, s) -> str:
        for secret in (s.api_password, s.api_token, self._access):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class _CountingReader:
    """A file for httpx's multipart encoder: reports bytes read, stops on cancel."""

    def __init__(
        self, fh, progress: Callable[[int], None], cancelled: Callable[[], bool]
    ) -> None:
        self._fh, self._progress, self._cancelled = fh, progress, cancelled

    def read(self, size: int = -1) -> bytes:
        if self._cancelled():
            raise UploadCancelled()
        data = self._fh.read(size)
        self._progress(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


def _client(s, sockets: _Sockets) -> httpx.Client:
    timeout = httpx.Timeout(s.upload_timeout, connect=min(CONNECT_S, s.upload_timeout))
    transport = httpx.HTTPTransport()
    # httpx takes no network backend; its pool does: the same pool, with sockets we can
    # cut from another thread (httpx is pinned, and test_uploads checks a cut works)
    transport._pool = httpcore.ConnectionPool(network_backend=sockets)
    return httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)


class _Sockets(httpcore.SyncBackend):
    """httpcore's own socket backend, remembering each socket it opens so that another
    thread can shut them down: a blocked send or receive then fails at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.was_cut = False

    def connect_tcp(self, *args, **kwargs) -> httpcore.NetworkStream:
        stream = super().connect_tcp(*args, **kwargs)
        with self._lock:
            self._open.append(stream.get_extra_info("socket"))
            cut = self.was_cut
        if cut:
            self.cut()
        return stream

    def cut(self) -> None:
        with self._lock:
            self.was_cut, sockets = True, list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already


def _url(base: str, tail: str) -> str:
    return base.rstrip("/") + "/" + tail


def _server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(data, dict):
        for key in ("detail", "message", "error", "errors"):
            if key in data:
                return str(data[key])[:300]
    return str(data)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
