"""The Studies screen's search fields as a StudyQuery.

Dates are checked here (a typo would otherwise match nothing, silently); every other
field goes to the Backend as typed, which matches any part, any case, with * and ?.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from dicomtui.models import StudyQuery

FIELDS = ("patient", "accession", "date_from", "date_to", "modality", "facility")
DATE = re.compile(r"^(\d{8}|\d{4}-\d{2}-\d{2})$")
NO_SEARCH = StudyQuery()


class SearchError(ValueError):
    """A search field the Backend cannot use; the message says what would work."""


def study_query(values: dict[str, str]) -> StudyQuery:
    """The query the fields mean (`values` by FIELDS name); SearchError if a date is
    not one, or the range is backwards."""
    start = study_date(values.get("date_from", ""), "from")
    end = study_date(values.get("date_to", ""), "to")
    if start and end and start > end:
        raise SearchError(f"from {shown_date(start)} is after to {shown_date(end)}: "
                          "swap them")
    text = {name: " ".join(values.get(name, "").split()) for name in FIELDS}
    return replace(NO_SEARCH, patient=text["patient"], accession=text["accession"],
                   date_from=start, date_to=end, modality=text["modality"],
                   facility=text["facility"])


def study_date(typed: str, which: str) -> str:
    """YYYYMMDD for a date typed as YYYYMMDD or YYYY-MM-DD ('' when blank)."""
    typed = typed.strip()
    if not typed:
        return ""
    problem = f"{which} date {typed!r}: use YYYYMMDD or YYYY-MM-DD, e.g. 20261123"
    if not DATE.match(typed):
        raise SearchError(problem)
    try:
        return datetime.strptime(typed.replace("-", ""), "%Y%m%d").strftime("%Y%m%d")
    except ValueError:
        raise SearchError(f"{which} date {typed!r} is not a day of the calendar") from None


def shown_date(value: str) -> str:
    """'2026-11-23' for a DICOM date '20261123' (anything else as it is)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def field_values(query: StudyQuery) -> dict[str, str]:
    """What the fields show for a query (dates as YYYY-MM-DD)."""
    values = {name: getattr(query, name) for name in FIELDS}
    values["date_from"], values["date_to"] = (shown_date(query.date_from),
                                              shown_date(query.date_to))
    return values


def chips(query: StudyQuery) -> list[str]:
    """One short label per condition: 'patient "doe"', '2026-11-01 … 2026-11-23'."""
    found = [f'patient "{query.patient}"'] if query.patient else []
    found += [f'accession "{query.accession}"'] if query.accession else []
    start, end = shown_date(query.date_from), shown_date(query.date_to)
    if start and end:
        found.append(start if start == end else f"{start} … {end}")
    elif start or end:
        found.append(f"from {start}" if start else f"until {end}")
    found += [f"modality {query.modality}"] if query.modality else []
    return found + ([f'facility "{query.facility}"'] if query.facility else [])
