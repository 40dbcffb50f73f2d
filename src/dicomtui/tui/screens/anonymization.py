"""Screen 8, Anonymization: the policy, and the subject codes of the anonymization map.

Original identities are masked. `v` reveals them after a question, with one audited
read of the whole map; they stay in memory only while this screen shows: leaving it,
a dialog over it, or suspending the console masks them again.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label, Static

from dicomtui.models import AnonSubject, SettingValue
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm
from dicomtui.tui.screens.anon_dialogs import ExportMap
from dicomtui.tui.screens.anon_rows import (
    COLUMNS,
    POLICY,
    count_line,
    empty_note,
    policy_line,
    section_label,
    shown_subjects,
    subject_rows,
)
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.tables import SortableTable, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

REVEAL_DETAIL = ("The receiver's log records the reveal. Patient names and IDs show "
                 "until you press v again or leave this screen.")


class AnonymizationScreen(PolledScreen):
    """The policy lines, then one row per subject code (masked unless revealed)."""

    READ_EVERY = 2.0  # the map changes with new patients, not with every image
    BINDINGS = [
        # said on the screen itself (above the table), so the footer fits 80 columns
        Binding("slash", "search", "Search", key_display="/", id="anonymization.search",
                show=False, tooltip="subject codes containing what you type (Enter "
                "applies, Esc clears)"),
        Binding("v", "reveal", "Reveal", id="anonymization.reveal",
                tooltip="show the original patient identities (asks first, logged); "
                        "again: mask them"),
        Binding("x", "export", "Export", id="anonymization.export",
                tooltip="write codes and original identities to a new JSON file"),
        Binding("escape", "clear_search", "", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.anon_settings: dict[str, SettingValue] = {}
        self.subjects: list[AnonSubject] = []  # as read: masked
        self.search_text = ""
        self.originals: dict[str, AnonSubject] = {}  # code -> revealed, while shown
        self._reveal = 0  # the reveal asked for last; bumped by masking, so late
        # answers to a reveal are dropped

    @property
    def revealed(self) -> bool:
        return bool(self.originals)

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="anon-policy")
        yield Label(id="anon-label", classes="section")
        yield Input(placeholder="subject code contains…   (Enter applies, Esc clears)",
                    id="anon-search")
        with Vertical(id="anon-body"):
            yield SortableTable(id="anon-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="anon-note")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()  # not the search box, hidden until /
        self.app.app_suspend_signal.subscribe(self, self._app_suspended)
        self._show()
        self.refresh_view()

    def on_screen_suspend(self) -> None:
        self.mask()

    def _app_suspended(self, _app) -> None:
        self.mask()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend, self.search_text)

    @work(thread=True, exclusive=True, group="anon-read", exit_on_error=False)
    def _read(self, backend, search: str) -> None:
        try:
            values = [v for v in backend.settings() if v.name in POLICY]
            subjects = backend.anon_subjects(search=search)
        except Exception as exc:
            self.post_message(msg.AnonLoaded(error=reason(exc)))
            return
        self.post_message(msg.AnonLoaded(values, subjects, search))

    @on(msg.AnonLoaded)
    def _loaded(self, message: msg.AnonLoaded) -> None:
        if not self.loaded(message.error) or message.search != self.search_text:
            return  # a new search is being read
        self.anon_settings = {v.name: v for v in message.settings}
        self.subjects = message.subjects
        self._show()

    def _show(self) -> None:
        show(self.query_one("#anon-policy", Static),
             policy_line(self.anon_settings, self.is_loaded) + Text("\n")
             + count_line(len(self.subjects), self.revealed))
        show(self.query_one("#anon-label", Label),
             section_label(len(self.subjects), self.search_text, self.is_loaded))
        self._show_rows()
        note = self.query_one("#anon-note", Static)
        words = empty_note(self.search_text) if self.is_loaded and not self.subjects else ""
        show(note, Text(words, style="dim"))
        note.display = bool(words)

    def _show_rows(self) -> None:
        today, table = self.app.clock().date(), self.query_one(DataTable)
        width = table.size.width or self.app.size.width
        rows = shown_subjects(self.subjects, self.originals)
        sync_rows(table, subject_rows(rows, today, width))

    def on_resize(self) -> None:
        if self.is_loaded:
            self._show_rows()

    # -- reveal and mask ----------------------------------------------------------------
    def action_reveal(self) -> None:
        if self.revealed:
            self.mask()
            self.notify("original identities masked again", timeout=4)
            return
        self.app.push_screen(Confirm("Show original patient identities? This is logged.",
                                     REVEAL_DETAIL, yes="Show"), self._reveal_answered)

    def _reveal_answered(self, yes: bool | None) -> None:
        if not yes:
            return
        if self.app.backend is None:
            self.notify("not connected to a receiver", severity="error")
            return
        self._reveal += 1
        self._read_originals(self.app.backend, self._reveal)

    @work(thread=True, exclusive=True, group="anon-reveal", exit_on_error=False)
    def _read_originals(self, backend, reveal: int) -> None:
        try:
            subjects = backend.anon_subjects(reveal=True)
        except Exception as exc:
            self.post_message(msg.AnonRevealed(reveal, error=reason(exc)))
            return
        self.post_message(msg.AnonRevealed(reveal, subjects))

    @on(msg.AnonRevealed)
    def _revealed(self, message: msg.AnonRevealed) -> None:
        if message.reveal != self._reveal:
            return  # masked again (or left) while it was being read
        if message.error:
            self.notify(message.error, title="identities not shown", severity="error",
                        timeout=10)
            return
        self.originals = {s.code: s for s in message.subjects if s.revealed}
        self._show()

    def mask(self) -> None:
        """Forget the originals and show masks: nothing revealed outlives the screen."""
        self._reveal += 1
        if not self.originals:
            return
        self.originals = {}
        if self.is_mounted:
            self._show()

    # -- search and export --------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one("#anon-search", Input)
        box.value = self.search_text
        box.add_class("open")
        box.focus()

    @on(Input.Submitted, "#anon-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_search()
        self._search_for(event.value.strip())

    def action_clear_search(self) -> None:
        self._close_search()
        if self.search_text:
            self._search_for("")

    def _close_search(self) -> None:
        self.query_one("#anon-search", Input).remove_class("open")
        self.query_one(DataTable).focus()

    def _search_for(self, text: str) -> None:
        if text == self.search_text:
            return
        self.search_text = text
        self._show()
        self.load(after_change=True)

    def action_export(self) -> None:
        self.app.push_screen(ExportMap(), self.changed)
