"""How one transaction or log event reads as a row of the Log screen."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from rich.text import Text

from dicomtui.tui import format as fmt
from dicomtui.tui.logtable import Column, plain
from dicomtui.wording import in_words

# what happened and why first (time, type, outcome, who, reason); the rest follow as the
# width allows, and Enter shows the whole record
COLUMNS = [Column("time", 11), Column("type", 11), Column("status", 13),
           Column("calling AE", 16), Column("reason", 24, flex=True),
           Column("called AE", 16), Column("peer", 21), Column("SOP class", 24),
           Column("patient ID", 16), Column("study", 14), Column("size", 9),
           Column("ms", 6)]
OUTCOME_STYLE = {"ok": "green", "warning": "yellow", "failed": "bold red",
                 "refused": "bold red"}
LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red",
               "CRITICAL": "bold white on red"}


def row_cells(record: dict, today: date) -> tuple:
    """The table cells of one transaction record."""
    outcome = record.get("outcome", "")
    code = fmt.status_code(record.get("status"))
    status = Text(f"{outcome} {code}".strip(), style=OUTCOME_STYLE.get(outcome, ""))
    ms = record.get("duration_ms")
    return (fmt.when(record.get("time"), today), record.get("type", ""), status,
            record.get("calling_ae", ""), reason_cell(record),
            record.get("called_ae", ""), record.get("peer", ""),
            sop_class_name(record.get("sop_class") or ""),
            record.get("patient_id") or "", _short_uid(record.get("study_uid")),
            fmt.size(record["bytes"]) if record.get("bytes") else "",
            f"{ms:,.0f}" if isinstance(ms, (int, float)) else "")


def file_cells(record: dict, today: date) -> list[str]:
    """One row as the saved file has it: the cells, but the whole time and study UID."""
    cells = [plain(cell) for cell in row_cells(record, today)]
    cells[0], cells[9] = record.get("time") or "", record.get("study_uid") or ""
    return cells


def reason_cell(record: dict) -> Text:
    """The reason in words (without the 'rejected:' the status already says), red when
    something went wrong."""
    words = in_words(record.get("reason")).removeprefix("rejected: ")
    return Text(words, style="red" if record.get("outcome") in ("failed", "refused") else "")


def _short_uid(uid: str | None) -> str:
    uid = uid or ""
    return uid if len(uid) <= 14 else "…" + uid[-13:]


@lru_cache(maxsize=512)
def sop_class_name(uid: str) -> str:
    """'CT Image Storage' for its UID; the UID itself when unknown."""
    if not uid:
        return ""
    from pydicom.uid import UID  # pydicom's dictionary: loaded on the first row only
    name = UID(uid).name
    return name.removesuffix(" Storage") if name != uid else uid


def app_log_line(event) -> Text:
    """One application log line: time, level, source, message."""
    source = event.data.get("logger", event.kind)
    line = Text(f"{fmt.clock(event.time)} ")
    line.append(f"{event.level:<7}", style=LEVEL_STYLE.get(event.level, ""))
    line.append(f" {source}: ", style="dim")
    line.append(event.message)
    return line
