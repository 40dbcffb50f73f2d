"""Screen 7, Uploads: the queue of study zips going to api_url, with progress and retries.

Here `r` retries the selected upload: the screen's key shadows the app's restart,
which every other screen (and Ctrl+P) still offers.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from dicomtui.models import SettingValue, UploadItem
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm, RecordScreen
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.screens.upload_dialogs import UploadPath
from dicomtui.tui.screens.upload_rows import (
    COLUMNS,
    EMPTY,
    FINISHED,
    POLICY,
    RETRYABLE,
    cancel_detail,
    counts_line,
    details,
    target_line,
    upload_rows,
)
from dicomtui.tui.tables import SortableTable, selected_key, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

SECTION = "Uploads, newest first"


class UploadsScreen(PolledScreen):
    """The queue's counts and target, then one row per upload."""

    READ_EVERY = 1.0  # uploads move: progress and countdowns change by the second
    BINDINGS = [
        Binding("r", "retry", "Retry", id="uploads.retry",
                tooltip="queue the selected failed or cancelled upload again (on this "
                        "screen r is not restart: Ctrl+P or another screen has it)"),
        Binding("c", "cancel_upload", "Cancel", id="uploads.cancel",
                tooltip="stop trying the selected upload (asks first)"),
        Binding("u", "upload", "Upload", id="uploads.upload",
                tooltip="queue a study folder (zipped first) or a .zip by its path"),
        Binding("enter", "details", "Details", id="uploads.details", show=False,
                tooltip="the selected upload, every field (full path and error)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.upload_settings: dict[str, SettingValue] = {}
        self.items: list[UploadItem] = []
        self._select: str | None = None  # an upload to put the cursor on once shown

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="uploads-summary")
        yield Label(id="uploads-label", classes="section")
        with Vertical(id="uploads-body"):
            yield SortableTable(id="uploads-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="uploads-note")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self._show()
        self.refresh_view()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend)

    @work(thread=True, exclusive=True, group="uploads-read", exit_on_error=False)
    def _read(self, backend) -> None:
        try:
            values = [v for v in backend.settings() if v.name in POLICY]
            items = backend.uploads()
        except Exception as exc:
            self.post_message(msg.UploadsLoaded(error=reason(exc)))
            return
        self.post_message(msg.UploadsLoaded(values, items))

    @on(msg.UploadsLoaded)
    def _loaded(self, message: msg.UploadsLoaded) -> None:
        if not self.loaded(message.error):
            return
        self.upload_settings = {v.name: v for v in message.settings}
        self.items = message.items
        self._show()
        table = self.query_one(DataTable)
        if self._select in table.rows:
            table.move_cursor(row=table.get_row_index(self._select))
            self._select = None

    def _show(self) -> None:
        show(self.query_one("#uploads-summary", Static),
             counts_line(self.items, self.is_loaded) + Text("\n")
             + target_line(self.upload_settings))
        label = Text(SECTION)
        if self.items:
            label.append("  Enter: details", style="dim")
        show(self.query_one("#uploads-label", Label), label)
        self._show_rows()
        note = self.query_one("#uploads-note", Static)
        words = EMPTY if self.is_loaded and not self.items else ""
        show(note, Text(words, style="dim"))
        note.display = bool(words)

    def _show_rows(self) -> None:
        table = self.query_one(DataTable)
        width = table.size.width or self.app.size.width
        sync_rows(table, upload_rows(self.items, self.app.clock(), width))

    def on_resize(self) -> None:
        if self.is_loaded:
            self._show_rows()

    def selected(self) -> UploadItem | None:
        key = selected_key(self.query_one(DataTable))
        return next((i for i in self.items if str(i.id) == key), None)

    # -- actions --------------------------------------------------------------------------
    def action_retry(self) -> None:
        item = self.selected()
        if item is None:
            return
        if item.state not in RETRYABLE:
            self.notify(f"upload {item.id} is {item.state}: only failed or cancelled "
                        "uploads can be retried", severity="warning", timeout=5)
            return
        item_id = item.id
        self.change(lambda backend: backend.retry_upload(item_id),
                    lambda done: f"upload {done.id} queued again")

    def action_cancel_upload(self) -> None:
        item = self.selected()
        if item is None:
            return
        if item.state in FINISHED:
            self.notify(f"upload {item.id} is already {item.state}: nothing to cancel",
                        severity="warning", timeout=5)
            return
        item_id = item.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.change(lambda backend: backend.cancel_upload(item_id),
                            lambda done: f"upload {done.id} cancelled")

        self.app.push_screen(Confirm(f"Cancel upload {item_id}? It will not be retried.",
                                     cancel_detail(item), yes="Cancel upload",
                                     no="Keep it"), answered)

    @on(DataTable.RowSelected)
    def action_details(self, _event=None) -> None:
        item = self.selected()
        if item is not None:
            self.app.push_screen(RecordScreen(details(item, self.app.clock()),
                                              title=f"Upload {item.id}"))

    def action_upload(self) -> None:
        self.app.push_screen(UploadPath(), self.changed)

    def changed(self, message: msg.ChangeDone | None) -> None:
        if message is not None and isinstance(message.result, UploadItem):
            self._select = str(message.result.id)
        super().changed(message)
