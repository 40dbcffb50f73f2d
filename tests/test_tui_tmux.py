"""End to end: the real `dicomtui` in a real terminal (tmux), driven by keys, read back
with capture-pane, receiving images sent by `dicomtui send`.

Each test uses its own tmux server (-S a private socket) and kills only that server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import (
    cli_env,
    console_service_pid,
    free_port,
    run_cli,
    stop_console_service,
)

from dicomtui.db.txlog import TransactionLog
from dicomtui.service.core.lock import DataDirLock

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Terminal:
    """One tmux session running one command, at a fixed size."""

    def __init__(self, socket, env: dict, command: list[str], size=(80, 24)) -> None:
        self.socket, self.env = str(socket), env
        self.tmux("new-session", "-d", "-s", "console", "-x", str(size[0]), "-y",
                  str(size[1]), " ".join(command))

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-S", self.socket, *args], env=self.env,
                              capture_output=True, text=True, timeout=30)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "console").stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "console", *keys)

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        """The screen once every one of `texts` is on it at once (parts of the screen
        are painted in separate frames: wait for all a test reads, not one of them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts!r} never all appeared; screen:\n{self.screen()}")

    def wait_for_match(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never matched; screen:\n{self.screen()}")

    def wait_closed(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.tmux("has-session", "-t", "console").returncode != 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"the console did not exit; screen:\n{self.screen()}")

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path):
    started = []

    def _open(env: dict, command: list[str], size=(80, 24)) -> Terminal:
        term = Terminal(tmp_path / "tmux.sock", env, command, size)
        started.append(term)
        return term

    yield _open
    for term in started:
        term.kill()


@pytest.mark.parametrize("colour", ["256colour", "NO_COLOR"])
def test_console_in_tmux_receives_leaves_running_attaches_and_stops(
        tmp_path, terminal, console_services, colour):
    data_dir, port = tmp_path / "data", free_port()
    console_services.append(data_dir)  # stopped by its pid whatever happens
    env = cli_env(tmp_path) | {"TERM": "xterm-256color"}
    if colour == "NO_COLOR":
        env["NO_COLOR"] = "1"
    command = [sys.executable, "-m", "dicomtui", "--data-dir", str(data_dir)]
    term = terminal(env, [*command, "--host", "127.0.0.1", "--port", str(port)])
    # the header and the Status body are painted in separate frames: wait for both
    term.wait_for(f"127.0.0.1:{port}", "attached", "service pid", "RUNNING")

    sent = run_cli("send", "127.0.0.1", str(port), "--synthetic", "5", "--aet", "TMUX_SCU",
                   env=env)
    assert sent.returncode == 0, sent.stderr
    term.wait_for_match(r"received\s+5\s")
    term.keys("2")
    # TMUX_SCU may still show on Status (its association): wait for the Log's rows
    term.wait_for(" 2 Log ", "TMUX_SCU", "store", "ok 0x0000")
    term.keys("q")
    term.wait_for("Stop the receiver or leave it running?", "Enter Leave running")
    term.keys("Enter")
    term.wait_closed()

    pid = console_service_pid(data_dir)
    assert pid is not None, "quitting with 'leave running' stopped the receiver"
    status = run_cli("status", "--data-dir", str(data_dir), env=env)
    assert status.returncode == 0 and f"RUNNING (pid {pid}" in status.stdout
    term = terminal(env, command)  # a later `dicomtui` attaches to it
    term.wait_for("attached", f"service pid {pid}", "RUNNING")
    term.wait_for_match(r"received\s+5\s")
    term.keys("q")
    term.wait_for("Stop the receiver or leave it running?")
    term.keys("s")
    term.wait_closed()
    assert console_service_pid(data_dir) is None

    lock = DataDirLock(data_dir)
    lock.acquire()  # quitting released the data dir
    lock.release()
    stores = TransactionLog(data_dir / "log").query(types=["store"])
    assert len(stores) == 5 and {r["calling_ae"] for r in stores} == {"TMUX_SCU"}


def test_console_in_tmux_attaches_to_a_running_service(tmp_path, terminal, service):
    svc = service()
    env = svc.env | {"TERM": "xterm-256color"}
    term = terminal(env, [sys.executable, "-m", "dicomtui", "--data-dir",
                          str(svc.data_dir)], size=(100, 30))
    term.wait_for("attached", f"service pid {svc.proc.pid}", "RUNNING")  # header, body
    term.keys("9")
    term.wait_for("max_associations")
    term.keys("q")
    term.wait_closed()
    assert svc.proc.poll() is None  # the receiver keeps running
    assert svc.cli("status").returncode == 0


def test_a_vanished_terminal_leaves_the_receiver_running(tmp_path, terminal,
                                                        console_services):
    """SSH drops: the console gets SIGHUP and exits at once, not lingering; the receiver
    it started goes on receiving, for a later `dicomtui` to attach to."""
    data_dir, port = tmp_path / "data", free_port()
    console_services.append(data_dir)
    env = cli_env(tmp_path) | {"TERM": "xterm-256color"}
    term = terminal(env, [sys.executable, "-m", "dicomtui", "--data-dir", str(data_dir),
                          "--host", "127.0.0.1", "--port", str(port)])
    term.wait_for("RUNNING")
    pid = int(term.tmux("list-panes", "-t", "console", "-F", "#{pane_pid}").stdout)
    term.kill()  # the pane's process gets SIGHUP, as from a dropped SSH session
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid), "the console outlived its terminal"
    assert console_service_pid(data_dir) is not None, "the receiver died with the console"
    sent = run_cli("send", "127.0.0.1", str(port), "--synthetic", "3", env=env)
    assert sent.returncode == 0, sent.stderr
    stop_console_service(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()
    lock.release()
    assert len(TransactionLog(data_dir / "log").query(types=["store"])) == 3


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
