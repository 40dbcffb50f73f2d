"""Screen 2, Log: the transaction log (filter, live tail, details) and the app log."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, RichLog, Static, TabbedContent, TabPane

from dicomtui.models import TransactionFilter
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import RecordScreen
from dicomtui.tui.filters import HINT, FilterError, LogFilter, parse
from dicomtui.tui.logtable import LogTable
from dicomtui.tui.saving import save_table
from dicomtui.tui.screens.log_rows import COLUMNS, app_log_line, file_cells, row_cells
from dicomtui.tui.widgets import KeyBar, ModeBar, show
from dicomtui.wording import count

MAX_ROWS = 1000  # rows the table holds; older ones come from the DB a page at a time
PAGE = 100
LEVELS = ("INFO", "WARNING", "ERROR")  # the engine's event stream starts at INFO
LEVEL_NUMBERS = {name: n for n, name in enumerate(LEVELS)}


class TxTable(LogTable):
    """The transactions table: moving up leaves the live tail."""

    def action_cursor_up(self) -> None:
        self.screen.leave_tail()
        super().action_cursor_up()

    def action_page_up(self) -> None:
        self.screen.leave_tail()
        super().action_page_up()

    def action_first(self) -> None:
        self.screen.leave_tail()
        super().action_first()

    def on_mouse_scroll_up(self, event) -> None:
        self.screen.leave_tail()
        super().on_mouse_scroll_up(event)


class LogScreen(Screen):
    """Transactions newest at the bottom; `f` follows new ones as they are recorded."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/", id="log.filter",
                tooltip=HINT),
        Binding("f", "follow", "Follow", id="log.follow",
                tooltip="live tail on/off (moving up pauses it)"),
        Binding("t", "tab", "Tab", id="log.tab",
                tooltip="transactions / application log"),
        # shown on the screen itself where they apply, so the footer fits 80 columns
        Binding("c", "clear", "Clear filters", id="log.clear", show=False,
                tooltip="remove every filter"),
        Binding("enter", "details", "Details", id="log.details", show=False,
                tooltip="the selected transaction, every field"),
        Binding("l", "level", "Log level", id="log.level", show=False,
                tooltip="application log: INFO, WARNING or ERROR and up"),
        Binding("w", "save", "Save view", id="log.save", show=False,
                tooltip="write the rows shown (filter applied) to a .tsv file, mode 0600, "
                "in the current folder (else the data dir)"),
        Binding("escape", "cancel_filter", "", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = LogFilter()
        self.follow = True
        self.tx_rows: list[dict] = []
        self.tail_cursor = 0
        self.is_loaded = self.is_loading = False
        self.log_level = "INFO"

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with Horizontal(id="log-bar"):
            yield Static(id="log-chips")
            yield Static(id="log-follow")
        yield Input(placeholder=HINT + "   (Enter applies, Esc cancels)", id="log-filter")
        yield Static(id="log-filter-error")
        with TabbedContent(id="log-tabs"):
            with TabPane("Transactions", id="tab-tx"):
                yield TxTable(COLUMNS, id="log-table")
            with TabPane("Application log", id="tab-app"):
                yield Static(id="applog-level")
                yield RichLog(id="applog", max_lines=2000, wrap=False, markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.app.log_screen = self
        self.query_one(TxTable).focus()
        self._show_bar()
        self._rewrite_app_log()
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(ModeBar).refresh()
        if not self.is_loaded and not self.is_loading and self.app.backend is not None:
            self.reload()

    # -- loading --------------------------------------------------------------------
    def reload(self) -> None:
        """Read the newest rows matching the filter, replacing the table."""
        self.is_loading = True
        self._load(self.app.backend, self.filter, None)

    def load_older(self) -> None:
        if self.is_loading or not self.tx_rows or self.app.backend is None:
            return
        self.is_loading = True
        self._load(self.app.backend, self.filter, self.tx_rows[0]["id"])

    @work(thread=True, exclusive=True, group="log-load", exit_on_error=False)
    def _load(self, backend, log_filter: LogFilter, before_id: int | None) -> None:
        where = "replace" if before_id is None else "older"
        limit = MAX_ROWS if before_id is None else PAGE
        try:
            newest = backend.transactions(TransactionFilter(limit=1))
            rows = backend.transactions(log_filter.query(limit, before_id=before_id))
        except Exception as exc:
            self.post_message(msg.RowsLoaded(where, error=str(exc)))
            return
        rows.reverse()
        self.post_message(msg.RowsLoaded(where, rows, newest[0]["id"] if newest else 0))

    @on(msg.RowsLoaded)
    def _rows_loaded(self, message: msg.RowsLoaded) -> None:
        self.is_loading = False
        if message.error:
            self.is_loaded = True
            self.notify(message.error, title="cannot read the log", severity="error")
            return
        if message.where == "replace":
            self.tx_rows, self.tail_cursor, self.is_loaded = message.rows, message.cursor, True
            self._fill(len(self.tx_rows) - 1)
        elif message.rows:
            self.tx_rows = (message.rows + self.tx_rows)[:MAX_ROWS]
            self._fill(len(message.rows))
        else:
            self.notify("no older transactions", timeout=3)

    def _fill(self, cursor_row: int) -> None:
        today = self.app.clock().date()
        self.query_one(TxTable).set_rows([row_cells(r, today) for r in self.tx_rows],
                                         cursor_row)
        self._show_bar()

    # -- live tail (fed by the app's poll) ---------------------------------------------
    def tail_request(self):
        """What the next poll should fetch for this table: None unless it is on screen
        and following (coming back to it reads the newest rows afresh)."""
        if not (self.follow and self.is_loaded and not self.is_loading
                and self.app.screen is self):
            return None
        return self.filter, self.tail_cursor, MAX_ROWS

    def add_tail(self, rows: list[dict], cursor: int, log_filter,
                 replace: bool = False) -> None:
        if log_filter is not self.filter or not self.follow or self.is_loading:
            return
        if replace:  # more arrived than the table holds: show the newest afresh
            self.tx_rows, self.tail_cursor = rows, cursor
            self._fill(len(rows) - 1)
            return
        last = self.tx_rows[-1]["id"] if self.tx_rows else 0
        fresh = [r for r in rows if r["id"] > last]
        self.tail_cursor = max(self.tail_cursor, cursor)
        if fresh:
            self._append_rows(fresh)

    def _append_rows(self, fresh: list[dict]) -> None:
        today = self.app.clock().date()
        self.query_one(TxTable).append([row_cells(r, today) for r in fresh], MAX_ROWS,
                                       follow=True)
        self.tx_rows.extend(fresh)
        del self.tx_rows[:-MAX_ROWS]
        self._show_bar()

    def leave_tail(self) -> None:
        if self.follow:
            self.follow = False
            self._show_bar()

    # -- application log ----------------------------------------------------------------
    def add_app_log(self, events) -> None:
        log = self.query_one("#applog", RichLog)
        for event in events:
            if self._level_ok(event):
                log.write(app_log_line(event))

    def _rewrite_app_log(self) -> None:
        log = self.query_one("#applog", RichLog)
        log.clear()
        self.add_app_log(list(self.app.log_events))
        self.query_one("#applog-level", Static).update(
            Text.assemble("level ", (self.log_level, "bold"), " and up   (l: change)"))

    def _level_ok(self, event) -> bool:
        return LEVEL_NUMBERS.get(event.level, 1) >= LEVEL_NUMBERS[self.log_level]

    # -- actions --------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = " ".join(self.filter.chips()).replace('"', "")
        box.add_class("open")
        box.focus()

    @on(Input.Submitted, "#log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            new = parse(event.value)
        except FilterError as exc:
            self.query_one("#log-filter-error", Static).update(
                Text(f"filter not applied: {exc}", style="bold red"))
            return
        self._close_filter()
        self._apply(new)

    def action_cancel_filter(self) -> None:
        self._close_filter()

    def _close_filter(self) -> None:
        self.query_one("#log-filter", Input).remove_class("open")
        self.query_one("#log-filter-error", Static).update("")
        self.query_one(TxTable).focus()

    def action_clear(self) -> None:
        self._apply(LogFilter())

    def _apply(self, new: LogFilter) -> None:
        self.filter, self.is_loaded = new, False
        self._show_bar()
        if self.app.backend is not None:
            self.reload()

    def action_follow(self) -> None:
        self.follow = not self.follow
        self._show_bar()
        if self.follow and self.app.backend is not None:
            self.reload()  # back to the newest rows, then tail from there

    def action_details(self) -> None:
        table = self.query_one(TxTable)
        if self.tx_rows and 0 <= table.cursor_row < len(self.tx_rows):
            self.app.push_screen(RecordScreen(self.tx_rows[table.cursor_row]))

    @on(LogTable.Selected, "#log-table")
    def _row_selected(self, event: LogTable.Selected) -> None:
        if 0 <= event.row < len(self.tx_rows):
            self.app.push_screen(RecordScreen(self.tx_rows[event.row]))

    @on(LogTable.TopReached, "#log-table")
    def _top_reached(self) -> None:
        self.load_older()

    def action_save(self) -> None:
        if not self.tx_rows:
            self.notify("no rows to save", timeout=3)
            return
        now = self.app.clock()
        snap = self.app.snapshot
        folders = [Path.cwd()] + ([Path(snap.data_dir)] if snap else [])
        try:
            path = save_table("dicomtui-log", [c.title for c in COLUMNS],
                              [file_cells(r, now.date()) for r in self.tx_rows],
                              folders, now)
        except OSError as exc:
            self.notify(f"{exc.strerror or exc}: {exc.filename or ''}",
                        title="view not saved", severity="error", timeout=10)
            return
        self.notify(str(path), title=f"saved {count(len(self.tx_rows), 'row')}",
                    timeout=10)

    def action_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-app" if tabs.active == "tab-tx" else "tab-tx"
        self.query_one("#applog" if tabs.active == "tab-app" else "#log-table").focus()

    def action_level(self) -> None:
        self.log_level = LEVELS[(LEVELS.index(self.log_level) + 1) % len(LEVELS)]
        self._rewrite_app_log()

    def _show_bar(self) -> None:
        chips = Text()
        for chip in self.filter.chips():
            chips.append(f" {chip} ", style="reverse")
            chips.append(" ")
        if not self.filter:
            chips.append("no filter   (/ filter, Enter: details, w: save)", style="dim")
        else:
            chips.append("  (c: clear)", style="dim")
        show(self.query_one("#log-chips", Static), chips)
        shown = count(len(self.tx_rows), "row")
        follow = (Text("● LIVE ", style="bold green") if self.follow
                  else Text("❚❚ PAUSED ", style="bold yellow"))
        follow.append(f"{shown}  (f)", style="dim")
        show(self.query_one("#log-follow", Static), follow)


def fetch_tail(backend, log_filter, cursor: int,
               limit: int) -> tuple[list[dict], int, bool]:
    """New Log rows after `cursor`, the cursor for next time, and whether the rows
    replace the table (more arrived than it holds: only the newest are worth reading)."""
    newest = backend.transactions(TransactionFilter(limit=1))
    newest_id = newest[0]["id"] if newest else cursor
    if newest_id - cursor > limit:
        rows = backend.transactions(log_filter.query(limit=limit))
        rows.reverse()
        return rows, newest_id, True
    rows = backend.transactions(log_filter.query(limit=limit, after_id=cursor))
    if len(rows) >= limit:
        return rows, rows[-1]["id"], False
    return rows, max(newest_id, cursor), False
