"""Screen 1, Status: what the on-call engineer looks at first."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Label, Sparkline, Static

from dicomtui.tui import format as fmt
from dicomtui.tui.dialogs import RecordScreen
from dicomtui.tui.screens.upload_rows import status_line
from dicomtui.tui.tables import SortableTable, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show
from dicomtui.wording import in_words

ASSOC_COLUMNS = ("#", "calling AE", "peer", "since", "images", "bytes", "rate")
ERROR_COLUMNS = ("time", "from", "status", "reason")
BAR_WIDTH = 24


class StatusScreen(Screen):
    """State, listeners, associations, counters, receive rate, storage, last errors."""

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with Horizontal(id="status-top"):
            yield Static(id="status-state")
            yield Static(id="status-counters")
        with Horizontal(id="status-rate-row"):
            yield Static(id="status-rate")
            yield Sparkline([], id="status-sparkline")
        yield Static(id="status-storage")
        yield Static(id="status-uploads")
        yield Label("Active associations", classes="section")
        yield SortableTable(id="status-assocs", cursor_type="row", zebra_stripes=True)
        yield Label("Last errors  (Enter: the whole error)", classes="section")
        yield SortableTable(id="status-errors", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#status-assocs", DataTable).add_columns(*ASSOC_COLUMNS)
        self.query_one("#status-errors", DataTable).add_columns(*ERROR_COLUMNS)
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(ModeBar).refresh()
        snap = self.app.snapshot
        state = self._state_text(snap)
        box = self.query_one("#status-state", Static)
        lines_before = getattr(box, "_shown_content", Text()).plain.count("\n")
        show(box, state, layout=state.plain.count("\n") != lines_before)
        show(self.query_one("#status-counters", Static), _counters(snap))
        self._show_rate()
        show(self.query_one("#status-storage", Static), _storage(snap))
        show(self.query_one("#status-uploads", Static),
             status_line(snap.uploads) if snap else Text(""))
        now = self.app.clock()
        sync_rows(self.query_one("#status-assocs", DataTable),
                  {str(a.id): _assoc_row(a, now) for a in (snap.associations if snap else [])})
        sync_rows(self.query_one("#status-errors", DataTable),
                  {str(e.seq): _error_row(e) for e in (snap.last_errors if snap else [])})

    @on(DataTable.RowSelected, "#status-errors")
    def _error_selected(self, event: DataTable.RowSelected) -> None:
        """An error whole, the reason in words, whatever the width."""
        snap = self.app.snapshot
        chosen = next((e for e in (snap.last_errors if snap else [])
                       if str(e.seq) == event.row_key.value), None)
        if chosen is not None:
            record = {"time": chosen.time, "message": chosen.message, **chosen.data}
            self.app.push_screen(RecordScreen(record, title=f"Error {chosen.seq}"))

    def _state_text(self, snap) -> Text:
        app = self.app
        text = Text()
        if snap is None or app.unreachable or app.backend is None:
            state = app.display_state()
            text.append(f" {state.upper()} ", style=fmt.STATE_STYLE[state])
            if app.problem:
                text.append(f"\n{app.problem}", style="bold red")
                hint = ("asking again every second (the figures below are the last seen)"
                        if app.backend is not None else "s or r: try again   q: quit")
                text.append(f"\n{hint}", style="dim")
            return text
        text.append(f" {snap.state.upper()} ", style=fmt.STATE_STYLE.get(snap.state, "bold"))
        who = "local" if snap.mode == "local" else f"service pid {snap.pid}"
        text.append(f"  {who}")
        if snap.started_at:
            text.append(f", up {fmt.short_duration(snap.uptime_s)}")
        for lst in snap.listeners:
            style = "green" if lst.state == "listening" else "red"
            text.append(f"\n{lst.ae_title} @ {lst.host}:{lst.port} ")
            text.append(lst.state, style=style)
            if lst.tls:
                text.append(" TLS", style="bold")
        text.append(f"\nstorage {snap.storage_dir}", style="dim")
        for line in ([snap.error] if snap.error else []) + snap.warnings:
            text.append(f"\n{line}", style="bold red")
        return text

    def _show_rate(self) -> None:
        now = self.app.clock().timestamp()
        series = self.app.rates.series(now)
        current = self.app.rates.current(now)
        label = Text("images ")
        label.append(fmt.rate(current), style="bold")
        label.append(f"  peak {fmt.rate(max([current, *series]))} ", style="dim")
        show(self.query_one("#status-rate", Static), label)
        self.query_one("#status-sparkline", Sparkline).data = series


def _counters(snap) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("")
    table.add_column("since start", justify="right")
    table.add_column("today", justify="right")
    if snap is None:
        return table
    c, t = snap.counters, snap.today
    table.add_row("received", f"{c.received:,}", f"{t.received:,}")
    table.add_row("bytes", fmt.size(c.bytes), fmt.size(t.bytes))
    table.add_row(Text("failed", style="red" if c.failed else ""), f"{c.failed:,}",
                  f"{t.failed:,}")
    table.add_row(Text("refused", style="red" if c.refused else ""), f"{c.refused:,}",
                  f"{t.refused:,}")
    return table


def _storage(snap) -> Text:
    if snap is None:
        return Text("")
    text = Text("storage  ")
    used = snap.storage_used_bytes
    if not snap.quota_bytes:
        text.append(f"{fmt.size(used)} used", style="bold")
        text.append("  (no quota: max_storage_gb = 0)", style="dim")
        return text
    fraction = used / snap.quota_bytes
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.75 else "green"
    text.append(fmt.bar(fraction, BAR_WIDTH), style=style)
    text.append(f" {fraction:.0%}  {fmt.size(used)} of {fmt.size(snap.quota_bytes)}")
    return text


def _assoc_row(a, now) -> tuple:
    age = fmt.age_seconds(a.started, now)
    per_second = a.bytes / age if age > 0 else 0.0
    return (str(a.id), a.calling_ae, a.peer, fmt.clock(a.started), f"{a.instances:,}",
            fmt.size(a.bytes), fmt.size(per_second) + "/s")


def _error_row(event) -> tuple:
    data = event.data
    who = data.get("calling_ae") or "?"
    status = fmt.status_code(data.get("status")) or data.get("outcome", "")
    reason = in_words(data.get("reason") or event.message)
    return (fmt.clock(event.time), f"{who} {data.get('peer', '')}".strip(), status,
            Text(reason, style="red"))
