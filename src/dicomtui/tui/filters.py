"""The Log screen's filter line: `type:store status:failed ae:CT1 free text`."""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomtui.models import TRANSACTION_TYPES, TransactionFilter, status_word

HINT = "type:store status:failed|0xA700 ae:CT1 any text"


class FilterError(ValueError):
    """A filter word the Log screen cannot use; the message says what would work."""


@dataclass
class LogFilter:
    """What the Log table is narrowed to; empty means everything."""

    types: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    ae: str | None = None
    text: str = ""

    def query(self, limit: int, after_id: int | None = None,
              before_id: int | None = None) -> TransactionFilter:
        """The Backend query for this filter."""
        return TransactionFilter(types=self.types or None, outcomes=self.outcomes or None,
                                 statuses=self.statuses or None, ae=self.ae,
                                 text=self.text or None, after_id=after_id,
                                 before_id=before_id, limit=limit)

    def chips(self) -> list[str]:
        """One short label per condition, in the order they were typed."""
        found = [f"type:{t}" for t in self.types]
        found += [f"status:{o}" for o in self.outcomes]
        found += [f"status:0x{s:04X}" for s in self.statuses]
        found += [f"ae:{self.ae}"] if self.ae else []
        return found + ([f'"{self.text}"'] if self.text else [])

    def __bool__(self) -> bool:
        return bool(self.chips())


def parse(line: str) -> LogFilter:
    """The filter a typed line means; FilterError names the word that does not fit."""
    result, words = LogFilter(), []
    for word in line.split():
        key, sep, value = word.partition(":")
        if sep and key.lower() in ("type", "status", "ae"):
            _apply(result, key.lower(), value)
        else:
            words.append(word)
    result.text = " ".join(words)
    return result


def _apply(result: LogFilter, key: str, value: str) -> None:
    if not value:
        raise FilterError(f"{key}: needs a value ({HINT})")
    if key == "type":
        if value.lower() not in TRANSACTION_TYPES:
            raise FilterError(f"type:{value}: use one of {', '.join(TRANSACTION_TYPES)}")
        result.types.append(value.lower())
    elif key == "ae":
        result.ae = value
    else:
        try:
            outcome, code = status_word(value)
        except ValueError as exc:
            raise FilterError(f"status: {exc}") from None
        result.outcomes += [outcome] if outcome else []
        result.statuses += [code] if code is not None else []
