"""Screen 6, Storage: space used against the quota and the disk, usage by facility,
modality and day, and the two long jobs on the archive: cleanup and reindex."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static

from dicomtui.models import CleanupPlan, StorageReport
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm
from dicomtui.tui.jobs import JobProgress
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.screens.storage_dialogs import CleanupAge, CleanupPreview
from dicomtui.tui.screens.storage_rows import (
    USAGE_COLUMNS,
    USAGE_TABLES,
    summary,
    usage_rows,
)
from dicomtui.tui.tables import SortableTable, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

ARCHIVE_JOBS = ("cleanup", "reindex")  # one at a time, whoever started it
REINDEX_DETAIL = ("Every file under the storage folder is read again and the study index "
                  "rebuilt from them; the Studies screen fills in as it goes. Unreadable "
                  "files are counted and logged. Receiving goes on meanwhile.")


class StorageScreen(PolledScreen):
    """The summary lines, the three usage tables, then the progress of a running job."""

    READ_EVERY = 5.0  # the report walks the index; space changes slowly
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]  # tables side by side
    BINDINGS = [
        Binding("c", "cleanup", "Cleanup", id="storage.cleanup",
                tooltip="remove studies received more than N days ago: asks N, shows "
                "what goes and what stays, then asks again"),
        Binding("i", "reindex", "Reindex", id="storage.reindex",
                tooltip="rebuild the study index from the files in storage (asks first)"),
        Binding("tab", "app.focus_next", "Next table", key_display="Tab", id="storage.tab",
                show=False, tooltip="between the facility, modality and day tables"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: StorageReport | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="storage-summary")
        with Horizontal(id="storage-tables"):
            for kind, title in USAGE_TABLES:
                with Vertical(classes="usage"):
                    yield Label(title, classes="section")
                    yield SortableTable(id=f"usage-{kind}", cursor_type="row",
                                    zebra_stripes=True)
        yield JobProgress(id="storage-jobs")
        yield KeyBar()

    def on_mount(self) -> None:
        for kind, _title in USAGE_TABLES:
            self.query_one(f"#usage-{kind}", DataTable).add_columns(kind, *USAGE_COLUMNS)
        self._show()
        self.refresh_view()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend)

    @work(thread=True, exclusive=True, group="storage-read", exit_on_error=False)
    def _read(self, backend) -> None:
        try:
            report = backend.storage_report()
            running = [j for j in backend.jobs()
                       if j.state == "running" and j.kind in ARCHIVE_JOBS]
        except Exception as exc:
            self.post_message(msg.StorageLoaded(error=reason(exc)))
            return
        self.post_message(msg.StorageLoaded(report, running))

    @on(msg.StorageLoaded)
    def _loaded(self, message: msg.StorageLoaded) -> None:
        if not self.loaded(message.error):
            return
        self.report = message.report
        self._show()
        for job in message.jobs:  # started by the CLI, or here before a restart
            self.query_one(JobProgress).follow(job)

    def _show(self) -> None:
        show(self.query_one("#storage-summary", Static), summary(self.report))
        if self.report is None:
            return
        for kind, _title in USAGE_TABLES:
            rows = getattr(self.report, f"by_{kind}")
            sync_rows(self.query_one(f"#usage-{kind}", DataTable), usage_rows(rows, kind))

    @on(JobProgress.Finished)
    def _job_finished(self, _message: JobProgress.Finished) -> None:
        self.load(after_change=True)

    # -- actions --------------------------------------------------------------------------
    def action_cleanup(self) -> None:
        if self._busy():
            return
        retention = self.report.retention_days if self.report else 0
        self.app.push_screen(CleanupAge(retention), self._planned)

    def _planned(self, message: msg.ChangeDone | None) -> None:
        if message is None or not isinstance(message.result, CleanupPlan):
            return
        plan = message.result
        days = plan.older_than_days

        def answered(yes: bool | None) -> None:
            if yes:
                self.query_one(JobProgress).start(lambda b: b.start_cleanup(days))

        self.app.push_screen(CleanupPreview(plan, self.app.clock().date()), answered)

    def action_reindex(self) -> None:
        if self._busy():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.query_one(JobProgress).start(lambda b: b.start_reindex())

        self.app.push_screen(Confirm("Rebuild the study index from the storage folder?",
                                     REINDEX_DETAIL, yes="Reindex"), answered)

    def _busy(self) -> bool:
        """A cleanup or reindex shown running here: say so rather than ask in vain."""
        running = [j for j in self.query_one(JobProgress).following.values()
                   if j.kind in ARCHIVE_JOBS]
        if running:
            self.notify(f"{running[0].title} is running: wait for it to finish",
                        severity="warning", timeout=5)
        return bool(running)
