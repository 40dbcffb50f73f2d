"""Background jobs (cleanup, reindex, sending a study) with progress front ends poll.

Long work must not hold a CLI request or the console's worker thread for minutes, and
must show progress; a job runs on its own thread and reports done/total as it goes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from dicomtui.models import Job
from dicomtui.service.core.events import now_iso

LOG = logging.getLogger("dicomtui.jobs")
KEEP_FINISHED = 50


class JobError(RuntimeError):
    """A job that cannot start now (another maintenance job runs)."""


class Reporter:
    """What a running job uses to report progress and to see a cancel request."""

    def __init__(self, board: JobBoard, job: Job) -> None:
        self._board, self._job = board, job
        self.cancel_requested = False

    def progress(self, done: int, total: int, message: str = "") -> None:
        with self._board.lock:
            self._job.done, self._job.total = done, total
            if message:
                self._job.message = message


Work = Callable[[Reporter], tuple[str, dict]]  # -> (outcome message, result)


class JobBoard:
    """Jobs by id; finished ones are kept (the newest KEEP_FINISHED) for front ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._reporters: dict[int, Reporter] = {}
        self._ids = itertools.count(1)

    def start(
        self, kind: str, title: str, work: Work, exclusive: tuple[str, ...] = ()
    ) -> Job:
        """Run `work` on a new thread; JobError if a job of an `exclusive` kind runs."""
        with self.lock:
            busy = [
                j
                for j in self._jobs.values()
                if j.state == "running" and j.kind in exclusive
            ]
            if busy:
                raise JobError(
                    f"a {busy[0].kind} is already running (job {busy[0].id}: "
                    f"{busy[0].title}); wait for it to finish"
                )
            job = Job(next(self._ids), kind, title, started=now_iso())
            self._jobs[job.id] = job
            reporter = self._reporters[job.id] = Reporter(self, job)
            self._prune()
        threading.Thread(
            target=self._run,
            args=(job, reporter, work),
            daemon=True,
            name=f"dicomtui-job-{job.id}",
        ).start()
        return replace(job)

    def _run(self, job: Job, reporter: Reporter, work: Work) -> None:
        try:
            message, result = work(reporter)
            state = "cancelled" if reporter.cancel_requested else "done"
        except Exception as exc:  # the job fails, the service goes on
            LOG.exception("job %d (%s) failed", job.id, job.title)
            message, result, state = f"failed: {exc}", {}, "failed"
        with self.lock:
            job.state, job.message, job.result = state, message, result
            job.finished = now_iso()

    def all(self) -> list[Job]:
        with self.lock:
            return [replace(j) for j in sorted(self._jobs.values(), key=lambda j: -j.id)]

    def get(self, job_id: int) -> Job | None:
        with self.lock:
            job = self._jobs.get(int(job_id))
            return replace(job) if job else None

    def running(self) -> list[Job]:
        with self.lock:
            return [replace(j) for j in self._jobs.values() if j.state == "running"]

    def wait(self, job_id: int, timeout: float | None = None) -> Job | None:
        """Block until the job has finished (for tests and the CLI in-process)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None or job.state != "running":
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def cancel_all(self) -> None:
        with self.lock:
            for reporter in self._reporters.values():
                reporter.cancel_requested = True

    def _prune(self) -> None:
        finished = sorted(
            (j for j in self._jobs.values() if j.state != "running"), key=lambda j: j.id
        )
        for job in finished[:-KEEP_FINISHED] if len(finished) > KEEP_FINISHED else []:
            self._jobs.pop(job.id, None)
            self._reporters.pop(job.id, None)
