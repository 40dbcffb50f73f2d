"""Sending a study: pick one of the C-MOVE destinations (read from the Backend)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from dicomtui.models import Destination, StudyRow
from dicomtui.tui import messages as msg
from dicomtui.tui.screens.polled import reason
from dicomtui.tui.screens.study_rows import study_words
from dicomtui.tui.widgets import show

COLUMNS = ("AE title", "address", "description")
NONE_YET = ("No destinations yet. Add one from a shell, then press m again:\n"
            "  dicomtui dest add AE HOST PORT\n"
            "e.g. dicomtui dest add PACS_MAIN 10.1.2.50 104")


class PickDestination(ModalScreen[Destination | None]):
    """The destinations, one row each; Enter picks the selected one, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="destinations.cancel")]

    def __init__(self, study: StudyRow) -> None:
        super().__init__(classes="dialog-screen")
        self.study = study
        self.destination_list: list[Destination] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog destinations"):
            yield Label("Send a study to…", classes="dialog-title")
            yield Static(study_words(self.study), classes="dialog-detail")
            yield DataTable(id="destinations-table", cursor_type="row")
            yield Static(id="destinations-note")
            yield Label(id="destinations-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.display = False
        self._say(Text("reading the destinations…", style="dim"), "[b]Esc[/b] cancel")
        if self.app.backend is None:
            self._say(Text("not connected to a receiver", style="bold red"),
                      "[b]Esc[/b] close")
            return
        self._read(self.app.backend)

    @work(thread=True, exclusive=True, group="destinations-read", exit_on_error=False)
    def _read(self, backend) -> None:
        try:
            found = backend.destinations()
        except Exception as exc:
            self.post_message(msg.DestinationsLoaded(error=reason(exc)))
            return
        self.post_message(msg.DestinationsLoaded(found))

    @on(msg.DestinationsLoaded)
    def _loaded(self, message: msg.DestinationsLoaded) -> None:
        message.stop()
        if message.error:
            self._say(Text(message.error, style="bold red"), "[b]Esc[/b] close")
            return
        self.destination_list = message.destinations
        if not self.destination_list:
            self._say(Text(NONE_YET), "[b]Esc[/b] close")
            return
        table = self.query_one(DataTable)
        for d in self.destination_list:
            table.add_row(d.ae_title, f"{d.host}:{d.port}", d.description, key=d.ae_title)
        table.display = True
        table.focus()
        self._say(Text(""), "[b]Enter[/b] send to the selected    [b]Esc[/b] cancel")

    def _say(self, note: Text, keys: str) -> None:
        box = self.query_one("#destinations-note", Static)
        show(box, note, layout=True)
        box.display = bool(note.plain)
        self.query_one("#destinations-keys", Label).update(keys)

    @on(DataTable.RowSelected)
    def _picked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        self.dismiss(next((d for d in self.destination_list if d.ae_title == key), None))

    def action_cancel(self) -> None:
        self.dismiss(None)
