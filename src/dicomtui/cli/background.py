"""The receiver a console starts: a detached `dicomtui serve` it then attaches to.

The receiver must outlive the console (a dropped SSH session, a quit with "leave it
running"), and the CLI and other consoles must see it: so it is its own process in its
own session, serving the control socket like any service, and the console is just its
first client. Its output goes to a bounded log file in the data dir, which is also what
the console shows when it fails to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from dicomtui.backend.base import BackendError
from dicomtui.backend.remote import RemoteBackend, probe
from dicomtui.locations import socket_path
from dicomtui.settings import SPEC_BY_NAME

LOG_NAME = "console-receiver.log"
READY_WAIT = 120.0  # seconds: opening a large data dir (journal replay, reindex) takes a while
LOG_LINES_SHOWN = 6


def log_path(data_dir: Path) -> Path:
    """Where the console's service writes its log (the one before it: `.1` beside it)."""
    return Path(data_dir) / LOG_NAME


def start_service(args, no_start: bool = False) -> RemoteBackend:
    """Start `dicomtui serve` for args' data dir and settings, detached; its Backend once
    its control socket answers. BackendError with the log's last lines if it fails."""
    data_dir = Path(args.data_dir).absolute()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = log_path(data_dir)
    proc = _spawn(_command(args, data_dir, log, no_start), _environment(args), log)
    threading.Thread(target=proc.wait, name="dicomtui-reap-service", daemon=True).start()
    return _wait_ready(proc, socket_path(data_dir), log)


def _command(args, data_dir: Path, log: Path, no_start: bool) -> list[str]:
    """The serve command line: the same data dir, the console's settings and log level."""
    command = [sys.executable, "-m", "dicomtui", "serve", "--data-dir", str(data_dir),
               "--started-by", "console", "--log-file", str(log),
               "--log-level", getattr(args, "log_level", None) or "INFO"]
    for name, value in sorted(args.settings.items()):
        if not _secret(name):
            command += ["--set", f"{name}={value}"]
    return command + (["--no-start"] if no_start else [])


def _environment(args) -> dict[str, str]:
    """Ours, with secret settings given to the console (an API password) as DICOMTUI_
    variables: a long-lived process's command line is readable by every user (ps),
    its environment only by its own."""
    env = dict(os.environ)
    for name, value in args.settings.items():
        if _secret(name):
            env[f"DICOMTUI_{name.upper()}"] = str(value)
    return env


def _secret(name: str) -> bool:
    spec = SPEC_BY_NAME.get(name)
    return spec is not None and spec.secret


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start it in a session of its own (no SIGHUP from our terminal), stdin from
    /dev/null, stdout and stderr (what happens before logging is set up) to the log;
    in our working directory, so relative paths among the settings mean what they did."""
    if log.exists():
        os.replace(log, log.with_name(LOG_NAME + ".1"))  # keep the previous run's
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                env=env, start_new_session=True, close_fds=True)
    finally:
        os.close(fd)


def _wait_ready(proc: subprocess.Popen, sock: Path, log: Path) -> RemoteBackend:
    """The service's Backend once it answers; if it exits first, another console may
    have won the race for the data dir: attach to that one, else say why."""
    deadline = time.monotonic() + READY_WAIT
    while time.monotonic() < deadline:
        remote = probe(sock)
        if remote is not None:
            return remote
        if proc.poll() is not None:
            remote = probe(sock)
            if remote is not None:
                return remote
            raise BackendError(f"the receiver did not start: {last_lines(log)} "
                               f"(whole log: {log})")
        time.sleep(0.1)
    raise BackendError(f"the receiver (pid {proc.pid}) did not answer within "
                       f"{READY_WAIT:.0f} s; it may still be opening the data dir: press s "
                       f"to look again (its log: {log})")


def last_lines(log: Path, count: int = LOG_LINES_SHOWN) -> str:
    """The log's last lines that say something, joined into one line."""
    try:
        with open(log, errors="replace") as lines:
            tail = deque((line.strip() for line in lines if line.strip()), maxlen=count)
    except OSError as exc:
        return f"(its log cannot be read: {exc.strerror})"
    return " | ".join(tail) or "(it wrote nothing)"
