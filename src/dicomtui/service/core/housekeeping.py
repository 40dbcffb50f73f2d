"""Housekeeping: what grows with time is trimmed (old log files, finished uploads).

One thread while the receiver runs: at start and then hourly it runs each component's
own trimming; a failing job is logged and the others still run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dicomtui.service.core.background import Background

LOG = logging.getLogger("dicomtui.service")
INTERVAL_S = 3600.0


class Housekeeper(Background):
    NAME = "dicomtui-housekeeping"

    def __init__(self, jobs: list[Callable[[], None]]) -> None:
        super().__init__()
        self._jobs = jobs

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            for job in self._jobs:
                try:
                    job()
                except Exception:  # one failing job must not stop the others
                    LOG.exception("housekeeping failed")
            stopping.wait(INTERVAL_S)
