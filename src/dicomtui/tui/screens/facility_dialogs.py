"""Add and edit a facility: the engine generates what is left blank and checks the rest."""

from __future__ import annotations

from dicomtui.models import ANONYMIZE_CHOICES, Facility
from dicomtui.tui.forms import Call, Field, FormDialog, port_of, words_of

ANONYMIZE_HINT = "←/→  default = the anonymize setting"


def anonymize_field(chosen: str = "default") -> Field:
    return Field("anonymize", "Anonymize", chosen, ANONYMIZE_HINT, ANONYMIZE_CHOICES)


class AddFacility(FormDialog):
    """Name, and optionally the AE title and port (blank: generated, next free)."""

    def __init__(self) -> None:
        super().__init__(
            "Add a facility",
            "A sending site with its own AE title and port; it listens at once while "
            "the receiver runs.",
            [Field("name", "Name", placeholder="e.g. St. Mary's Clinic"),
             Field("ae_title", "AE title", placeholder="blank: made from the name"),
             Field("port", "Port", placeholder="blank: the next free port"),
             anonymize_field()])

    def request(self, values: dict[str, str]) -> Call:
        name, port = values["name"], port_of(values["port"])
        ae_title = values["ae_title"].strip() or None
        anonymize = values["anonymize"]
        return lambda backend: backend.add_facility(name, port=port, ae_title=ae_title,
                                                    anonymize=anonymize)

    def said(self, result: Facility) -> str:
        said = f"facility {result.name} added: AE title {result.ae_title}, port {result.port}"
        return said if result.anonymize == "default" else (
            f"{said}, anonymize {result.anonymize}")


class EditFacility(FormDialog):
    """AE title, port, calling AE titles and anonymization of one facility (the name
    stays)."""

    def __init__(self, facility: Facility) -> None:
        super().__init__(
            f"Edit facility {facility.name}",
            "A running listener moves at once: tell the remote PACS the new AE title "
            "or port.",
            [Field("ae_title", "AE title", facility.ae_title),
             Field("port", "Port", str(facility.port)),
             Field("calling_aes", "Calling AEs", ", ".join(facility.calling_aes),
                   "comma separated; blank: none"),
             anonymize_field(facility.anonymize)])
        self.facility = facility

    def request(self, values: dict[str, str]) -> Call:
        name, port = self.facility.name, port_of(values["port"])
        ae_title, callers = values["ae_title"], words_of(values["calling_aes"])
        anonymize = values["anonymize"]
        return lambda backend: backend.update_facility(name, ae_title=ae_title, port=port,
                                                       calling_aes=callers,
                                                       anonymize=anonymize)

    def said(self, result: Facility) -> str:
        said = f"facility {result.name}: AE title {result.ae_title}, port {result.port}"
        if result.anonymize != self.facility.anonymize:
            said += f", anonymize {result.anonymize}"
        return said
