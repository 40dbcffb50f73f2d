"""AE title rules (PS3.5 AE value representation)."""

from __future__ import annotations

MAX_AE_LENGTH = 16


def ae_title_problem(value: str) -> str | None:
    """Why `value` is not a usable AE title, or None when it is."""
    if not isinstance(value, str):
        return "must be text"
    stripped = value.strip(" ")
    if not stripped:
        return "must not be empty"
    if len(stripped) > MAX_AE_LENGTH:
        return f"must be at most {MAX_AE_LENGTH} characters"
    if "\\" in stripped:
        return "must not contain a backslash"
    if any(not (32 <= ord(ch) < 127) for ch in stripped):
        return "must be printable ASCII (no control characters)"
    return None
