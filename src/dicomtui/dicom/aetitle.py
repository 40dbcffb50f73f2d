"""AE title rules (PS3.5 AE value representation)."""

from __future__ import annotations

import hashlib
import unicodedata

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


# Letters NFKD does not split into a base letter and an accent.
_SPECIAL = str.maketrans(
    {
        "ß": "SS",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "AE",
        "Ø": "O",
        "ø": "O",
        "Œ": "OE",
        "œ": "OE",
        "Ł": "L",
        "ł": "L",
        "Đ": "D",
        "đ": "D",
        "Þ": "TH",
        "þ": "TH",
        "ı": "I",
    }
)
MIN_GENERATED = 4
FALLBACK_PREFIX = "FAC"  # a name with no Latin letter or digit at all


def ascii_fold(text: str) -> str:
    """ "São Paulo" -> "Sao Paulo": accents dropped, letters kept, the rest untouched."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_hash(name: str, length: int) -> str:
    """A short, stable, uppercase hex digest of a facility name."""
    return hashlib.sha1(name.strip().encode("utf-8")).hexdigest()[:length].upper()


def generate_ae_title(name: str, taken=()) -> str:
    """The AE title for a facility called `name`, distinct from every title in `taken`.

    Uppercase ASCII letters and digits only (accents transliterated first), at most 16
    characters; shorter than 4 gets a hash suffix; a taken title gets the first free
    numbered variant (MAINHOSPITAL2, ...), so the same inputs always give the same title.
    ValueError when the name is empty.
    """
    if not name or not name.strip():
        raise ValueError("a facility name must not be empty")
    base = "".join(ch for ch in ascii_fold(name).upper() if ch.isascii() and ch.isalnum())
    if not base:
        base = FALLBACK_PREFIX + name_hash(name, 6)
    elif len(base) < MIN_GENERATED:
        base += name_hash(name, MIN_GENERATED + 2 - len(base))
    base = base[:MAX_AE_LENGTH]
    used = {t.strip().upper() for t in taken}
    candidate, n = base, 2
    while candidate in used:
        suffix = str(n)
        candidate = base[: MAX_AE_LENGTH - len(suffix)] + suffix
        n += 1
    return candidate
