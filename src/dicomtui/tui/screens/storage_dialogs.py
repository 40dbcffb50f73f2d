"""Cleanup in two steps: how old (the Backend then says what would go), then a preview
that starts it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dicomtui.models import CleanupPlan
from dicomtui.tui.forms import Call, Field, FormDialog
from dicomtui.tui.screens.storage_rows import days_words, plan_body, plan_question


class CleanupAge(FormDialog):
    """'Older than N days' (default retention_days); reads the plan, removes nothing."""

    errors_in_place = True  # a wrong number is fixed in place
    submit_words = "preview"
    working = "reading what cleanup would remove…"

    def __init__(self, retention_days: int) -> None:
        super().__init__(
            "Clean up old studies",
            "Studies received more than this many days ago are removed from storage and "
            "the index; studies being received or waiting for upload are kept. Next: "
            "what would go, before anything does.",
            [Field("days", "Older than", str(retention_days) if retention_days else "",
                   "days, e.g. 30 (retention_days)")])

    def request(self, values: dict[str, str]) -> Call:
        days = days_of(values["days"])
        return lambda backend: backend.cleanup_plan(days)

    def said(self, result: CleanupPlan) -> str:
        return plan_question(result)


def days_of(typed: str) -> float:
    """The number of days typed; ValueError says what would do."""
    problem = f"type a number of days above 0, e.g. 30 (got {typed.strip()!r})"
    try:
        days = float(typed.strip().replace(",", "."))
    except ValueError:
        raise ValueError(problem) from None
    if not 0 < days < float("inf"):
        raise ValueError(problem)
    return days


class CleanupPreview(ModalScreen[bool]):
    """What the cleanup removes and keeps; y starts it, n or Esc changes nothing (not
    Enter: one Enter too many after the age must not delete studies)."""

    BINDINGS = [Binding("y", "answer(True)", "Remove", id="cleanup.yes"),
                Binding("n,escape", "answer(False)", "Cancel", id="cleanup.no")]

    def __init__(self, plan: CleanupPlan, today) -> None:
        super().__init__(classes="dialog-screen")
        self.plan, self.today = plan, today

    def compose(self) -> ComposeResult:
        keys = ("[b]y[/b] remove them    [b]n[/b]/Esc keep everything" if self.plan.remove
                else "[b]Esc[/b] close")
        with Vertical(classes="dialog cleanup"):
            yield Label(plan_question(self.plan), classes="dialog-title")
            if self.plan.remove:
                yield Static("Their files are deleted from storage. Studies received "
                             f"within {days_words(self.plan.older_than_days)} stay.",
                             classes="dialog-detail")
            with VerticalScroll(id="cleanup-list"):
                yield Static(plan_body(self.plan, self.today))
            yield Label(keys, classes="dialog-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value and bool(self.plan.remove))
