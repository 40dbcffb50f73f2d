"""Keep patient identities out of application logs (`deidentify_logs`, on by default).

A logging filter on every handler we attach (the console's event stream, the service's
stderr) rewrites a record before it is formatted: patient attributes in dataset dumps
(pydicom's and pynetdicom's debug output), `PatientName=`-style fields, and any patient
name or ID the receive path has seen recently are replaced by MASK.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

from dicomtui.dicom.deid_profile import action_for

MASK = "***"
_MIN_LEN = 3  # shorter pieces (sex, initials) would mask half of every line
# Dataset dump lines, pynetdicom's "(0010,0010) PN [DOE^JOHN]   # 1 PatientName" and
# pydicom's "(0010,0010) Patient's Name   PN: 'DOE^JOHN'": the value is masked when the
# attribute is one the confidentiality profile removes or replaces, or a person name.
_NETDICOM_LINE = re.compile(
    r"^(\s*\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\) ([A-Z]{2}) )"
    r"(.*?)(\s+#.*)?$",
    re.MULTILINE,
)
_PYDICOM_LINE = re.compile(
    r"^(\s*\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\) .*? ([A-Z]{2}): )"
    r"(.*?)()$",
    re.MULTILINE,
)
_FIELD = re.compile(
    r"((?:Patient(?:'s)?[ _]?(?:Name|ID|BirthDate|Birth Date)|"
    r"patient_(?:id|name)|OtherPatientIDs|OtherPatientNames)"
    r"['\"]?\s*[:=]\s*)('[^'\n]*'|\"[^\"\n]*\"|[^,;\n\}\)\]]*)",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[^\s/\\:;,()\[\]{}'\"=<>|]+")


class KnownValues:
    """Patient names and IDs seen lately (bounded), to mask wherever they turn up."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, *values: str) -> None:
        """Remember values (and a person name's components); cheap when already known."""
        for value in values:
            value = (value or "").strip()
            if len(value) < _MIN_LEN or value in self._values:
                continue
            pieces = {value} | {
                p for p in re.split(r"[\^= ]+", value) if len(p) >= _MIN_LEN
            }
            with self._lock:
                for piece in pieces:
                    self._values[piece] = None
                    self._values.move_to_end(piece)
                while len(self._values) > self.limit:
                    self._values.popitem(last=False)

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


KNOWN_PHI = KnownValues()


def mask(text: str, known: KnownValues = KNOWN_PHI) -> str:
    """`text` with patient identities replaced by MASK."""
    text = _NETDICOM_LINE.sub(_masked_line, text)
    text = _PYDICOM_LINE.sub(_masked_line, text)
    text = _FIELD.sub(
        lambda m: f"{m.group(1)}{MASK}" if m.group(2).strip(" '\"") else m.group(0), text
    )
    if known._values:
        text = _TOKEN.sub(lambda m: _masked_token(m.group(0), known), text)
    return text


def _masked_line(m: re.Match) -> str:
    tag = int(m.group(2) + m.group(3), 16)
    value = m.group(5)
    if not value.strip() or "no value" in value or value.strip() in ("''", '""'):
        return m.group(0)
    private = (tag >> 16) % 2 == 1 and tag & 0xFFFF > 0xFF  # not the creator's name
    if (
        m.group(4) == "PN"
        or tag >> 16 == 0x0010
        or private
        or action_for(tag) in ("X", "Z", "D")
    ):
        return f"{m.group(1)}{MASK}{m.group(6) or ''}"
    return m.group(0)


def _masked_token(token: str, known: KnownValues) -> str:
    if token in known:
        return MASK
    if "^" in token and any(p in known for p in token.split("^") if p):
        return MASK
    return token


class PhiFilter(logging.Filter):
    """Masks identities in every record while `enabled` (the deidentify_logs setting)."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.enabled:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


PHI_FILTER = PhiFilter()
