"""How the anonymization map reads on screen 8: the policy lines and subject rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from rich.text import Text

from dicomtui.models import MASK, AnonSubject
from dicomtui.tui import format as fmt

COLUMNS = ("code", "studies", "images", "first seen", "last seen", "patient name",
           "patient ID")
POLICY = ("anonymize", "anonymize_uids", "anonymization_key_file")
SHOWN = 1000  # rows the table holds; `/` finds the others
MIN_NAME = 12
SPARE = 2 + 2 * len(COLUMNS)  # a vertical scrollbar, and the padding around each cell
EMPTY = "No subjects yet: nothing has been anonymized."


def policy_line(values: dict, loaded: bool) -> Text:
    """'Anonymization on · UIDs kept · map encrypted', from the three settings."""
    if not loaded:
        return Text(" reading the anonymization map…", style="dim")
    text = Text(" Anonymization ")
    on = bool(_value(values, "anonymize"))
    text.append_text(fmt.on_off(on))
    if not on:
        text.append(" (facilities may turn it on)", style="dim")
    text.append(" · UIDs replaced" if _value(values, "anonymize_uids") else " · UIDs kept")
    if _value(values, "anonymization_key_file"):
        text.append(" · map encrypted")
    else:
        text.append(" · map not encrypted", style="yellow")
    return text


def count_line(count: int, revealed: bool) -> Text:
    """How many subjects, and whether their identities show."""
    text = Text(f" {count:,} subject{'' if count == 1 else 's'} · ")
    if revealed:
        text.append(" ORIGINAL IDENTITIES SHOWN ", style="bold black on yellow")
        text.append("  v: mask again", style="dim")
    else:
        text.append("originals masked", style="bold")
        text.append("  (v: reveal, logged)", style="dim")
    return text


def section_label(count: int, search: str, loaded: bool) -> Text:
    text = Text("Subjects")
    if search:
        text.append(f'  code contains "{search}"  (Esc: clear)', style="dim")
    elif loaded:
        text.append("  / search by code", style="dim")
    if count > SHOWN:
        text.append(f"  first {SHOWN:,} of {count:,}", style="dim")
    return text


def empty_note(search: str) -> str:
    return f'No subject code contains "{search}".' if search else EMPTY


def shown_subjects(subjects: list[AnonSubject],
                   originals: dict[str, AnonSubject]) -> list[AnonSubject]:
    """The rows to show: today's counts, with the originals revealed for them (a
    subject that arrived after the reveal stays masked)."""
    rows = []
    for subject in subjects[:SHOWN]:
        known = originals.get(subject.code)
        rows.append(subject if known is None else replace(
            subject, patient_name=known.patient_name, patient_id=known.patient_id,
            issuer=known.issuer, revealed=True))
    return rows


def subject_rows(subjects: list[AnonSubject], today: date, width: int) -> dict[str, tuple]:
    """Row key -> cells; long revealed names are cut so the table fits `width`."""
    rows = {s.code: subject_row(s, today) for s in subjects}
    others = sum(max([len(title)] + [_width(cells[i]) for cells in rows.values()])
                 for i, title in enumerate(COLUMNS) if i != 5)
    room = max(MIN_NAME, width - others - SPARE)
    for cells in rows.values():
        cells[5].truncate(room, overflow="ellipsis")
    return rows


def subject_row(subject: AnonSubject, today: date) -> tuple:
    return (subject.code, Text(f"{subject.studies:,}", justify="right"),
            Text(f"{subject.instances:,}", justify="right"),
            fmt.when(subject.first_seen, today), fmt.when(subject.last_seen, today),
            _original(subject.patient_name), _original(subject.patient_id))


def _original(value: str) -> Text:
    if value == MASK:
        return Text(MASK, style="dim")
    if not value:
        return Text("(empty)", style="dim")
    return Text(value, style="bold yellow")  # identities stand out while shown


def _value(values: dict, name: str):
    found = values.get(name)
    return found.value if found is not None else None


def _width(cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(cell)
