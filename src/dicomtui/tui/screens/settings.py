"""Screen 9, Settings: effective values and their source; edit with the CLI's rules."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Label, Static

from dicomtui.backend.base import BackendError
from dicomtui.models import SettingValue
from dicomtui.tui import messages as msg
from dicomtui.tui.tables import SortableTable, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar
from dicomtui.wording import setting_value

COLUMNS = ("setting", "value", "source", "applies")


class SettingsScreen(Screen):
    """Every setting; Enter edits the selected one, u puts it back to its default."""

    BINDINGS = [
        Binding("enter", "edit", "Edit", id="settings.edit",
                tooltip="change the selected setting (validated, saved)"),
        Binding("u", "reset", "Reset", id="settings.reset",
                tooltip="drop the stored value: back to environment or default"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.setting_values: list[SettingValue] = []

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="settings-pending")
        yield SortableTable(id="settings-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="settings-help")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.load()

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(ModeBar).refresh()
        if not self.setting_values and self.app.backend is not None:
            self.load()

    def load(self) -> None:
        if self.app.backend is not None:
            self._load(self.app.backend)

    @work(thread=True, exclusive=True, group="settings-load", exit_on_error=False)
    def _load(self, backend) -> None:
        try:
            values = backend.settings()
        except Exception as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.post_message(msg.SettingsLoaded(values))

    @on(msg.SettingsLoaded)
    def _loaded(self, message: msg.SettingsLoaded) -> None:
        self.setting_values = message.values
        sync_rows(self.query_one(DataTable), {v.name: _row(v) for v in self.setting_values})
        pending = [v.name for v in self.setting_values if v.pending_restart]
        banner = Text()
        if pending:
            banner.append(f" waiting for a restart: {', '.join(pending)} ",
                          style="bold black on yellow")
            banner.append("  r: restart now", style="dim")
        self.query_one("#settings-pending", Static).update(banner)
        self._show_help()

    @on(DataTable.RowHighlighted)
    def _show_help(self, _event=None) -> None:
        chosen = self.selected()
        text = Text()
        if chosen is not None:
            text.append(chosen.name, style="bold")
            text.append(f": {chosen.help}. default {_default(chosen.default)}")
            text.append("; applies on restart" if chosen.restart_required
                        else "; applies at once")
            text.append("\nEnter: edit   u: back to default", style="dim")
        self.query_one("#settings-help", Static).update(text)

    def selected(self) -> SettingValue | None:
        table = self.query_one(DataTable)
        if not self.setting_values or table.cursor_row < 0 or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((v for v in self.setting_values if v.name == key), None)

    @on(DataTable.RowSelected)
    def action_edit(self, _event=None) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.app.push_screen(EditSetting(chosen), self._edited)

    def action_reset(self) -> None:
        chosen = self.selected()
        if chosen is not None and self.app.backend is not None:
            self._unset(self.app.backend, chosen.name)

    @work(thread=True, group="settings-change", exit_on_error=False)
    def _unset(self, backend, name: str) -> None:
        try:
            value = backend.unset_setting(name)
        except BackendError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._edited, value)

    def _edited(self, value: SettingValue | None) -> None:
        """Say what was saved; a change waiting for a restart says so and how (r), but
        never asks in a dialog: one that opened when the save came back caught the next
        key meant for something else (an Enter restarted the receiver)."""
        if value is None:
            return
        self.load()
        snap = self.app.snapshot
        if value.pending_restart and snap is not None and snap.state == "running":
            self.notify(f"{value.name} = {setting_value(value.value)} saved; it takes effect when "
                        "the receiver restarts: press r to restart now",
                        title="restart pending", timeout=10)
        else:
            self.notify(f"{value.name} = {setting_value(value.value)} ({value.source})", timeout=4)


def _default(value) -> str:
    """A default as `config set` would take it ('true', '11112'), '(none)' when empty."""
    return setting_value(value) or "(none)"


def _row(value: SettingValue) -> tuple:
    source = Text(value.source, style="bold" if value.source != "default" else "dim")
    if value.pending_restart:
        applies = Text("restart pending", style="bold yellow")
    else:
        applies = Text("on restart" if value.restart_required else "at once", style="dim")
    return (value.name, setting_value(value.value), source, applies)


class EditSetting(ModalScreen[SettingValue | None]):
    """One setting's new value; the service's own validation decides, word for word."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="edit.cancel")]

    def __init__(self, value: SettingValue) -> None:
        super().__init__(classes="dialog-screen")
        self.setting = value
        self._saving = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Set {self.setting.name}", classes="dialog-title")
            yield Static(f"{self.setting.help} (default {_default(self.setting.default)})",
                         classes="dialog-detail")
            yield Input(value=setting_value(self.setting.value), id="edit-value",
                        select_on_focus=True)
            yield Static(id="edit-error")
            yield Label("[b]Enter[/b] save    [b]Esc[/b] cancel", classes="dialog-keys")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self.app.backend is None:
            self._rejected("not connected to a receiver")
            return
        if self._saving:
            return  # an Enter while the first is saved: once is enough
        self._saving = True
        self.query_one("#edit-error", Static).update(Text("saving…", style="dim"))
        self._save(self.app.backend, event.value)

    @work(thread=True, exclusive=True, group="settings-change", exit_on_error=False)
    def _save(self, backend, raw: str) -> None:
        try:
            saved = backend.set_setting(self.setting.name, raw)
        except BackendError as exc:
            self.app.call_from_thread(self._rejected, str(exc))
            return
        self.app.call_from_thread(self.dismiss, saved)

    def _rejected(self, reason: str) -> None:
        self._saving = False
        self.query_one("#edit-error", Static).update(Text(reason, style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)
