"""The console's current screen as plain text, for assertions and for reading."""

from __future__ import annotations

import io

from rich.console import Console


def screen_text(app) -> str:
    """What a person would read on the terminal right now (no colours)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system=None, record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()
