"""C-FIND attribute matching, PS3.4 C.2.2.2: what one key of an identifier accepts.

Pure functions over plain values (text, int, list of text), so the same matcher serves
the DICOM query SCP and the console's search. Person names match without regard to
case (PS3.4 allows it, and every modality worklist user expects it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[Any], bool]
WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
RANGE_VRS = {"DA", "TM", "DT"}


class QueryError(ValueError):
    """An identifier we cannot answer; `status` is the failure to send.

    `comment` says why without the values asked for (they may name a patient): it is
    the Error Comment the requester gets; the message may quote them, for our log."""

    def __init__(self, message: str, status: int = 0xA900, comment: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.comment = comment or message


AMBIGUOUS = "an ambiguous date-time range"
OPEN_RANGE = "a range with neither start nor end"
NOT_A_DATE = "not a date (YYYYMMDD) or date range"
NOT_A_TIME = "not a time (HHMMSS) or time range"
NOT_A_NUMBER = "not a number"


def matcher_for(vr: str, raw: Any) -> Matcher | None:
    """A predicate for one key's value, or None for universal matching (any value)."""
    text = _as_text(raw)
    if text == "" or (vr in WILDCARD_VRS and text.strip("*") == ""):
        return None
    if vr == "UI":
        wanted = {u.strip().rstrip("\x00") for u in text.split("\\") if u.strip()}
        return lambda value: _any(value, lambda v: v in wanted)
    if vr in RANGE_VRS and "-" in text:
        return _range(vr, text)
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return _number(text)
    if vr in WILDCARD_VRS and ("*" in text or "?" in text):
        pattern = _wildcard(text, ignore_case=vr == "PN")
        return lambda value: _any(value, lambda v: pattern.fullmatch(v) is not None)
    if vr == "PN":
        folded = text.strip().casefold()
        return lambda value: _any(value, lambda v: v.strip().casefold() == folded)
    if vr in RANGE_VRS:
        wanted_value = _normal(vr, text)
        return lambda value: _any(value, lambda v: _normal(vr, v) == wanted_value)
    wanted_set = {v.strip() for v in text.split("\\")} if vr == "CS" else {text.strip()}
    return lambda value: _any(value, lambda v: v.strip() in wanted_set)


def _as_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue":
        return "\\".join(str(v) for v in raw)
    return str(raw).strip(" \x00")


def _any(value: Any, test: Callable[[str], bool]) -> bool:
    """Multi-valued attributes (ModalitiesInStudy) match when any value does."""
    if type(value) is str:  # the common case, first
        return value != "" and test(value)
    if isinstance(value, (list, tuple, set)):
        return any(test(str(v)) for v in value)
    if value is None or value == "":
        return False
    return test(str(value))


def _wildcard(text: str, ignore_case: bool) -> re.Pattern:
    parts = []
    for ch in text.strip():
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile(
        "".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    )


def _range(vr: str, text: str) -> Matcher:
    low, _, high = text.partition("-")
    if vr == "DT" and text.count("-") > 1:  # DT may carry a UTC offset: "a-b" splits once
        raise QueryError(f"date-time range {text!r} is ambiguous", comment=AMBIGUOUS)
    low_n, high_n = (
        _normal(vr, low) if low.strip() else "",
        _normal(vr, high, upper=True) if high.strip() else "",
    )
    if not low_n and not high_n:
        raise QueryError(f"range {text!r} has neither start nor end", comment=OPEN_RANGE)

    def test(v: str) -> bool:
        value = _normal(vr, v)
        return (
            bool(value)
            and (not low_n or value >= low_n)
            and (not high_n or value <= high_n)
        )

    return lambda value: _any(value, test)


def _normal(vr: str, text: str, upper: bool = False) -> str:
    """Comparable form: DA 'YYYYMMDD', TM 'HHMMSS.FFFFFF' padded, DT both."""
    text = text.strip().replace(":", "")
    if vr == "DA":
        text = text.replace(".", "")  # ACR-NEMA style 2024.01.31
        if text and not (len(text) == 8 and text.isdigit()):
            raise QueryError(f"date {text!r} is not YYYYMMDD", comment=NOT_A_DATE)
        return text
    if vr == "TM":
        return _pad_time(text, upper)
    date, time = text[:8], text[8:].split("+")[0].split("&")[0]
    return date + _pad_time(time, upper) if time or upper else date


def _pad_time(text: str, upper: bool) -> str:
    if not text:
        return ""
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) % 2 or len(whole) > 6:
        raise QueryError(f"time {text!r} is not HHMMSS", comment=NOT_A_TIME)
    filler = "9" if upper else "0"
    # an hour-only or minute-only end covers that whole hour or minute
    whole += ("59" if upper else "00") * ((6 - len(whole)) // 2)
    return whole + "." + (fraction + filler * 6)[:6]


def _number(text: str) -> Matcher:
    try:
        wanted = {int(v) for v in text.split("\\") if v.strip()}
    except ValueError:
        raise QueryError(f"{text!r} is not a number", comment=NOT_A_NUMBER) from None
    return lambda value: value is not None and value != "" and int(value) in wanted


def text_search(query: str) -> Matcher | None:
    """The console's search box: any part of the value, any case, * and ? allowed."""
    query = query.strip()
    if not query:
        return None
    body = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in query
    )
    pattern = re.compile(body, re.IGNORECASE | re.DOTALL)
    return lambda value: _any(value, lambda v: pattern.search(v) is not None)
