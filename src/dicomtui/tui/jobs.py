"""Progress of background jobs (send, cleanup, reindex): a line each, then a toast.

A job runs in the engine; the console only reads `job(id)` from a thread worker as
often as it polls the status, and stops reading once the job has ended.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Static

from dicomtui.backend.base import NotFound
from dicomtui.models import Job
from dicomtui.tui import format as fmt
from dicomtui.tui import messages as msg
from dicomtui.tui.forms import Call
from dicomtui.tui.screens.polled import reason

BAR_WIDTH = 20
ENDED_KEPT = 50  # ids of jobs already toasted, so a stale report cannot revive one


class JobProgress(Static):
    """One line per job being followed (hidden when there is none)."""

    DEFAULT_CSS = "JobProgress { height: auto; padding: 0 1; display: none; }"

    @dataclass
    class Finished(Message):
        """A followed job ended (done, failed or cancelled); its toast is shown."""

        job: Job

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.following: dict[int, Job] = {}
        self._ended_ids: deque[int] = deque(maxlen=ENDED_KEPT)
        self._reading = False
        self._error = ""

    def start(self, call: Call) -> None:
        """Ask the Backend to start a job (in a worker); follow it once it answers."""
        if self.app.backend is None:
            self.notify("not connected to a receiver", severity="error")
            return
        self._start(self.app.backend, call)

    @work(thread=True, group="job-start", exit_on_error=False)
    def _start(self, backend, call: Call) -> None:
        try:
            job = call(backend)
        except Exception as exc:  # InvalidRequest (one already runs), NotFound, a bug
            self.post_message(msg.JobStarted(error=reason(exc)))
            return
        self.post_message(msg.JobStarted(job))

    @on(msg.JobStarted)
    def _started(self, message: msg.JobStarted) -> None:
        message.stop()
        if message.error:
            self.notify(message.error, title="not started", severity="error", timeout=10)
            return
        self.notify(f"{message.job.title}: started", timeout=4)
        self.follow(message.job)

    def follow(self, job: Job) -> None:
        """Show `job` and read it until it ends (one followed or ended already, as a
        report read before it ended may say, is left alone)."""
        if job.id in self.following or job.id in self._ended_ids:
            return
        self.following[job.id] = job
        self._show()
        if job.state != "running":
            self._ended(job)
        elif not self._reading:
            self._reading = True
            self.set_timer(self.app.poll_interval, self._read_now)

    # -- reading: read -> show -> reschedule ------------------------------------------
    def _read_now(self) -> None:
        if not self.following:
            self._reading = False
        elif self.app.backend is None:  # reconnecting: try again shortly
            self.set_timer(max(1.0, self.app.poll_interval), self._read_now)
        else:
            self._read(self.app.backend, list(self.following))

    @work(thread=True, exclusive=True, group="job-read", exit_on_error=False)
    def _read(self, backend, ids: list[int]) -> None:
        jobs, gone = [], []
        try:
            for job_id in ids:
                try:
                    jobs.append(backend.job(job_id))
                except NotFound:
                    gone.append(job_id)
        except Exception as exc:  # the service went away: shown, and reading goes on
            self.post_message(msg.JobsRead(error=reason(exc)))
            return
        self.post_message(msg.JobsRead(jobs, gone))

    @on(msg.JobsRead)
    def _jobs_read(self, message: msg.JobsRead) -> None:
        message.stop()
        self._error = message.error
        for job_id in message.gone:
            self.following.pop(job_id, None)
            self.notify(f"job {job_id} is no longer known to the receiver (restarted?)",
                        severity="warning", timeout=10)
        for job in message.jobs:
            if job.id in self.following:
                self.following[job.id] = job
        for job in [j for j in message.jobs if j.state != "running"]:
            self._ended(job)
        self._show()
        self._reading = bool(self.following)
        if self._reading:
            self.set_timer(self.app.poll_interval if not message.error
                           else max(1.0, self.app.poll_interval), self._read_now)

    def _ended(self, job: Job) -> None:
        self.following.pop(job.id, None)
        self._ended_ids.append(job.id)
        words, title, severity = outcome(job)
        self.notify(words, title=title, severity=severity,
                    timeout=15 if severity == "error" else 8)
        self.post_message(self.Finished(job))
        self._show()

    def _show(self) -> None:
        width = max(20, (self.size.width or self.app.size.width) - 2)
        lines = [job_line(job, width) for job in self.following.values()]
        if self._error and lines:
            problem = Text(f"cannot read progress: {self._error}", style="red")
            problem.truncate(width, overflow="ellipsis")
            lines.append(problem)
        self.display = bool(lines)
        self.update(Text("\n").join(lines))

    def on_resize(self) -> None:
        self._show()


def job_line(job: Job, width: int) -> Text:
    """'send DOE^JOHN to PACS  ████████░░░░ 120/214  sent 120 of 214 instances' (a
    long title is cut first: the bar must show)."""
    room = max(12, width // 2)
    title = job.title if len(job.title) <= room else job.title[:room - 1] + "…"
    text = Text(title, style="bold")
    text.append("  ")
    if job.total:
        text.append(fmt.bar(job.done / job.total, BAR_WIDTH), style="yellow")
        text.append(f" {job.done:,}/{job.total:,}")
    else:
        text.append(fmt.bar(0, BAR_WIDTH), style="dim")
    if job.message:
        text.append(f"  {job.message}", style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


def outcome(job: Job) -> tuple[str, str, str]:
    """The toast for an ended job: (words, title, severity)."""
    if job.state == "done":
        words = job.message or "done"
        counts = result_counts(job.result)
        if any(part not in words for part in counts):  # the message may say them already
            words += "\n" + " · ".join(counts)
        return words, f"{job.title}: done", "information"
    if job.state == "failed":
        return job.message or "failed", f"{job.title}: failed", "error"
    return job.message or job.state, f"{job.title}: {job.state}", "warning"


RESULT_WORDS = {"unreadable_count": "unreadable", "total": "in all", "warning": "with a warning"}


def _words(key: str) -> str:
    """A job result's key as words ('unreadable', not 'unreadable_count')."""
    return RESULT_WORDS.get(key, key.replace("_", " "))


def result_counts(result: dict) -> list[str]:
    """['214 completed', '0 failed'] from a job's result (sizes humanized)."""
    words = []
    for key, value in result.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        words.append(fmt.size(value) if "bytes" in key else f"{value:,} {_words(key)}")
    return words
