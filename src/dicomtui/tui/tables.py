"""DataTable updates by stable row key: add new, update changed cells, drop stale."""

from __future__ import annotations

from textual.widgets import DataTable


def sync_rows(table: DataTable, rows: dict[str, tuple]) -> None:
    """Make `table` show exactly `rows` (key -> cells, in order), touching only what
    changed; rows that arrive anywhere but at the bottom (a newest-first table) mean
    one rebuild, the cursor staying on the row it was on."""
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
