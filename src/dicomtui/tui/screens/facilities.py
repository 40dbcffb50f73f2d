"""Screen 4, Facilities: each sending site's AE title, port and listener, and what its
PACS admin must enter to send here."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from dicomtui.models import Facility, PacsConfig
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm
from dicomtui.tui.screens.facility_dialogs import AddFacility, EditFacility
from dicomtui.tui.screens.facility_rows import (
    COLUMNS,
    EMPTY,
    facility_rows,
    pacs_panel,
    removal_detail,
)
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.tables import SortableTable, selected_key, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show


class FacilitiesScreen(PolledScreen):
    """The facilities table; below it, the remote PACS configuration of the selected one."""

    BINDINGS = [
        Binding("a", "add", "Add", id="facilities.add",
                tooltip="a new facility: AE title and port generated unless given"),
        Binding("e", "edit", "Edit", id="facilities.edit",
                tooltip="AE title, port, calling AEs, anonymize of the selected one "
                        "(or Enter)"),
        Binding("d", "remove", "Remove", id="facilities.remove",
                tooltip="remove the selected facility (asks first; its listener stops)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.facility_list: list[Facility] = []
        self.config: PacsConfig | None = None
        self.anonymize: bool | None = None  # the setting "default" facilities follow
        self._select: str | None = None  # a facility to put the cursor on once shown

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Label("Facilities  (images and studies today; seen: last association)",
                    classes="section")
        yield SortableTable(id="facilities-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="facilities-panel")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self._show_panel()
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.config = None  # addresses may have changed while away: read them again
        super().on_screen_resume()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend, self.config is None)

    @work(thread=True, exclusive=True, group="facilities-read", exit_on_error=False)
    def _read(self, backend, with_config: bool) -> None:
        """pacs_config() may ask DNS for the host name: read once, not every tick."""
        try:
            facilities = backend.facilities()
            config = backend.pacs_config() if with_config else None
            anonymize = anonymize_setting(backend) if with_config else None
        except Exception as exc:
            self.post_message(msg.FacilitiesLoaded([], error=reason(exc)))
            return
        self.post_message(msg.FacilitiesLoaded(facilities, config, anonymize))

    @on(msg.FacilitiesLoaded)
    def _loaded(self, message: msg.FacilitiesLoaded) -> None:
        if not self.loaded(message.error):
            return
        self.facility_list = message.facilities
        if message.config is not None:
            self.config, self.anonymize = message.config, message.anonymize
        self._show_rows()
        table = self.query_one(DataTable)
        if self._select in table.rows:
            table.move_cursor(row=table.get_row_index(self._select))
            self._select = None
        self._show_panel()

    def _show_rows(self) -> None:
        today, table = self.app.clock().date(), self.query_one(DataTable)
        width = table.size.width or self.app.size.width
        sync_rows(table, facility_rows(self.facility_list, today, width))

    def on_resize(self) -> None:
        if self.is_loaded:
            self._show_rows()

    @on(DataTable.RowHighlighted)
    def _show_panel(self, _event=None) -> None:
        panel = self.query_one("#facilities-panel", Static)
        chosen = self.selected()
        if chosen is not None:
            show(panel, pacs_panel(chosen, self.config, self.anonymize), layout=True)
        elif self.is_loaded:
            show(panel, Text(EMPTY, style="dim"), layout=True)
        else:
            show(panel, Text("reading the facilities…", style="dim"), layout=True)

    def selected(self) -> Facility | None:
        key = selected_key(self.query_one(DataTable))
        return next((f for f in self.facility_list if f.name == key), None)

    # -- actions --------------------------------------------------------------------------
    def action_add(self) -> None:
        self.app.push_screen(AddFacility(), self.changed)

    @on(DataTable.RowSelected)
    def action_edit(self, _event=None) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.app.push_screen(EditFacility(chosen), self.changed)

    def action_remove(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        name = chosen.name

        def answered(yes: bool | None) -> None:
            if yes:
                self.change(lambda backend: backend.remove_facility(name),
                            lambda gone: f"facility {gone.name} removed: port {gone.port} "
                                         "no longer listens")

        self.app.push_screen(Confirm(f"Remove facility {name}?", removal_detail(chosen),
                                     yes="Remove"), answered)

    def changed(self, message: msg.ChangeDone | None) -> None:
        if message is not None and isinstance(message.result, Facility):
            self._select = message.result.name
        self.config = None  # the listeners changed: read the configuration again
        super().changed(message)


def anonymize_setting(backend) -> bool | None:
    """The anonymize setting (None: this receiver has none)."""
    found = [v.value for v in backend.settings() if v.name == "anonymize"]
    return bool(found[0]) if found else None
