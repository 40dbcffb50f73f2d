"""`dicomtui serve`: the engine headless, with the control API on the data dir's socket.

SIGTERM/SIGINT stop accepting, let in-flight stores finish, flush the DB, remove the
socket and exit 0, so systemd restarts and stops never lose an acknowledged image.
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


def serve(data_dir: Path, cli_settings: Mapping, environ=None) -> int:
    """Run until signalled. Returns the process exit code; raises EngineError on start."""
    engine = Engine(data_dir, cli_settings, environ)
    control = None
    try:
        control = ControlServer(
            LocalBackend(engine, mode="service"), socket_path(engine.data_dir)
        )
        control.start()
        engine.start()
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


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _on_signal(signum, _frame) -> None:
        LOG.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(1.0):
        pass
