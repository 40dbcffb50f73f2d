"""DataTable updates by stable row key: add new, update changed cells, drop stale."""

from __future__ import annotations

from textual.widgets import DataTable


def sync_rows(table: DataTable, rows: dict[str, tuple]) -> None:
    """Make `table` show exactly `rows` (key -> cells), touching only what changed."""
    shown: dict[str, tuple] = getattr(table, "_shown_rows", {})
    if shown == rows:
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
                for column, old, new in zip(columns, before, cells):
                    if old != new:
                        table.update_cell(key, column, new, update_width=True)
    table._shown_rows = dict(rows)
