"""The question before quitting a console whose receiver a console started: leave it
running (the safe default: images keep arriving), stop it, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

LEAVE, STOP, CANCEL = "leave", "stop", "cancel"


class QuitChoice(ModalScreen[str]):
    """Enter, l or q: leave the receiver running; s: stop it; Esc or c: do not quit."""

    BINDINGS = [
        Binding("enter,l,q", "choose('leave')", "Leave running", id="quit.leave"),
        Binding("s", "choose('stop')", "Stop it", id="quit.stop"),
        Binding("escape,c", "choose('cancel')", "Cancel", id="quit.cancel"),
    ]

    def __init__(self, pid: int, busy: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.pid, self.busy = pid, busy

    def compose(self) -> ComposeResult:
        detail = (f"This console started the receiver (service pid {self.pid}). Left "
                  "running, it keeps receiving; `dicomtui` attaches to it again and "
                  "`dicomtui status` shows it. Stopped, in-flight stores finish first.")
        with Vertical(classes="dialog"):
            yield Label("Stop the receiver or leave it running?", classes="dialog-title")
            yield Static(detail + (f"\n\n{self.busy}" if self.busy else ""),
                         classes="dialog-detail")
            yield Label("[b]Enter[/b] Leave running    [b]s[/b] Stop it    "
                        "[b]Esc[/b] Cancel", classes="dialog-keys")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
