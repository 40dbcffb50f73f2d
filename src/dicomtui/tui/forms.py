"""Dialogs with a few fields that change something through the Backend.

A form never applies a rule of its own (beyond reading a port as a number): it sends
what was typed, and when the Backend calls the request invalid it shows that text in
place and stays open, so the fix is one edit away and the words match the CLI's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from dicomtui.backend.base import BackendError, InvalidRequest, NotFound
from dicomtui.tui import messages as msg

Call = Callable[[Any], Any]  # backend -> result, run in a thread worker


@dataclass(frozen=True)
class Field:
    """One line of a form: a label and a text box (`name` is its id), or a choice of
    `choices` (the placeholder then says what they mean)."""

    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    choices: tuple[str, ...] = ()


class Choice(Static, can_focus=True):
    """One of a few words, changed with left/right or space: a Select would open a
    list over the form, and Enter must still save it."""

    BINDINGS = [Binding("right,space", "step(1)", "Next", show=False),
                Binding("left", "step(-1)", "Previous", show=False),
                Binding("enter", "submit", "Save", show=False)]

    class Submitted(Message):
        """Enter on a choice: the form saves, as Enter in a text box does."""

    def __init__(self, choices: tuple[str, ...], chosen: str, hint: str = "",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.choices, self.hint = choices, hint
        self.chosen = chosen if chosen in choices else choices[0]

    def on_mount(self) -> None:
        self._show()

    def action_step(self, step: int) -> None:
        index = self.choices.index(self.chosen)
        self.chosen = self.choices[(index + step) % len(self.choices)]
        self._show()

    def on_click(self) -> None:
        self.action_step(1)

    def action_submit(self) -> None:
        self.post_message(self.Submitted())

    def _show(self) -> None:
        text = Text.assemble("◂ ", (self.chosen, "bold"), " ▸")
        if self.hint:
            text.append(f"  {self.hint}", style="dim")
        self.update(text)


def backend_change(backend, call: Call, said: Callable[[Any], str]) -> msg.ChangeDone:
    """Run one change (in a worker thread) and say how it went, failures included."""
    try:
        result = call(backend)
    except InvalidRequest as exc:
        return msg.ChangeDone(error=str(exc), invalid=True)
    except NotFound as exc:
        return msg.ChangeDone(error=str(exc), missing=True)
    except BackendError as exc:
        return msg.ChangeDone(error=str(exc))
    except Exception as exc:  # a bug: said on screen, not lost in the worker
        return msg.ChangeDone(error=f"{type(exc).__name__}: {exc}")
    return msg.ChangeDone(result, said(result))


def port_of(text: str) -> int | None:
    """The port typed (None when blank); ValueError in the engine's own words."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"port must be an integer from 1 to 65535 (got {text!r})")
    return int(text)


def path_of(text: str, missing: str) -> str:
    """The absolute path typed (~ expanded); ValueError(`missing`) when nothing was."""
    typed = text.strip()
    if not typed:
        raise ValueError(missing)
    return os.path.abspath(os.path.expanduser(typed))


def words_of(text: str) -> list[str]:
    """'A, B,,C' -> ['A', 'B', 'C']: a comma-separated list as typed."""
    return [part.strip() for part in text.split(",") if part.strip()]


class FormDialog(ModalScreen[msg.ChangeDone | None]):
    """Fields, Enter saves through the Backend, Esc cancels; dismisses with the result."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="form.cancel")]
    errors_in_place = False  # True: every failure is shown in the form, which stays open
    working = ""  # said in the form while a slow save runs (e.g. zipping a folder)
    submit_words = "save"  # what Enter does, on the keys line

    def __init__(self, title: str, detail: str | Text, fields: list[Field]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.detail, self.fields = title, detail, fields
        self.saving = False  # one save at a time: a second Enter would repeat it

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Label(self.title_text, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            for field in self.fields:
                with Horizontal(classes="form-row"):
                    yield Label(field.label, classes="form-label")
                    if field.choices:
                        yield Choice(field.choices, field.value, field.placeholder,
                                     id=f"form-{field.name}")
                    else:
                        yield Input(field.value, placeholder=field.placeholder,
                                    id=f"form-{field.name}", select_on_focus=True)
            yield Static(id="edit-error")
            yield Label(f"[b]Enter[/b] {self.submit_words}    [b]Tab[/b] next field    "
                        "[b]Esc[/b] cancel", classes="dialog-keys")

    def request(self, values: dict[str, str]) -> Call:
        """The Backend call for these values; ValueError when they cannot be sent."""
        raise NotImplementedError

    def said(self, result) -> str:
        """What the toast says once the change is made."""
        return "saved"

    def values(self) -> dict[str, str]:
        return {f.name: self._value(f) for f in self.fields}

    def _value(self, field: Field) -> str:
        if field.choices:
            return self.query_one(f"#form-{field.name}", Choice).chosen
        return self.query_one(f"#form-{field.name}", Input).value

    @on(Input.Submitted)
    @on(Choice.Submitted)
    def _submitted(self, event: Input.Submitted | Choice.Submitted) -> None:
        event.stop()
        if self.saving:
            return
        if self.app.backend is None:
            self._rejected("not connected to a receiver")
            return
        try:
            call = self.request(self.values())
        except ValueError as exc:
            self._rejected(str(exc))
            return
        self.saving = True
        if self.working:
            self._say(Text(self.working, style="dim"))
        self._save(self.app.backend, call)

    @work(thread=True, exclusive=True, group="form-save", exit_on_error=False)
    def _save(self, backend, call: Call) -> None:
        self.post_message(backend_change(backend, call, self.said))

    @on(msg.ChangeDone)
    def _done(self, message: msg.ChangeDone) -> None:
        message.stop()
        self.saving = False
        if message.invalid or (message.error and self.errors_in_place):
            self._rejected(message.error)
        elif message.error:
            self._say(Text(""))
            self.notify(message.error, title="not saved", severity="error", timeout=10)
            if message.missing:  # nothing left to edit
                self.dismiss(None)
        else:
            self.dismiss(message)

    def _rejected(self, reason: str) -> None:
        self._say(Text(reason, style="bold red"))

    def _say(self, text: Text) -> None:
        self.query_one("#edit-error", Static).update(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
