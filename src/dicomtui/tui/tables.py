"""The console's tables: the keys people bring from htop, k9s and lazygit, sorting by a
column, and updates by stable row key (add new, update changed cells, drop stale)."""

from __future__ import annotations

import re

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

SIZE = re.compile(r"^([\d.,]+)\s*(Bytes|Byte|B|kB|MB|GB|TB|PB)(/s)?$")
UNITS = {"Byte": 1, "Bytes": 1, "B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
         "PB": 1e15}
ARROWS = {False: " ▲", True: " ▼"}


class SortableTable(DataTable):
    """A DataTable with j/k/g/G, `o` to sort by the next column (`O` the other way), a
    click on a header to sort by it, and `y` to copy the selected row."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
        Binding("o", "sort_next", "Sort", id="table.sort", show=False,
                tooltip="sort by the next column (a click on a header sorts by it)"),
        Binding("O", "sort_reverse", "Reverse sort", id="table.reverse", show=False,
                tooltip="sort the other way"),
        Binding("y", "copy_row", "Copy row", id="table.copy", show=False,
                tooltip="copy the selected row to the clipboard (OSC 52)"),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sort_column: int | None = None
        self.sort_descending = False

    def action_sort_next(self) -> None:
        count = len(self.ordered_columns)
        following = -1 if self.sort_column is None else self.sort_column
        self.sort_by(None if following + 1 >= count else following + 1)

    def action_sort_reverse(self) -> None:
        if self.sort_column is not None:
            self.sort_by(self.sort_column, not self.sort_descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        same = event.column_index == self.sort_column
        self.sort_by(event.column_index, not self.sort_descending if same else False)

    def sort_by(self, column: int | None, descending: bool = False) -> None:
        """Sort by `column` (None: the order the screen gives), arrow in its header."""
        self.sort_column, self.sort_descending = column, descending
        titles = getattr(self, "_titles", None) or [c.label.plain for c in self.ordered_columns]
        self._titles = titles
        for index, (col, title) in enumerate(zip(self.ordered_columns, titles, strict=False)):
            col.label = Text(title + (ARROWS[descending] if index == column else ""))
        given = getattr(self, "_given_rows", None)
        if given is not None:
            sync_rows(self, given)
        self._require_update_dimensions = True  # the arrow widens a header
        self.notify_style_update()  # drops the cached header line: the arrow shows
        words = "as the screen lists them" if column is None else (
            f"by {titles[column]}" + (", descending" if descending else ""))
        self.notify(f"sorted {words}", timeout=2)

    def action_copy_row(self) -> None:
        cells = self.selected_cells()
        if cells:
            text = "  ".join(cells)
            self.app.copy_to_clipboard(text)
            self.notify(f"copied: {text[:60]}", timeout=3)

    def selected_cells(self) -> list[str]:
        """The plain text of the cursor row's cells (none when the table is empty)."""
        if not 0 <= self.cursor_row < self.row_count:
            return []
        return [cell.plain if isinstance(cell, Text) else str(cell)
                for cell in self.get_row_at(self.cursor_row)]


def sort_key(cell) -> tuple:
    """Numbers and sizes by value, the rest as text, blanks last."""
    text = (cell.plain if isinstance(cell, Text) else str(cell)).strip()
    if not text:
        return (2, 0.0, "")
    size = SIZE.match(text)
    try:
        if size:
            return (0, float(size[1].replace(",", "")) * UNITS[size[2]], "")
        return (0, float(text.replace(",", "")), "")
    except ValueError:
        return (1, 0.0, text.casefold())


def sorted_rows(table: DataTable, rows: dict[str, tuple]) -> dict[str, tuple]:
    """`rows` in the table's chosen order (as given when it has none)."""
    column = getattr(table, "sort_column", None)
    if column is None:
        return rows
    ordered = sorted(rows.items(), key=lambda item: sort_key(item[1][column]),
                     reverse=table.sort_descending)
    if table.sort_descending:  # blanks last either way
        ordered.sort(key=lambda item: sort_key(item[1][column])[0] == 2)
    return dict(ordered)


def sync_rows(table: DataTable, rows: dict[str, tuple]) -> None:
    """Make `table` show exactly `rows` (key -> cells, in order; a Table sorts them
    its way), touching only what changed; rows that arrive anywhere but at the bottom
    (a newest-first table) mean one rebuild, the cursor staying on the row it was on."""
    table._given_rows = rows
    rows = sorted_rows(table, rows)
    shown: dict[str, tuple] = getattr(table, "_shown_rows", {})
    if shown == rows and list(shown) == list(rows):
        return
    kept = [key for key in shown if key in rows]
    if list(rows) != kept + [key for key in rows if key not in shown]:
        _rebuild(table, rows)
        return
    columns = list(table.columns)
    with table.app.batch_update():
        for key in [k for k in shown if k not in rows]:
            table.remove_row(key)
        for key, cells in rows.items():
            before = shown.get(key)
            if before is None:
                table.add_row(*cells, key=key)
            elif before != cells:
                for column, old, new in zip(columns, before, cells, strict=False):
                    if old != new:
                        table.update_cell(key, column, new, update_width=True)
    table._shown_rows = dict(rows)
    _redraw_once_measured(table)


def _rebuild(table: DataTable, rows: dict[str, tuple]) -> None:
    chosen, row = selected_key(table), table.cursor_row
    with table.app.batch_update():
        table.clear()
        for key, cells in rows.items():
            table.add_row(*cells, key=key)
        if chosen in rows:
            row = list(rows).index(chosen)
        table.move_cursor(row=min(max(row, 0), len(rows) - 1))
    table._shown_rows = dict(rows)
    _redraw_once_measured(table)


def _redraw_once_measured(table: DataTable) -> None:
    """DataTable measures new cells when idle, but keeps the lines it drew before that
    (Textual 8.2.8): a wider cell then stays cut to the old width. Its next callbacks
    run right after that idle pass; dropping its caches there redraws at the new width."""
    table.call_next(table.notify_style_update)


def selected_key(table: DataTable) -> str | None:
    """The row key under the cursor (None when the table is empty)."""
    if not 0 <= table.cursor_row < table.row_count:
        return None
    return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
