"""Words and small pictures for the console: sizes, durations, clocks, bars."""

from __future__ import annotations

from datetime import date, datetime

from rich.text import Text

from dicomtui.wording import clock as _clock
from dicomtui.wording import (
    duration,
    size,  # noqa: F401 - one way to write a size, CLI and console
)

STATE_STYLE = {"running": "bold green", "starting": "bold yellow", "stopping": "bold yellow",
               "stopped": "bold red", "error": "bold white on red",
               "unreachable": "bold white on red", "connecting": "bold yellow"}


def short_duration(seconds: float) -> str:
    """'3 h 12 m': one way to write an uptime, the header's, the body's and the CLI's."""
    return duration(seconds)


def clock(iso: str | None) -> str:
    """HH:MM:SS of an ISO time (the console's rows are narrow)."""
    return _clock(iso, with_date=False)


def when(iso: str | None, today: date) -> str:
    """HH:MM:SS today, 'MM-DD HH:MM' before: a row's time in the width of a clock."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso or "")
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M")


def on_off(value) -> Text:
    """'on' (bold) or 'off' (dim): a switch that reads the same without colour."""
    return Text("on", style="bold green") if value else Text("off", style="dim")


def age_seconds(iso: str | None, now: datetime) -> float:
    """Seconds from an ISO time to `now` (0 when unknown)."""
    try:
        return max(0.0, (now - datetime.fromisoformat(iso)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def rate(per_second: float) -> str:
    return f"{per_second:,.1f}/s" if per_second < 100 else f"{per_second:,.0f}/s"


def bar(fraction: float, width: int) -> str:
    """A text bar that reads the same with or without colour."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def status_code(value) -> str:
    return f"0x{value:04X}" if isinstance(value, int) else ""
