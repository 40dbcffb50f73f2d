"""How facilities read on screen 4: table rows and what a remote PACS must enter."""

from __future__ import annotations

from datetime import date

from rich.text import Text

from dicomtui.models import Facility, PacsConfig
from dicomtui.tui import format as fmt

COLUMNS = ("facility", "AE title", "port", "listener", "images", "studies", "seen")
MIN_NAME = 12
SPARE = 2 + 2 * len(COLUMNS)  # a vertical scrollbar, and the padding around each cell
STATE_WIDTH = len("listening")
LISTENER_STYLE = {"listening": "green", "stopped": "dim", "error": "bold red"}
EMPTY = ("No facilities yet: each is a sending site with its own AE title and port.\n"
         "Press a to add one, or run `dicomtui facility add NAME`.")


def facility_rows(facilities: list[Facility], today: date, width: int) -> dict[str, tuple]:
    """Row key -> cells; long names are cut so the table fits `width` columns (the
    panel below shows the selected one whole)."""
    rows = {f.name: facility_row(f, today) for f in facilities}
    others = sum(max([len(title)] + [_width(cells[i]) for cells in rows.values()])
                 for i, title in enumerate(COLUMNS) if i)
    room = max(MIN_NAME, width - others - SPARE)
    for cells in rows.values():
        cells[0].truncate(room, overflow="ellipsis")
    return rows


def facility_row(facility: Facility, today: date) -> tuple:
    """The table cells of one facility (the state is a word, coloured)."""
    return (Text(facility.name), facility.ae_title,
            Text(str(facility.port), justify="right"),
            # padded: a state word that grows (stopped -> listening) in a cell update
            # was seen cut to the column's old width
            Text(facility.listener.ljust(STATE_WIDTH),
                 style=LISTENER_STYLE.get(facility.listener, "")),
            Text(f"{facility.instances_today:,}", justify="right"),
            Text(f"{facility.studies_today:,}", justify="right"),
            _seen(facility.last_seen, today))


def _width(cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(cell)


def _seen(iso: str | None, today: date) -> str:
    """'08:14' today, '11-22' before: when it last sent, in the width of a short word."""
    shown = fmt.when(iso, today)
    return shown[:5] if shown else "-"


def pacs_panel(facility: Facility, config: PacsConfig | None,
               anonymize: bool | None = None) -> Text:
    """What the remote PACS admin types in to send to this facility, and whether what
    it sends is anonymized (`anonymize`: the setting a "default" facility follows)."""
    text = Text("Configuration for remote PACS: ", style="bold")
    text.append(facility.name, style="bold")
    lines = [("AE title", facility.ae_title),
             ("host name", config.hostname if config else "…"),
             ("address", ", ".join(config.addresses) if config and config.addresses
              else "…" if config is None else "(none found)"),
             ("port", str(facility.port))]
    for label, value in lines:
        text.append(f"\n  {label:<11} ")
        text.append(value, style="bold")
    text.append("\n  calling AEs ")
    text.append(", ".join(facility.calling_aes) or "none registered (e: add)",
                style="" if facility.calling_aes else "dim")
    text.append("\n  anonymize   ")
    text.append_text(anonymize_words(facility.anonymize, anonymize))
    if facility.listener == "error":
        text.append(f"\n  listener error: {facility.error or 'unknown'}", style="bold red")
    elif facility.listener != "listening":
        text.append(f"\n  listener {facility.listener}: it listens while the receiver "
                    "runs (s)", style="dim")
    return text


def anonymize_words(choice: str, setting: bool | None) -> Text:
    """'on', 'off', or 'default: on (the anonymize setting)'."""
    if choice in ("on", "off"):
        return Text(choice, style="bold")
    text = Text("default", style="bold")
    if setting is not None:
        text.append(f": {'on' if setting else 'off'}")
    text.append(" (the anonymize setting; e: change)", style="dim")
    return text


def removal_detail(facility: Facility) -> str:
    return (f"AE title {facility.ae_title}, port {facility.port}. Its listener stops: a "
            "PACS sending to that port can no longer connect. Files already received "
            "stay where they are.")
