"""A table for the live log that costs the same at 3 rows a second or 300.

Textual's DataTable measures every added row and re-indexes on every removal, which
under a flood took the UI thread ~1 ms a row. This table has fixed column widths and
renders only the lines on screen (the Line API), so adding or trimming rows is a list
operation and a repaint touches ~30 lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column; a `flex` one (at most one) takes the room the others leave, at least
    `width`: the reason column, so "why" reads as far as the screen allows."""

    title: str
    width: int
    flex: bool = False


def fit_widths(columns: list[Column], room: int) -> list[int]:
    """Each column's width in `room` cells: when every column fits, the flex one takes
    what is left; when not, it reaches the right edge and the rest follow off-screen."""
    widths = [c.width for c in columns]
    flex = next((i for i, c in enumerate(columns) if c.flex), None)
    if flex is None:
        return widths
    others = sum(w + 1 for i, w in enumerate(widths) if i != flex) + 1
    before = sum(w + 1 for w in widths[:flex]) + 1
    left = room - others
    widths[flex] = left if left >= columns[flex].width else max(columns[flex].width,
                                                                room - before)
    return widths


def plain(cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


class LogTable(ScrollView, can_focus=True):
    """Rows of cells under a fixed header; a cursor row; Enter selects it."""

    COMPONENT_CLASSES = {"logtable--header", "logtable--cursor", "logtable--cursor-blur"}
    DEFAULT_CSS = """
    LogTable {
        background: $surface;
        & > .logtable--header { text-style: bold; background: $panel; color: $foreground; }
        & > .logtable--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .logtable--cursor-blur { background: $block-cursor-blurred-background; }
    }
    """
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "first", "First row", show=False),
        Binding("G", "last", "Last row", show=False),
        Binding("y", "copy_row", "Copy row", id="table.copy", show=False,
                tooltip="copy the selected row to the clipboard (OSC 52)"),
    ]

    class Selected(Message):
        """Enter (or a click) on a row."""

        def __init__(self, table: LogTable, row: int) -> None:
            super().__init__()
            self.table, self.row = table, row

        @property
        def control(self) -> LogTable:
            return self.table

    class TopReached(Message):
        """The user asked for rows above the first one."""

        def __init__(self, table: LogTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LogTable:
            return self.table

    def __init__(self, columns: list[Column], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.rows: list[tuple] = []
        self.cursor_row = -1
        self._strips: dict[int, Strip] = {}  # id(row) -> rendered line, for visible rows
        self.widths = [c.width for c in columns]
        self._width = sum(w + 1 for w in self.widths)
        self._header: Strip | None = None

    # -- content ------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: list[tuple], cursor_row: int) -> None:
        """Replace every row; the cursor goes to `cursor_row` (clamped)."""
        self.rows, self._strips = list(rows), {}
        self._resize()
        self.move_cursor(cursor_row)

    def append(self, rows: list[tuple], keep: int, follow: bool) -> None:
        """Add rows at the bottom, drop the oldest beyond `keep`, follow the end if asked."""
        self.rows.extend(rows)
        dropped = max(0, len(self.rows) - keep)
        if dropped:
            del self.rows[:dropped]
            self._strips = {}
        self._resize()
        if follow:
            self.move_cursor(len(self.rows) - 1)
        else:
            self.cursor_row = max(0, self.cursor_row - dropped) if self.rows else -1
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False)
            self.refresh()

    def on_resize(self) -> None:
        widths = fit_widths(self.columns, self.scrollable_content_region.width)
        if widths != self.widths:
            self.widths, self._strips, self._header = widths, {}, None
            self._width = sum(w + 1 for w in widths)
            self._resize()
        # rows set before the table had its height scrolled for a smaller one: the
        # cursor (the newest row, when following) must stay in view once it has it
        self.call_after_refresh(self._scroll_to_cursor)

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, len(self.rows) + 1)
        self.refresh()

    # -- cursor -----------------------------------------------------------------------
    def move_cursor(self, row: int, animate: bool = False) -> None:
        self.cursor_row = min(max(row, 0), len(self.rows) - 1) if self.rows else -1
        self._scroll_to_cursor()
        self.call_after_refresh(self._scroll_to_cursor)  # after a new virtual size
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        region = self.scrollable_content_region
        visible = region.height - 1  # the header row
        if self.virtual_size.width > region.width and not self.show_horizontal_scrollbar:
            visible -= 1  # the horizontal scrollbar about to appear takes a line
        visible = max(1, visible)
        # set, not scroll_to: that one is ignored while the scrollbars are not yet
        # enabled, which left a freshly filled table at its top (the newest row unseen)
        if self.cursor_row < self.scroll_y:
            self.set_scroll(None, self.cursor_row)
        elif self.cursor_row >= self.scroll_y + visible:
            self.set_scroll(None, self.cursor_row - visible + 1)

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0:
            self.post_message(self.TopReached(self))
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        if self.cursor_row <= 0:
            self.post_message(self.TopReached(self))
        self.move_cursor(self.cursor_row - max(1, self.size.height - 2))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - 2))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self.rows) - 1)

    def action_select(self) -> None:
        if 0 <= self.cursor_row < len(self.rows):
            self.post_message(self.Selected(self, self.cursor_row))

    def action_copy_row(self) -> None:
        if 0 <= self.cursor_row < len(self.rows):
            text = "  ".join(plain(cell) for cell in self.rows[self.cursor_row]).rstrip()
            self.app.copy_to_clipboard(text)
            self.notify(f"copied: {text[:60]}", timeout=3)

    def on_click(self, event) -> None:
        row = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.rows):
            self.move_cursor(row)
            if event.chain == 2:
                self.action_select()

    def on_mouse_scroll_up(self, _event) -> None:
        if self.scroll_y <= 0:
            self.post_message(self.TopReached(self))

    # -- rendering ----------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            if self._header is None:
                self._header = self._line(tuple(c.title for c in self.columns))
            header = base + self.get_component_rich_style("logtable--header")
            return self._header.apply_style(header).crop_extend(
                scroll_x, scroll_x + width, header)
        index = scroll_y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, base)
        strip = self._row_strip(index).apply_style(base)
        if index == self.cursor_row:
            cursor = self.get_component_rich_style(
                "logtable--cursor" if self.has_focus else "logtable--cursor-blur")
            strip = Strip(Segment.apply_style(strip, post_style=cursor))
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _row_strip(self, index: int) -> Strip:
        row = self.rows[index]
        strip = self._strips.get(id(row))
        if strip is None:
            if len(self._strips) > 500:
                self._strips.clear()
            strip = self._strips[id(row)] = self._line(row)
        return strip

    def _line(self, cells: tuple) -> Strip:
        line = Text(no_wrap=True, end="")
        for width, cell in zip(self.widths, cells, strict=False):
            text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
            text.truncate(width, overflow="ellipsis", pad=True)
            line.append_text(text)
            line.append(" ")
        segments = list(line.render(self.app.console))
        return Strip([s for s in segments if s.text != "\n"] or [Segment("")])

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
