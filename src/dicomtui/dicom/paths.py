"""Turning dataset values into safe path parts.

UIDs are validated, never repaired: a UID that is not digits and dots is refused before it
can reach a path. Every other value is sanitized so it cannot name a separator, a parent
directory or a device, and is bounded in length.
"""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
MAX_PART_LENGTH = 64
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-+=^@ ]")
_SPACES = re.compile(r"[ _]+")


class InvalidUID(ValueError):
    """A UID that is not a PS3.5 UID (digits and dots, at most 64 characters)."""


def uid_problem(value: object) -> str | None:
    """Why `value` is not a valid UID, or None when it is."""
    if not isinstance(value, str) or not value:
        return "is missing"
    if len(value) > MAX_UID_LENGTH:
        return f"is longer than {MAX_UID_LENGTH} characters"
    if not _UID.fullmatch(value):
        return "has characters other than digits and dots"
    return None


def check_uid(name: str, value: object) -> str:
    """Return `value` if it is a valid UID, else raise InvalidUID naming the element."""
    problem = uid_problem(value)
    if problem:
        raise InvalidUID(f"{name} {problem}")
    return value  # type: ignore[return-value]


def safe_part(value: object, fallback: str = "UNKNOWN") -> str:
    """A single path component made from an arbitrary value: no separators, no `..`."""
    text = "" if value is None else str(value)
    text = _UNSAFE.sub("_", text.replace("\x00", ""))
    text = _SPACES.sub("_", text).strip("._ -")
    text = text[:MAX_PART_LENGTH].rstrip("._ -")
    return text or fallback
