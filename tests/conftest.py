"""Shared fixtures: free ports, an in-process engine and a real `dicomtui serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pynetdicom import AE

from dicomtui.service.engine import Engine
from helpers import parked

VERIFICATION = "1.2.840.10008.1.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_echo(port: int, timeout: float = 20.0, ae_title: str = "DICOMTUI",
                  calling: str = "PROBE") -> None:
    """Block until a C-ECHO on 127.0.0.1:port succeeds."""
    deadline = time.monotonic() + timeout
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    while time.monotonic() < deadline:
        assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
        if assoc.is_established:
            parked(assoc).send_c_echo()
            assoc.release()
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered C-ECHO on port {port}")


@pytest.fixture(autouse=True)
def own_preferences(tmp_path, monkeypatch):
    """Each test's console reads and saves its theme in a folder of its own, never the
    developer's ~/.config (a stored theme there would change every snapshot)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("DICOMTUI_THEME", raising=False)


@pytest.fixture
def make_engine(tmp_path):
    """Start in-process engines on free ports; all are closed after the test."""
    engines = []

    def _make(data_dir: Path | None = None, **settings) -> Engine:
        cli = {"host": "127.0.0.1", "port": str(free_port()), **settings}
        engine = Engine(data_dir or tmp_path / f"data{len(engines)}", cli, environ={})
        engines.append(engine)
        engine.start()
        return engine

    yield _make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine) -> Engine:
    return make_engine()


class Service:
    """A `dicomtui serve` subprocess on a free port with its own data dir."""

    def __init__(self, data_dir: Path, port: int, extra: list[str], env: dict) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = env
        args = [sys.executable, "-m", "dicomtui", "serve", "--data-dir", str(data_dir),
                "--host", "127.0.0.1", "--port", str(port), *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_cli("--data-dir", str(self.data_dir), *args, env=self.env,
                       timeout=timeout)

    def stderr(self) -> str:
        """Everything the service wrote to stderr (call after stop())."""
        return self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def cli_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMTUI_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


def run_cli(*args: str, env: dict | None = None, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicomtui", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, input=input)


@pytest.fixture
def service(tmp_path):
    """Start `dicomtui serve`; the factory takes extra CLI args. Always stopped."""
    started = []

    def _start(*extra: str, data_dir: Path | None = None, env: dict | None = None,
               wait: bool = True) -> Service:
        svc = Service(data_dir or tmp_path / f"svc{len(started)}", free_port(), list(extra),
                      env or cli_env(tmp_path))
        started.append(svc)
        if wait:
            _wait_ready(svc)
        return svc

    yield _start
    for svc in started:
        svc.stop()


def _wait_ready(svc: Service) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if svc.proc.poll() is not None:
            raise RuntimeError(f"serve exited {svc.proc.returncode}: {svc.proc.stderr.read()}")
        if (svc.data_dir / "dicomtui.sock").exists():
            try:
                wait_for_echo(svc.port, timeout=5)
                return
            except TimeoutError:
                pass
        time.sleep(0.1)
    raise TimeoutError("dicomtui serve did not become ready")


def console_service_pid(data_dir: Path) -> int | None:
    """The pid of the `dicomtui serve` a console started for data_dir, from the data
    dir's lock file, if that process still runs (and is that serve, not a reused pid)."""
    try:
        pid = int((Path(data_dir) / "dicomtui.lock").read_text().split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as stat:
            zombie = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, ValueError, IndexError):
        return None
    if zombie or b"serve" not in words or str(data_dir).encode() not in words:
        return None
    return pid


def stop_console_service(data_dir: Path, timeout: float = 30) -> None:
    """Stop that serve by its pid (SIGTERM, then SIGKILL) and wait until it is gone."""
    pid = console_service_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while console_service_pid(data_dir) == pid:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.1)


@pytest.fixture
def console_services():
    """Data dirs whose console-started services are stopped after the test, whatever
    happened: a leaked serve would hold its port and CPU on a shared machine."""
    data_dirs: list[Path] = []
    yield data_dirs
    for data_dir in data_dirs:
        stop_console_service(data_dir)
