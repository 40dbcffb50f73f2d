"""How storage reads on screen 6: usage against the quota, the disk, usage tables, and
what a cleanup would remove and keep."""

from __future__ import annotations

from datetime import date

from rich.console import Group
from rich.table import Table
from rich.text import Text

from dicomtui.models import CleanupCandidate, CleanupPlan, StorageReport, UsageRow
from dicomtui.tui import format as fmt
from dicomtui.tui.screens.study_search import shown_date

USAGE_TABLES = (("facility", "By facility"), ("modality", "By modality"),
                ("day", "By day received, newest first"))
USAGE_COLUMNS = ("studies", "instances", "size")
BAR_WIDTH = 30
PLAN_SHOWN = 200  # rows the preview lists; the counts above it say the whole
LABEL = "{:<8}"


def summary(report: StorageReport | None) -> Text:
    """Four lines: used against the quota, the disk, the index, the cleanup policy."""
    if report is None:
        return Text(" reading the storage report…", style="dim")
    return Text("\n").join([quota_line(report), disk_line(report), index_line(report),
                            policy_line(report)])


def quota_line(report: StorageReport) -> Text:
    text = Text(" " + LABEL.format("Used"), style="bold")
    used, quota = report.used_bytes, report.quota_bytes
    if not quota:
        text.append(f"{fmt.size(used)}", style="bold")
        text.append(" · no quota (max_storage_gb = 0)", style="dim")
        return text
    fraction = used / quota
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.75 else "green"
    text.append(fmt.bar(fraction, BAR_WIDTH), style=style)
    text.append(f" {fraction:.0%} ", style=f"bold {style}")
    text.append(f" {fmt.size(used)} of {fmt.size(quota)} (max_storage_gb)")
    if fraction >= 1:
        text.append("  full: new images are refused", style="bold red")
    return text


def disk_line(report: StorageReport) -> Text:
    text = Text(" " + LABEL.format("Disk"), style="bold")
    if report.disk_total:
        low = report.disk_free < report.disk_total * 0.1
        text.append(f"{fmt.size(report.disk_free)} free", style="bold red" if low else "")
        text.append(f" of {fmt.size(report.disk_total)}")
    else:
        text.append("free space unknown", style="dim")
    text.append(f" · {report.root}", style="dim")
    return text


def index_line(report: StorageReport) -> Text:
    text = Text(" " + LABEL.format("Index"), style="bold")
    noun = "study" if report.studies == 1 else "studies"
    text.append(f"{report.studies:,} {noun} · {report.instances:,} instances · "
                f"{fmt.size(report.indexed_bytes)}")
    return text


def policy_line(report: StorageReport) -> Text:
    text = Text(" " + LABEL.format("Cleanup"), style="bold")
    text.append("auto_cleanup ")
    text.append_text(fmt.on_off(report.auto_cleanup))
    text.append(f" · retention_days {report.retention_days:,}")
    if report.auto_cleanup:
        text.append(f"  (at the quota, studies older than {report.retention_days:,} days "
                    "go)", style="dim")
    return text


def usage_rows(rows: list[UsageRow], kind: str) -> dict[str, tuple]:
    """Row key -> cells (a day as YYYY-MM-DD, whichever way it came)."""
    return {row.key: (_key(row.key, kind), _right(f"{row.studies:,}"),
                      _right(f"{row.instances:,}"), _right(fmt.size(row.bytes)))
            for row in rows}


def _key(key: str, kind: str) -> str:
    if kind == "day":
        return shown_date(key)
    return key or "(none)"


def days_words(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def plan_question(plan: CleanupPlan) -> str:
    age = days_words(plan.older_than_days)
    if not plan.remove:
        return f"Nothing to clean up: no study received over {age} ago" + (
            " may be removed" if plan.keep else "")
    noun = "study" if len(plan.remove) == 1 else "studies"
    return (f"Remove {len(plan.remove):,} {noun} ({fmt.size(plan.bytes)}) received over "
            f"{age} ago?")


def plan_body(plan: CleanupPlan, today: date) -> Group:
    """What goes (oldest first) and what stays, with why."""
    parts: list = []
    if plan.remove:
        parts += [Text("Removed from storage and the index, oldest first:", style="bold"),
                  _candidates(plan.remove, today, kept=False)]
        if len(plan.remove) > PLAN_SHOWN:
            parts.append(Text(f"… and {len(plan.remove) - PLAN_SHOWN:,} more", style="dim"))
    if plan.keep:
        if parts:
            parts.append(Text(""))
        parts += [Text(f"Kept ({len(plan.keep):,}), old enough but still needed:",
                       style="bold"), _candidates(plan.keep, today, kept=True)]
        if len(plan.keep) > PLAN_SHOWN:
            parts.append(Text(f"… and {len(plan.keep) - PLAN_SHOWN:,} more", style="dim"))
    return Group(*parts)


def _candidates(found: list[CleanupCandidate], today: date, kept: bool) -> Table:
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
    for title in ("received", "patient ID", "study date", "facility"):
        table.add_column(title, no_wrap=True, style="dim" if title == "received" else "")
    if kept:
        table.add_column("kept because", style="yellow", ratio=1)
    else:
        table.add_column("size", justify="right", no_wrap=True)
    for c in found[:PLAN_SHOWN]:
        cells = [fmt.when(c.last_received, today), c.patient_id, shown_date(c.study_date),
                 c.facility]
        table.add_row(*cells, c.kept_because if kept else fmt.size(c.bytes))
    return table


def _right(value: str) -> Text:
    return Text(value, justify="right")
