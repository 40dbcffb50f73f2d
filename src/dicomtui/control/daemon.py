"""`dicomtui serve`: the engine headless, with the control API on the data dir's socket.

SIGTERM/SIGINT stop accepting, let in-flight stores finish, flush the DB, remove the
socket and exit 0, so systemd restarts and stops never lose an acknowledged image.

A service the console started (`started_by="console"`, see cli/background.py) stays up
when its receiver cannot start (a busy port): the console then shows why, and the
operator fixes the setting and presses s, as with a receiver in the console's process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path

from dicomtui.backend.local import LocalBackend
from dicomtui.control.server import ControlServer
from dicomtui.locations import socket_path
from dicomtui.service.engine import Engine, EngineError

LOG = logging.getLogger("dicomtui.service")


def serve(
    data_dir: Path,
    cli_settings: Mapping,
    environ=None,
    *,
    started_by: str = "",
    start: bool = True,
) -> int:
    """Run until signalled. Returns the process exit code; raises EngineError on start
    (for a console's service only when the data dir cannot be opened)."""
    engine = Engine(data_dir, cli_settings, environ)
    control = None
    try:
        control = ControlServer(
            LocalBackend(engine, mode="service", started_by=started_by),
            socket_path(engine.data_dir),
        )
        if not started_by:
            control.start()  # clients see the receiver starting
        if start and (not started_by or _autostart(engine)):
            _start(engine, keep_serving=bool(started_by))
        if started_by:
            control.start()  # the console's first look shows how the start went
        LOG.info(
            "data dir %s, storage %s, control socket %s (pid %d)",
            engine.data_dir,
            engine.storage.root,
            control.path,
            os.getpid(),
        )
        _wait_for_signal()
        LOG.info("stopping: finishing in-flight stores")
    except RuntimeError as exc:
        if not isinstance(exc, EngineError):
            exc = EngineError(str(exc))
        raise exc from None
    finally:
        engine.close()
        if control is not None:
            control.stop()
    LOG.info("stopped cleanly")
    return 0


def _autostart(engine: Engine) -> bool:
    """The `autostart` setting: whether a console's receiver starts when it opens."""
    return bool(next(v.value for v in engine.setting_values() if v.name == "autostart"))


def _start(engine: Engine, keep_serving: bool) -> None:
    """Start the receiver; when it cannot and `keep_serving`, log why and go on serving
    the control API with the receiver stopped (its status carries the reason)."""
    try:
        engine.start()
    except EngineError as exc:
        if not keep_serving:
            raise
        LOG.error("the receiver did not start: %s", exc)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _on_signal(signum, _frame) -> None:
        LOG.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(1.0):
        pass
