"""Widgets every screen shares: the mode bar at the top."""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Span, Text
from textual.binding import Binding
from textual.widgets import Static

from dicomtui.tui import format as fmt

SCREEN_TABS = (("1", "status", "Status", "Stat"), ("2", "log", "Log", "Log"),
               ("3", "studies", "Studies", "Stud"), ("4", "facilities", "Facilities", "Fac"),
               ("5", "access", "Access", "Acc"), ("6", "storage", "Storage", "Stor"),
               ("7", "uploads", "Uploads", "Upl"),
               ("8", "anonymization", "Anonymization", "Anon"),
               ("9", "settings", "Settings", "Set"))
# (name, who, uptime, tabs) tried in turn until the header fits: narrower, the other
# screens' names are abbreviated, never dropped; then the product's name goes, then
# the uptime (Status shows it), then "attached to service pid N" becomes "attached pid N"
HEADER_FORMS = ((True, "long", True, "full", 2), (True, "long", True, "short", 2),
                (True, "long", True, "compact", 2), (False, "long", True, "compact", 2),
                (False, "long", False, "compact", 2), (False, "short", False, "compact", 2),
                (False, "short", False, "tiny", 1))


class ModeBar(Static):
    """One line: who runs the receiver (local / attached), its state, and the screens;
    a click on a screen's tab shows it."""

    DEFAULT_CSS = "ModeBar { height: 1; }"

    def render(self) -> Text:
        app = self.app
        current = getattr(app, "current_mode", None)
        for name, who, uptime, width, gap in HEADER_FORMS:
            line, tabs = _lead(app, name, who, uptime, " " * gap), _tabs(current, width)
            if line.cell_len + tabs.cell_len <= self.size.width:
                break
        self.tab_spans = [(line.cell_len + start, line.cell_len + end, mode)
                          for start, end, mode in tab_spans(tabs)]
        return line + tabs

    async def on_click(self, event) -> None:
        for start, end, mode in getattr(self, "tab_spans", []):
            if start <= event.x < end:
                await self.app.run_action(f"show('{mode}')")
                return


def _lead(app, name: bool, who: str, uptime: bool, gap: str) -> Text:
    """The name, who runs the receiver (and for how long), its state."""
    line = Text(" dicomtui ", style="bold reverse") if name else Text()
    line.append(" ")
    line.append_text(_who(app, who))
    if uptime:
        line.append_text(_uptime(app))
    line.append(gap)
    state = app.display_state()
    line.append(f" {state.upper()} ", style=fmt.STATE_STYLE.get(state, "bold"))
    line.append(gap)
    return line


def _tabs(current: str | None, width: str) -> Text:
    """The screen tabs, the current one named in full (abbreviated too when "tiny");
    the others named ("full"), abbreviated ("short"), or abbreviated without spacing
    ("compact", "tiny"). Each tab's mode is kept in its span's meta, for a click."""
    tabs, tight, after_current = Text(), width in ("compact", "tiny"), False
    for key, mode, title, short in SCREEN_TABS:
        start = tabs.cell_len
        if mode == current:
            tabs.append(f" {key} {short if width == 'tiny' else title} ",
                        style="bold reverse")
        elif tight:
            lead = "" if after_current else " "
            tabs.append(f"{lead}{key}{short}", style="dim")
            start += len(lead)
        else:
            tabs.append(f" {key} {short if width == 'short' else title} ", style="dim")
        after_current = mode == current
        tabs.spans.append(Span(start, tabs.cell_len, Style(meta={"tab": mode})))
    return tabs


def tab_spans(tabs: Text) -> list[tuple[int, int, str]]:
    """(start, end, mode) of each tab in a line made by _tabs."""
    return [(span.start, span.end, span.style.meta["tab"]) for span in tabs.spans
            if isinstance(span.style, Style) and "tab" in span.style.meta]


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
        line, self.hints = self._keys(self.size.width or self.app.size.width)
        if getattr(self, "_drawn", None) != line:
            self._drawn = line
            self.update(line, layout=False)

    async def on_click(self, event) -> None:
        """A click on a key's hint does what the key does."""
        for start, end, node, action in getattr(self, "hints", []):
            if start <= event.x < end:
                await self.app.run_action(action, node)
                return

    def _keys(self, width: int) -> tuple[str, list]:
        """The keys (markup) and where each hint is: (start, end, node, action). Where
        they would not fit, a group of keys (the screens) is shown by its keys alone."""
        parts, groups = [], {}
        for node, binding in our_bindings(self.screen, self.app):
            if not binding.show:
                continue
            key = binding.key_display or binding.key
            if binding.group is not None:
                groups.setdefault(binding.group.description, []).append((node, binding))
                continue
            parts.append((key, binding.description, node, binding.action))
        grouped = [(key_range([b.key_display or b.key for _n, b in members]), words,
                    *members[-1]) for words, members in groups.items()]
        named = parts + [(keys, words, node, b.action) for keys, words, node, b in grouped]
        if len(" " + "  ".join(f"{k} {d}" for k, d, _n, _a in named)) > width:
            named = parts + [(keys, "", node, b.action) for keys, _w, node, b in grouped]
        hints, at, shown = [], 1, []
        for key, words, node, action in named:
            plain = f"{key} {words}".rstrip()
            hints.append((at, at + len(plain), node, action))
            shown.append(f"[bold $accent]{_escape(key)}[/] {words}".rstrip())
            at += len(plain) + 2
        return " " + "  ".join(shown), hints


def key_range(keys: list[str]) -> str:
    """'1-9 []' for the keys 1..9, [ and ]: a run of digits reads as a range."""
    digits = [k for k in keys if k.isdigit()]
    others = "".join(k for k in keys if not k.isdigit())
    run = (f"{digits[0]}-{digits[-1]}" if len(digits) > 2 else "".join(digits))
    return " ".join(part for part in (run, others) if part)


def _escape(key: str) -> str:
    return key.replace("[", "\\[")
