"""Dialogs shared by the screens: confirm, help, one record in full."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dicomtui.wording import in_words, size


class Confirm(ModalScreen[bool]):
    """A yes/no question; Enter or y says yes, Escape or n says no."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
                Binding("n,escape", "answer(False)", "No", id="confirm.no")]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes",
                 no: str = "Cancel") -> None:
        super().__init__(classes="dialog-screen")
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            yield Label(f"[b]y[/b]/Enter {self.yes}    [b]n[/b]/Esc {self.no}",
                        classes="dialog-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class HelpScreen(ModalScreen[None]):
    """Every key of the current screen and the app, made from the bindings themselves."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.key_rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does", no_wrap=True)
        table.add_column("how", style="dim", ratio=1)
        for key, description, tooltip in self.key_rows:
            table.add_row(key, description, tooltip)
        with Vertical(classes="dialog help"):
            yield Label("Keys  (Ctrl+P: the same as commands)", classes="dialog-title")
            with VerticalScroll():
                yield Static(table)
            yield Label("[b]Esc[/b] close", classes="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)


class RecordScreen(ModalScreen[None]):
    """One record (a transaction unless titled otherwise), every field."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="record.close")]

    def __init__(self, record: dict, title: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.record = record
        self.title_text = title or f"Transaction {record.get('id', '')}"

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", ratio=1, overflow="fold")
        for key, value in self.record.items():
            if value is not None and value != "":  # a field this kind does not have
                table.add_row(field_label(key), _value(key, value))
        with Vertical(classes="dialog record"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static(table)
            yield Label("[b]Esc[/b] close", classes="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)


FIELD_LABELS = {"id": "record", "ae": "AE title", "calling_ae": "calling AE",
                "called_ae": "called AE", "sop_class": "SOP class", "sop_uid": "SOP instance",
                "study_uid": "study UID", "series_uid": "series UID", "patient_id": "patient ID",
                "duration_ms": "took (ms)", "bytes": "size", "ip": "IP",
                "jid": "journal line"}


def field_label(key: str) -> str:
    """A record's field as people name it ('calling AE', not 'calling_ae')."""
    return FIELD_LABELS.get(key, key.replace("_", " "))


def _value(key: str, value) -> Text:
    if key == "status" and isinstance(value, int):
        return Text(f"0x{value:04X}")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if key == "bytes" and isinstance(value, int):
        return Text(f"{size(value)} ({value:,} bytes)" if value >= 1000 else size(value))
    if key == "reason":
        return Text(in_words(value))
    if key == "sop_class" and value:
        from dicomtui.tui.screens.log_rows import sop_class_name
        name = sop_class_name(value)
        return Text(value if name == value else f"{value} ({name})")
    return Text("" if value is None else str(value))
