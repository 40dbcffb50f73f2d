"""How the upload queue reads on screen 7 and on Status: counts, target, rows, details."""

from __future__ import annotations

import os
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from rich.text import Text

from dicomtui.models import UploadItem, UploadSummary
from dicomtui.tui import format as fmt

COLUMNS = ("ID", "study", "state", "progress", "size", "tries", "retry", "error")
POLICY = ("api_url", "auto_upload", "zip_studies")  # never the password or the token
RETRYABLE = ("failed", "cancelled")
FINISHED = ("done", "cancelled")  # nothing left to cancel
STATE_STYLE = {"queued": "cyan", "uploading": "bold yellow", "done": "green",
               "failed": "bold red", "cancelled": "dim"}
STATE_WIDTH = len("cancelled")  # padded: see facility_rows.facility_row
BAR_WIDTH = 5
STUDY_WIDTH = 12  # with the other columns, 80 terminal columns leave the error 10
MIN_ERROR = 8
SPARE = 2 + 2 * len(COLUMNS)  # a vertical scrollbar, and the padding around each cell
EMPTY = ("No uploads yet: completed studies are zipped and queued when zip_studies and "
         "auto_upload are on; u uploads a folder or zip by hand.")


def count_words(counts: list[tuple[str, int]], keep_zero: bool) -> Text:
    """'3 queued · 1 uploading · 2 failed': failed stands out, zeros dim (or left out)."""
    text = Text()
    for state, count in counts:
        if not count and not keep_zero:
            continue
        if text:
            text.append(" · ")
        style = "dim" if not count else "bold red" if state == "failed" else ""
        text.append(f"{count:,} {state}", style=style)
    return text


def status_line(summary: UploadSummary) -> Text:
    """'Uploads: 3 queued · 1 uploading · 2 failed · 14 done' (zeros left out)."""
    text = Text("Uploads: ")
    words = count_words([(state, getattr(summary, state)) for state in
                         ("queued", "uploading", "failed", "done")], keep_zero=False)
    text.append_text(words if words else Text("none", style="dim"))
    return text


def counts_line(items: list[UploadItem], loaded: bool) -> Text:
    """The queue by state, counted from the rows shown."""
    if not loaded:
        return Text(" reading the upload queue…", style="dim")
    states = [item.state for item in items]
    counts = [(state, states.count(state)) for state in
              ("queued", "uploading", "failed", "done")]
    if "cancelled" in states:
        counts.append(("cancelled", states.count("cancelled")))
    return Text(" ") + count_words(counts, keep_zero=True)


def target_line(values: dict) -> Text:
    """Where uploads go, and whether studies are zipped and queued on their own."""
    if not values:
        return Text("")
    text = Text(" to ")
    text.append(shown_url(_value(values, "api_url") or ""), style="bold")
    zips, auto = bool(_value(values, "zip_studies")), bool(_value(values, "auto_upload"))
    for name, on in (("zip_studies", zips), ("auto_upload", auto)):
        text.append(f" · {name} ")
        text.append_text(fmt.on_off(on))
    if auto and not zips:
        text.append("  auto_upload needs zip_studies", style="yellow")
    return text


def shown_url(url: str) -> str:
    """The URL without what could be a secret in it (user:password@, a query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("@")[-1].split("?")[0]
    if "@" not in parts.netloc and not parts.query:
        return url
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def upload_rows(items: list[UploadItem], now: datetime, width: int) -> dict[str, tuple]:
    """Row key -> cells; the last error is cut so the table fits `width` (Enter shows
    it whole)."""
    rows = {str(item.id): upload_row(item, now) for item in items}
    last = len(COLUMNS) - 1
    others = sum(max([len(title)] + [_width(cells[i]) for cells in rows.values()])
                 for i, title in enumerate(COLUMNS) if i != last)
    room = max(MIN_ERROR, width - others - SPARE)
    for cells in rows.values():
        cells[last].truncate(room, overflow="ellipsis")
    return rows


def upload_row(item: UploadItem, now: datetime) -> tuple:
    return (Text(str(item.id), justify="right"), study_name(item),
            Text(item.state.ljust(STATE_WIDTH), style=STATE_STYLE.get(item.state, "")),
            progress(item), Text(fmt.size(item.size), justify="right"),
            Text(str(item.attempts), justify="right"), countdown(item, now),
            Text(" ".join(item.last_error.split()), style="red"))


def study_name(item: UploadItem) -> str:
    """The end of the study UID (its start is the sender's root, shared by many), or
    the zip's file name for one queued by hand."""
    if item.study_uid:
        suffix = f" v{item.version}" if item.version > 1 else ""
        return _cut_start(item.study_uid, STUDY_WIDTH - len(suffix)) + suffix
    name = os.path.basename(item.path) or item.path
    return name if len(name) <= STUDY_WIDTH else name[:STUDY_WIDTH - 1] + "…"


def progress(item: UploadItem) -> Text:
    """'███░░ 52%' while uploading, '100%' once done, nothing otherwise."""
    if item.state == "done":
        return Text("100%", style="green")
    if item.state != "uploading":
        return Text("")
    fraction = min(1.0, item.bytes_sent / item.size) if item.size else 0.0
    text = Text(fmt.bar(fraction, BAR_WIDTH), style="yellow")
    text.append(f" {fraction:.0%}")
    return text


def countdown(item: UploadItem, now: datetime) -> str:
    """'in 12 s' for a queued item waiting to be tried again."""
    if item.state != "queued" or not item.next_attempt:
        return ""
    try:
        wait = (datetime.fromisoformat(item.next_attempt) - now).total_seconds()
    except (TypeError, ValueError):
        return ""
    return f"in {fmt.short_duration(wait)}" if wait >= 1 else ""


def details(item: UploadItem, now: datetime) -> dict:
    """Every field of an item, as the details dialog shows it."""
    waiting = countdown(item, now)
    shown = {"id": item.id, "state": item.state, "path": item.path,
             "study_uid": item.study_uid or "(none: queued by hand)",
             "version": item.version, "source": item.source,
             "size": f"{fmt.size(item.size)} ({item.size:,} bytes)"}
    if item.state == "uploading":
        shown["bytes_sent"] = (f"{fmt.size(item.bytes_sent)} ({item.bytes_sent:,} bytes"
                               f", {progress(item).plain.split()[-1]})")
    shown.update(attempts=item.attempts, next_attempt=f"{item.next_attempt} ({waiting})"
                 if waiting else item.next_attempt, last_error=item.last_error,
                 created=item.created, finished=item.finished)
    return shown


def cancel_detail(item: UploadItem) -> str:
    what = f"{os.path.basename(item.path) or item.path}, {fmt.size(item.size)}."
    if item.state == "uploading":
        what += " The transfer in progress is abandoned."
    return f"{what} The zip stays where it is: r queues it again by hand."


def _cut_start(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _value(values: dict, name: str):
    found = values.get(name)
    return found.value if found is not None else None


def _width(cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(cell)
