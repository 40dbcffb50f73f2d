"""Widgets every screen shares: the mode bar at the top."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from dicomtui.tui import format as fmt

SCREEN_TABS = (("1", "status", "Status"), ("2", "log", "Log"), ("3", "studies", "Studies"),
               ("4", "facilities", "Facilities"), ("5", "access", "Access"),
               ("6", "storage", "Storage"), ("7", "uploads", "Uploads"),
               ("8", "anonymization", "Anonymization"), ("9", "settings", "Settings"))
# (who, uptime, tabs) tried in turn until the header fits: 80 columns name the other
# screens by number; attached to a service, the uptime goes (Status shows it), then
# "attached to service pid N" becomes "attached pid N"
HEADER_FORMS = (("long", True, "full"), ("long", True, "short"), ("long", True, "compact"),
                ("long", False, "compact"), ("short", False, "compact"))


class ModeBar(Static):
    """One line: who runs the receiver (local / attached), its state, and the screens."""

    DEFAULT_CSS = "ModeBar { height: 1; }"

    def render(self) -> Text:
        app = self.app
        current = getattr(app, "current_mode", None)
        for who, uptime, width in HEADER_FORMS:
            line, tabs = _lead(app, who, uptime), _tabs(current, width)
            if line.cell_len + tabs.cell_len <= self.size.width:
                break
        return line + tabs


def _lead(app, who: str, uptime: bool) -> Text:
    """The name, who runs the receiver (and for how long), its state."""
    line = Text(" dicomtui ", style="bold reverse")
    line.append(" ")
    line.append_text(_who(app, who))
    if uptime:
        line.append_text(_uptime(app))
    line.append("  ")
    state = app.display_state()
    line.append(f" {state.upper()} ", style=fmt.STATE_STYLE.get(state, "bold"))
    line.append("  ")
    return line


def _tabs(current: str | None, width: str) -> Text:
    """The screen tabs, the current one named; the others named ("full"), by number
    ("short"), or by number without spacing ("compact")."""
    tabs = Text()
    for key, mode, title in SCREEN_TABS:
        if mode == current:
            tabs.append(f" {key} {title} ", style="bold reverse")
        elif width == "compact":
            tabs.append(f"{key} " if tabs else f" {key} ", style="dim")
        else:
            tabs.append(f" {key} " if width == "short" else f" {key} {title} ",
                        style="dim")
    return tabs


def _who(app, form: str = "long") -> Text:
    snap = app.snapshot
    if app.backend is None:
        return Text("connecting…" if not app.problem else "not connected")
    if app.backend.mode == "service":
        pid = snap.pid if snap else "?"
        return Text(f"attached to service pid {pid}" if form == "long"
                    else f"attached pid {pid}")
    return Text("local")


def _uptime(app) -> Text:
    snap = app.snapshot
    if snap is None or not snap.started_at or app.unreachable:
        return Text("")
    return Text(f", up {fmt.short_duration(snap.uptime_s)}")


def our_bindings(*nodes):
    """(node, binding) for each of our bindings on these nodes (Textual's own, which
    have no id, left out): the footer, help and command palette are all made from it.
    A key an earlier node binds too is left out of a later one: it never gets there
    (the Uploads screen's `r` over the app's restart)."""
    taken: set[str] = set()
    for node in nodes:
        here: set[str] = set()
        for binding in node.BINDINGS:
            if not isinstance(binding, Binding):
                continue
            keys = {key.strip() for key in binding.key.split(",")}
            here |= keys
            if binding.id and binding.description and not keys <= taken:
                yield node, binding
        taken |= here


def show(static: Static, content, layout: bool = False) -> None:
    """Update a Static only when its content changed, and without a re-layout unless
    asked: every poll updates these, and a layout pass repaints the whole screen."""
    if getattr(static, "_shown_content", None) == content and not isinstance(content, Table):
        return
    static._shown_content = content
    static.update(content, layout=layout)


class KeyBar(Static):
    """The footer: this screen's keys and the app's, drawn from the bindings when the
    screen mounts (and again only if its width changes).

    Textual's Footer mounts a widget per key and rebuilds them on every screen switch
    (~100 ms of the UI thread here); the keys of a screen do not change, so one line
    of text made when the screen mounts says the same for nothing.
    """

    DEFAULT_CSS = "KeyBar { height: 1; dock: bottom; background: $panel; }"

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        line = self._keys(self.size.width or self.app.size.width)
        if getattr(self, "_drawn", None) != line:
            self._drawn = line
            self.update(line, layout=False)

    def _keys(self, width: int) -> str:
        """The keys; where they would not fit, the screen numbers go unnamed."""
        parts, groups = [], {}
        for _node, binding in our_bindings(self.screen, self.app):
            if not binding.show:
                continue
            key = binding.key_display or binding.key
            if binding.group is not None:
                groups.setdefault(binding.group.description, []).append(key)
                continue
            parts.append((key, binding.description))
        named = parts + [("".join(keys), words) for words, keys in groups.items()]
        if len(" " + "  ".join(f"{k} {d}" for k, d in named)) > width:
            named = parts + [("".join(keys), "") for keys in groups.values()]
        return " " + "  ".join(f"[bold $accent]{_escape(k)}[/] {d}".rstrip()
                               for k, d in named)


def _escape(key: str) -> str:
    return key.replace("[", "\\[")
