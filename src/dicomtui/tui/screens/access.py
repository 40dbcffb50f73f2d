"""Screen 5, Access: who may associate (policy, allowed callers) and who was refused."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from dicomtui.models import AllowedCaller, SettingValue, TransactionFilter
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm, RecordScreen
from dicomtui.tui.screens.access_dialogs import CallerForm
from dicomtui.tui.screens.access_rows import (
    CALLER_COLUMNS,
    POLICY,
    REFUSED_COLUMNS,
    caller_row,
    now_allowed,
    policy_line,
    refused_row,
    removal_detail,
    require_question,
)
from dicomtui.tui.screens.polled import PolledScreen, reason
from dicomtui.tui.screens.settings import EditSetting
from dicomtui.tui.tables import SortableTable, selected_key, sync_rows
from dicomtui.tui.widgets import KeyBar, ModeBar, show

REFUSED_SHOWN = 50


class AccessScreen(PolledScreen):
    """The policy line, the allowed callers and the newest refused associations."""

    BINDINGS = [
        Binding("a", "add", "Add", id="access.add",
                tooltip="allow a calling AE title (on a refused row: that caller, prefilled)"),
        Binding("e", "edit", "Edit", id="access.edit",
                tooltip="address and description of the selected caller (or Enter)"),
        Binding("d", "remove", "Remove", id="access.remove",
                tooltip="forget the selected caller (asks first)"),
        # shown on the screen itself, so the footer fits 80 columns
        Binding("space", "toggle", "Allow/deny", id="access.toggle", show=False,
                tooltip="allow or deny the selected caller (denied: always refused)"),
        Binding("i", "allowed_ips", "Allowed IPs", id="access.allowed_ips", show=False,
                tooltip="edit allowed_ips: the addresses and networks that may connect"),
        Binding("p", "require", "Require calling AE", id="access.require", show=False,
                tooltip="turn require_calling_ae on or off (asks first)"),
        Binding("tab", "app.focus_next", "Next table", key_display="Tab", id="access.tab",
                show=False, tooltip="between the allowed callers and the refusals"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.policy: dict[str, SettingValue] = {}
        self.caller_list: list[AllowedCaller] = []
        self.refused: list[dict] = []
        self.refused_cursor: int | None = None  # the newest transaction id already read

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(id="access-policy")
        yield Label(id="access-callers-label", classes="section")
        yield SortableTable(id="access-callers", cursor_type="row", zebra_stripes=True)
        yield Label(id="access-refused-label", classes="section")
        yield SortableTable(id="access-refused", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#access-callers", DataTable).add_columns(*CALLER_COLUMNS)
        self.query_one("#access-refused", DataTable).add_columns(*REFUSED_COLUMNS)
        self._show_labels()
        self.refresh_view()

    # -- reading ------------------------------------------------------------------------
    def read(self, backend) -> None:
        self._read(backend, self.refused, self.refused_cursor)

    @work(thread=True, exclusive=True, group="access-read", exit_on_error=False)
    def _read(self, backend, shown: list[dict], cursor: int | None) -> None:
        try:
            values = [v for v in backend.settings() if v.name in POLICY]
            callers = backend.callers()
            refused, cursor = fetch_refused(backend, shown, cursor)
        except Exception as exc:
            self.post_message(msg.AccessLoaded(error=reason(exc)))
            return
        self.post_message(msg.AccessLoaded(values, callers, refused, cursor))

    @on(msg.AccessLoaded)
    def _loaded(self, message: msg.AccessLoaded) -> None:
        if not self.loaded(message.error):
            return
        self.policy = {v.name: v for v in message.settings}
        self.caller_list, self.refused = message.callers, message.refused
        self.refused_cursor = message.cursor
        today = self.app.clock().date()
        show(self.query_one("#access-policy", Static), policy_line(self.policy))
        sync_rows(self.query_one("#access-callers", DataTable),
                  {c.ae_title: caller_row(c) for c in self.caller_list})
        sync_rows(self.query_one("#access-refused", DataTable),
                  {str(r["id"]): refused_row(r, today, self._now_allowed(r))
                   for r in self.refused})
        self._show_labels()

    def _show_labels(self) -> None:
        callers = Text("Allowed callers")
        callers.append("  space: allow/deny" if self.caller_list else
                       ("  none yet (a: add one)" if self.is_loaded else ""), style="dim")
        show(self.query_one("#access-callers-label", Label), callers)
        refused = Text("Refused associations, newest first")
        refused.append("  a: allow the caller  Enter: details" if self.refused else
                       ("  none recorded" if self.is_loaded else ""), style="dim")
        show(self.query_one("#access-refused-label", Label), refused)

    def selected_caller(self) -> AllowedCaller | None:
        key = selected_key(self.query_one("#access-callers", DataTable))
        return next((c for c in self.caller_list if c.ae_title == key), None)

    def selected_refusal(self) -> dict | None:
        key = selected_key(self.query_one("#access-refused", DataTable))
        return next((r for r in self.refused if str(r["id"]) == key), None)

    def _on_refused(self) -> bool:
        return self.focused is self.query_one("#access-refused", DataTable)

    def _caller_for_action(self) -> AllowedCaller | None:
        """The selected caller, when the callers table is the one in use."""
        if self._on_refused():
            self.notify("Tab: to the allowed callers first", timeout=3)
            return None
        return self.selected_caller()

    def _now_allowed(self, refusal: dict) -> bool:
        return now_allowed(refusal, self.caller_list, self._require())

    # -- actions --------------------------------------------------------------------------
    def action_add(self) -> None:
        """The selected refusal's caller, prefilled, wherever the focus is (the 3 a.m.
        case), unless it is allowed by now: then, from the callers table, a blank form."""
        refusal = self.selected_refusal()
        if refusal is not None and not self._on_refused() and self._now_allowed(refusal):
            refusal = None
        form = CallerForm.from_refused(refusal) if refusal else CallerForm.new()
        self.app.push_screen(form, self.changed)

    def action_edit(self) -> None:
        caller = self._caller_for_action()
        if caller is not None:
            self.app.push_screen(CallerForm.edit(caller), self.changed)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "access-refused":
            refusal = self.selected_refusal()
            if refusal is not None:
                self.app.push_screen(RecordScreen(refusal))
        else:
            self.action_edit()

    def action_toggle(self) -> None:
        caller = self._caller_for_action()
        if caller is None:
            return
        ae = caller.ae_title
        if caller.active:
            self.change(lambda b: b.deny_caller(ae), lambda c: f"{c.ae_title} denied: "
                        "always refused")
        else:
            self.change(lambda b: b.allow_caller(ae), lambda c: f"{c.ae_title} allowed "
                        "again")

    def action_remove(self) -> None:
        caller = self._caller_for_action()
        if caller is None:
            return
        ae = caller.ae_title
        detail = removal_detail(caller, self._require())

        def answered(yes: bool | None) -> None:
            if yes:
                self.change(lambda b: b.remove_caller(ae),
                            lambda c: f"{c.ae_title} removed from the allowed callers")

        self.app.push_screen(Confirm(f"Remove allowed caller {ae}?", detail, "Remove"),
                             answered)

    def action_allowed_ips(self) -> None:
        if "allowed_ips" in self.policy:
            self.app.push_screen(EditSetting(self.policy["allowed_ips"]),
                                 self._setting_changed)

    def action_require(self) -> None:
        if "require_calling_ae" not in self.policy:
            return
        turn_on = not self._require()
        question, detail = require_question(turn_on, self.caller_list)
        word = "true" if turn_on else "false"

        def answered(yes: bool | None) -> None:
            if yes:
                self.change(lambda b: b.set_setting("require_calling_ae", word),
                            lambda v: f"require_calling_ae {'on' if v.value else 'off'}")

        self.app.push_screen(Confirm(question, detail, "Turn on" if turn_on else "Turn off"),
                             answered)

    def _require(self) -> bool:
        value = self.policy.get("require_calling_ae")
        return bool(value and value.value)

    def _setting_changed(self, value: SettingValue | None) -> None:
        if value is not None:
            self.changed(msg.ChangeDone(value, f"{value.name} = {value.value or 'any'}"))


def fetch_refused(backend, shown: list[dict], cursor: int | None) -> tuple[list[dict], int]:
    """The newest refusals and the newest transaction id, for next time: the first read
    looks back through the log, later ones only at what came since (cheap in a flood)."""
    newest = backend.transactions(TransactionFilter(limit=1))
    newest_id = newest[0]["id"] if newest else 0
    if cursor is not None and newest_id == cursor:
        return shown, cursor
    wanted = {"types": ["association"], "outcomes": ["refused"], "limit": REFUSED_SHOWN}
    if cursor is None or newest_id < cursor:  # the first read, or the log started over
        return backend.transactions(TransactionFilter(**wanted)), newest_id
    fresh = backend.transactions(TransactionFilter(**wanted, after_id=cursor))
    if len(fresh) >= REFUSED_SHOWN:  # more than the table holds: the newest, afresh
        return backend.transactions(TransactionFilter(**wanted)), newest_id
    known = {r["id"] for r in shown}  # one recorded between the two reads comes twice
    merged = [r for r in reversed(fresh) if r["id"] not in known] + shown
    return merged[:REFUSED_SHOWN], max([newest_id, *(r["id"] for r in fresh)])
