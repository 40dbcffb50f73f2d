"""Screen 3, Studies: the study index (search, state, counts), its series, and sending
a study to a C-MOVE destination with its progress."""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Static

from dicomtui.models import Destination, StudyPage, StudyQuery, StudyRow
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm
from dicomtui.tui.jobs import JobProgress
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.screens.series import SeriesScreen
from dicomtui.tui.screens.study_dialogs import PickDestination
from dicomtui.tui.screens.study_rows import (
    COLUMNS,
    EMPTY,
    NO_MATCH,
    section_label,
    send_question,
    study_rows,
)
from dicomtui.tui.screens.study_search import (
    FIELDS,
    NO_SEARCH,
    SearchError,
    field_values,
    study_query,
)
from dicomtui.tui.tables import SortableTable, selected_key, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

PLACEHOLDERS = {"patient": "/ patient name, ID", "accession": "accession",
                "date_from": "from date", "date_to": "to date", "modality": "modality",
                "facility": "facility"}


class StudiesScreen(PolledScreen):
    """The search fields, then one row per indexed study, newest received first."""

    READ_EVERY = 3.0  # states and counts move while studies arrive, not by the frame
    BINDINGS = [
        Binding("slash", "search", "Search", key_display="/", id="studies.search",
                tooltip="patient name or ID, accession, study dates (YYYYMMDD or "
                "YYYY-MM-DD), modality, facility; Enter runs it, Esc clears it"),
        Binding("m", "send", "Send", id="studies.send",
                tooltip="send the selected study to a C-MOVE destination: pick one, "
                "confirm, watch its progress"),
        Binding("enter", "series", "Series", id="studies.series", show=False,
                tooltip="the series of the selected study (Esc: back)"),
        Binding("escape", "clear_search", "", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.search = NO_SEARCH
        self.page: StudyPage | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with Horizontal(id="studies-search"):
            for name in FIELDS:
                yield Input(placeholder=PLACEHOLDERS[name], id=f"search-{name}",
                            select_on_focus=False)
        yield Static(id="studies-search-error")
        yield Label(id="studies-label", classes="section")
        with Vertical(id="studies-body"):
            yield SortableTable(id="studies-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="studies-note")
        yield JobProgress(id="studies-jobs")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()  # not the search fields: keys act on the table until /
        self._say_search_error("")
        self._show()
        self.refresh_view()

    def refresh_view(self) -> None:
        if isinstance(self.app.screen, SeriesScreen):
            return  # under a study's series: read again when shown
        super().refresh_view()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend, self.search)

    @work(thread=True, exclusive=True, group="studies-read", exit_on_error=False)
    def _read(self, backend, query: StudyQuery) -> None:
        try:
            page = backend.studies(query)
        except Exception as exc:
            self.post_message(msg.StudiesLoaded(query, error=reason(exc)))
            return
        self.post_message(msg.StudiesLoaded(query, page))

    @on(msg.StudiesLoaded)
    def _loaded(self, message: msg.StudiesLoaded) -> None:
        if not self.loaded(message.error) or message.query != self.search:
            return  # a new search is being read
        self.page = message.page
        self._show()

    def _show(self) -> None:
        show(self.query_one("#studies-label", Label), section_label(self.page, self.search))
        studies = self.page.studies if self.page else []
        sync_rows(self.query_one(DataTable), study_rows(studies, self.app.clock().date()))
        note = self.query_one("#studies-note", Static)
        words = "" if studies or self.page is None else (
            NO_MATCH if self.search != NO_SEARCH else EMPTY)
        show(note, Text(words, style="dim"))
        note.display = bool(words)

    def selected(self) -> StudyRow | None:
        key = selected_key(self.query_one(DataTable))
        studies = self.page.studies if self.page else []
        return next((s for s in studies if s.uid == key), None)

    # -- search -------------------------------------------------------------------------
    def action_search(self) -> None:
        self.query_one("#search-patient", Input).focus()

    @on(Input.Submitted)
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        values = {name: self.query_one(f"#search-{name}", Input).value for name in FIELDS}
        try:
            query = study_query(values)
        except SearchError as exc:
            self._say_search_error(str(exc))
            return
        self._say_search_error("")
        self.query_one(DataTable).focus()
        self._search_for(query)

    def action_clear_search(self) -> None:
        """Esc: empty fields, every study again, and the cursor back in the table."""
        self._say_search_error("")
        self.query_one(DataTable).focus()
        self._search_for(NO_SEARCH)

    def _fill(self, query: StudyQuery) -> None:
        for name, value in field_values(query).items():
            self.query_one(f"#search-{name}", Input).value = value

    def _search_for(self, query: StudyQuery) -> None:
        self._fill(query)  # dates as read back: 20261101 shows 2026-11-01
        if query == self.search:
            return
        self.search = query
        show(self.query_one("#studies-label", Label),
             Text("searching…", style="dim"))
        self.load(after_change=True)

    def _say_search_error(self, words: str) -> None:
        box = self.query_one("#studies-search-error", Static)
        show(box, Text(words, style="bold red"))
        box.display = bool(words)

    # -- series and sending -------------------------------------------------------------
    @on(DataTable.RowSelected, "#studies-table")
    def action_series(self, _event=None) -> None:
        study = self.selected()
        if study is not None:
            self.app.push_screen(SeriesScreen(study), self._back_from_series)

    def _back_from_series(self, send: StudyRow | None) -> None:
        if send is not None:
            self.send(send)

    def action_send(self) -> None:
        study = self.selected()
        if study is not None:
            self.send(study)

    def send(self, study: StudyRow) -> None:
        """Pick a destination, confirm, then start the send and follow its job."""
        self.app.push_screen(PickDestination(study), partial(self._picked, study))

    def _picked(self, study: StudyRow, dest: Destination | None) -> None:
        if dest is None:
            return
        uid, ae = study.uid, dest.ae_title

        def answered(yes: bool | None) -> None:
            if yes:
                self.query_one(JobProgress).start(lambda b: b.send_study(uid, ae))

        question, detail = send_question(study, dest)
        self.app.push_screen(Confirm(question, detail, yes="Send"), answered)
