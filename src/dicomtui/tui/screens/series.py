"""One study's series, over the Studies screen: Esc goes back to the list."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from dicomtui.backend.base import NotFound
from dicomtui.models import SeriesRow, StudyRow
from dicomtui.tui import messages as msg
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.screens.study_rows import SERIES_COLUMNS, series_rows, study_header
from dicomtui.tui.tables import SortableTable, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

GONE = "This study is no longer indexed (cleaned up, or the index was rebuilt). Esc: back."


class SeriesScreen(PolledScreen):
    """Who and what the study is, then its series by number; dismissed with the study
    when `m` asks to send it (the list underneath follows the send)."""

    READ_EVERY = 3.0  # a study still being received grows
    BINDINGS = [
        Binding("escape", "back", "Back", key_display="Esc", id="series.back",
                tooltip="back to the list of studies"),
        Binding("m", "send", "Send", id="series.send",
                tooltip="send this study to a C-MOVE destination (progress shows on "
                "the list)"),
    ]

    def __init__(self, study: StudyRow) -> None:
        super().__init__()
        self.study = study
        self.series_list: list[SeriesRow] | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="series-study")
        yield Label("Series, by number", classes="section")
        yield SortableTable(id="series-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="series-note")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*SERIES_COLUMNS)
        self._show(missing=False)
        self.refresh_view()

    def read(self, backend) -> None:
        self._read(backend, self.study.uid)

    @work(thread=True, exclusive=True, group="series-read", exit_on_error=False)
    def _read(self, backend, uid: str) -> None:
        try:
            found = backend.series(uid)
        except NotFound as exc:
            self.post_message(msg.SeriesLoaded(error=str(exc), missing=True))
            return
        except Exception as exc:
            self.post_message(msg.SeriesLoaded(error=reason(exc)))
            return
        self.post_message(msg.SeriesLoaded(found))

    @on(msg.SeriesLoaded)
    def _loaded(self, message: msg.SeriesLoaded) -> None:
        if self.loaded(message.error):
            self.series_list = message.series
        self._show(message.missing)

    def _show(self, missing: bool) -> None:
        show(self.query_one("#series-study", Static),
             study_header(self.study, self.series_list))
        sync_rows(self.query_one(DataTable), series_rows(self.series_list or []))
        note = self.query_one("#series-note", Static)
        words = GONE if missing else ("no series indexed" if self.series_list == []
                                      else "")
        show(note, Text(words, style="dim"))
        note.display = bool(words)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_send(self) -> None:
        self.dismiss(self.study)
