"""How the study index reads on screen 3: study rows, the label, series, one study."""

from __future__ import annotations

from datetime import date

from rich.text import Text

from dicomtui.models import Destination, SeriesRow, StudyPage, StudyQuery, StudyRow
from dicomtui.tui import format as fmt
from dicomtui.tui.screens.study_search import chips, shown_date

COLUMNS = ("state", "patient name", "patient ID", "study date", "accession", "modalities",
           "facility", "series", "instances", "size", "last received")
SERIES_COLUMNS = ("series", "modality", "description", "instances", "size")
STATE_STYLE = {"receiving": "bold yellow", "complete": "green", "zipped": "blue",
               "queued": "cyan", "uploading": "bold cyan", "uploaded": "bold green",
               "failed": "bold red"}
STATE_WIDTH = len("receiving")  # padded: a cell that grows re-measures the column
NAME_WIDTH = 22
FACILITY_WIDTH = 18
EMPTY = ("No studies indexed yet: studies show here as they are received. Files already "
         "in storage? i on screen 6 (or `dicomtui reindex`) indexes them.")
NO_MATCH = "No study matches this search. Esc clears it."


def study_rows(studies: list[StudyRow], today: date) -> dict[str, tuple]:
    """Row key (the study UID) -> cells."""
    return {s.uid: study_row(s, today) for s in studies}


def study_row(s: StudyRow, today: date) -> tuple:
    return (state_cell(s.state), _cut(s.patient_name, NAME_WIDTH), s.patient_id,
            shown_date(s.study_date), s.accession, "/".join(s.modalities),
            _cut(s.facility, FACILITY_WIDTH), _right(f"{s.series:,}"),
            _right(f"{s.instances:,}"), _right(fmt.size(s.bytes)),
            fmt.when(s.last_received, today))


def state_cell(state: str) -> Text:
    return Text(state.ljust(STATE_WIDTH), style=STATE_STYLE.get(state, ""))


def section_label(page: StudyPage | None, query: StudyQuery) -> Text:
    """'11 studies, newest received first  matching …  Esc: clear', and '500 of 1,234'
    when the page holds fewer than matched."""
    if page is None:
        return Text("Studies")
    shown, total = len(page.studies), page.total
    noun = "study" if total == 1 else "studies"
    text = Text(f"{shown:,} of {total:,} {noun}" if shown < total else f"{total:,} {noun}",
                style="yellow" if shown < total else "")
    if total:
        text.append(", newest received first")
    found = chips(query)
    if found:
        text.append("  matching " + " · ".join(found), style="bold")
        text.append("  Esc: clear", style="dim")
    elif page.studies:
        text.append("  Enter: series  / search  m: send", style="dim")
    if shown < total:
        text.append("  narrow the search to see the rest", style="yellow")
    return text


def series_rows(series: list[SeriesRow]) -> dict[str, tuple]:
    """Row key (the series UID) -> cells."""
    return {s.uid: (_right("" if s.number is None else str(s.number)), s.modality,
                    s.description, _right(f"{s.instances:,}"), _right(fmt.size(s.bytes)))
            for s in series}


def study_header(s: StudyRow, series: list[SeriesRow] | None) -> Text:
    """Who and what the study is (five lines), with counts from its series once read."""
    text = Text(" ")
    text.append(s.patient_name or "(no name)", style="bold")
    born = shown_date(s.birth_date)
    text.append("".join(f" · {w}" for w in (s.patient_id, f"born {born}" if born else "",
                                             s.sex) if w))
    text.append("\n ")
    text.append(s.state, style=STATE_STYLE.get(s.state, ""))
    text.append(" · ")
    when = " ".join(filter(None, (shown_date(s.study_date), _time(s.study_time))))
    text.append(" · ".join(filter(None, (f"study {when}" if when else "",
                                         f"accession {s.accession}" if s.accession else "",
                                         "/".join(s.modalities), s.facility))))
    text.append(f"\n {s.description or '(no description)'}")
    if s.referring:
        text.append(f" · referred by {s.referring}", style="dim")
    text.append(f"\n {counts(s, series)}")
    text.append(f"\n study UID {s.uid}", style="dim")
    return text


def counts(s: StudyRow, series: list[SeriesRow] | None) -> str:
    """'3 series · 227 instances · 412.0 MB' (as indexed now, once the series are read)."""
    if series is not None:
        images, size, number = (sum(r.instances for r in series),
                                sum(r.bytes for r in series), len(series))
    else:
        images, size, number = s.instances, s.bytes, s.series
    return f"{number:,} series · {images:,} instances · {fmt.size(size)}"


def send_question(s: StudyRow, dest: Destination) -> tuple[str, str]:
    """The confirmation before a send: (question, detail)."""
    what = ", ".join(filter(None, (shown_date(s.study_date), "/".join(s.modalities))))
    question = f"Send {s.patient_name or s.patient_id or 'this study'} ({what}) to " \
               f"{dest.ae_title}?"
    detail = (f"{s.instances:,} instances ({fmt.size(s.bytes)}) go to {dest.ae_title} at "
              f"{dest.host}:{dest.port} by C-STORE; the study stays here. Progress shows "
              "under the table.")
    if s.state == "receiving":
        detail += " The study is still being received: what arrives later is not sent."
    return question, detail


def study_words(s: StudyRow) -> str:
    """'DOE^JOHN · 2026-11-23 · CT · 214 instances, 112.8 MB': a study in one line."""
    return " · ".join(filter(None, (s.patient_name, s.patient_id, shown_date(s.study_date),
                                    "/".join(s.modalities),
                                    f"{s.instances:,} instances, {fmt.size(s.bytes)}")))


def _time(value: str) -> str:
    digits = value.split(".")[0]
    return f"{digits[:2]}:{digits[2:4]}" if len(digits) >= 4 and digits.isdigit() else ""


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[:width - 1] + "…"


def _right(value: str) -> Text:
    return Text(value, justify="right")
