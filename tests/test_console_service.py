"""`dicomtui` without a running service starts one (a detached `dicomtui serve`) and
attaches to it: the receiver outlives the console, the CLI and a second console see it.

Every test stops the services it caused by their pid (console_services), even on failure.
"""

from __future__ import annotations

import asyncio
import socket

from conftest import (
    cli_env,
    console_service_pid,
    free_port,
    run_cli,
    stop_console_service,
    wait_for_echo,
)
from console import console_from, drive, notified, opened, wait_for, wait_for_text
from helpers import eventually, fresh_ct, send, stored_files
from test_tui_engine import args_for

from dicomtui.cli.connect import console_backend
from dicomtui.service.core.lock import DataDirLock
from dicomtui.tui.quit_dialog import QuitChoice


def spawning_console(data_dir, port=None, no_start: bool = False):
    """The console as `dicomtui [--no-start]` makes it, on a free port on 127.0.0.1."""
    args = args_for(data_dir, port)
    args.no_start = no_start
    return console_from(lambda: console_backend(args), poll_interval=0.1,
                        no_start=no_start)


def test_the_console_starts_a_receiver_that_outlives_it(tmp_path, console_services):
    data_dir, port = tmp_path / "data", free_port()
    console_services.append(data_dir)

    async def first(pilot):
        await wait_for_text(pilot, "attached", "service pid", "RUNNING", timeout=60)
        assert pilot.app.snapshot.started_by == "console"
        await asyncio.to_thread(send, port, [fresh_ct(), fresh_ct()], calling="CT_1")
        await wait_for(pilot, lambda: pilot.app.snapshot.counters.received == 2,
                       what="2 received")
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("enter")  # leave it running

    drive(spawning_console(data_dir, port), first, size=(120, 30))
    pid = console_service_pid(data_dir)
    assert pid is not None, "the receiver did not outlive the console"
    status = run_cli("status", "--data-dir", str(data_dir), env=cli_env(tmp_path))
    assert status.returncode == 0 and f"RUNNING (pid {pid}" in status.stdout
    assert "started by a console; its log: " in status.stdout
    wait_for_echo(port)
    mode = (data_dir / "console-receiver.log").stat().st_mode & 0o777
    assert mode == 0o600

    async def second(pilot):
        await wait_for_text(pilot, "attached", f"service pid {pid}", "RUNNING", timeout=30)
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("s")  # stop it

    drive(spawning_console(data_dir), second, size=(120, 30))
    eventually(lambda: console_service_pid(data_dir) is None, what="the service gone")
    lock = DataDirLock(data_dir)
    lock.acquire()  # the receiver stopped and released the data dir
    lock.release()
    assert len(stored_files(data_dir / "storage")) == 2


def test_a_busy_port_leaves_the_receiver_stopped_with_the_reason(tmp_path,
                                                                 console_services):
    data_dir = tmp_path / "data"
    console_services.append(data_dir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario(pilot):
            text = await wait_for_text(pilot, "ERROR", "in use", timeout=60)
            await wait_for(pilot, lambda: notified(pilot.app, "the receiver did not start"),
                           what="the notice")
            assert "Traceback" not in text and "stop it" not in text
            assert "--data-dir" in pilot.app.snapshot.error  # never "stop production"
            await pilot.press("q")
            await opened(pilot, QuitChoice)
            await pilot.press("s")

        drive(spawning_console(data_dir, port), scenario, size=(120, 30))
    eventually(lambda: console_service_pid(data_dir) is None, what="the service gone")


def test_a_receiver_that_cannot_open_says_why_from_its_log(tmp_path, console_services):
    data_dir = tmp_path / "data"
    console_services.append(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()  # as a CLI verb holding the data dir would
    try:
        async def scenario(pilot):
            await wait_for(pilot, lambda: notified(pilot.app, "the receiver did not start")
                           and notified(pilot.app, "another dicomtui (pid"),
                           timeout=60, what="the reason, from the service's log")
            assert pilot.app.backend is None
            await pilot.press("q")

        drive(spawning_console(data_dir, free_port()), scenario, size=(120, 30))
    finally:
        lock.release()
    assert console_service_pid(data_dir) is None


def test_no_start_leaves_the_port_closed_until_s(tmp_path, console_services):
    data_dir, port = tmp_path / "data", free_port()
    console_services.append(data_dir)

    async def scenario(pilot):
        await wait_for_text(pilot, "attached", "service pid", "STOPPED", timeout=60)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        await pilot.press("s")
        await wait_for_text(pilot, "RUNNING", timeout=30)
        await asyncio.to_thread(wait_for_echo, port)
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("s")

    drive(spawning_console(data_dir, port, no_start=True), scenario, size=(120, 30))
    eventually(lambda: console_service_pid(data_dir) is None, what="the service gone")


def test_when_the_service_has_gone_s_starts_another(tmp_path, console_services):
    data_dir, port = tmp_path / "data", free_port()
    console_services.append(data_dir)

    async def scenario(pilot):
        await wait_for_text(pilot, "attached", "service pid", "RUNNING", timeout=60)
        first = pilot.app.snapshot.pid
        await asyncio.to_thread(stop_console_service, data_dir)  # as a crash or a kill
        text = await wait_for_text(pilot, "not running any more", "press s", timeout=30)
        assert "Errno" not in text
        await pilot.press("s")
        await wait_for(pilot, lambda: pilot.app.snapshot is not None
                       and pilot.app.snapshot.pid != first
                       and pilot.app.snapshot.state == "running", timeout=60,
                       what="a new service, receiving")
        await asyncio.to_thread(wait_for_echo, port)
        await pilot.press("q")
        await opened(pilot, QuitChoice)
        await pilot.press("s")

    drive(spawning_console(data_dir, port), scenario, size=(120, 30))
    eventually(lambda: console_service_pid(data_dir) is None, what="the service gone")


def test_secrets_reach_the_service_by_its_environment_not_its_command_line(tmp_path):
    """Anyone can read a process's command line (ps); only its user its environment."""
    from dicomtui.cli import background
    args = args_for(tmp_path / "data", 11112, api_password="s3cret", layout="flat")
    command = background._command(args, tmp_path / "data", tmp_path / "log", no_start=False)
    env = background._environment(args)
    assert "s3cret" not in " ".join(command) and "layout=flat" in command
    assert env["DICOMTUI_API_PASSWORD"] == "s3cret"
