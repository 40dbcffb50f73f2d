"""Add and edit a facility: the engine generates what is left blank and checks the rest."""

from __future__ import annotations

from dicomtui.models import Facility
from dicomtui.tui.forms import Call, Field, FormDialog, port_of, words_of


class AddFacility(FormDialog):
    """Name, and optionally the AE title and port (blank: generated, next free)."""

    def __init__(self) -> None:
        super().__init__(
            "Add a facility",
            "A sending site with its own AE title and port; it listens at once while "
            "the receiver runs.",
            [Field("name", "Name", placeholder="e.g. St. Mary's Clinic"),
             Field("ae_title", "AE title", placeholder="blank: made from the name"),
             Field("port", "Port", placeholder="blank: the next free port")])

    def request(self, values: dict[str, str]) -> Call:
        name, port = values["name"], port_of(values["port"])
        ae_title = values["ae_title"].strip() or None
        return lambda backend: backend.add_facility(name, port=port, ae_title=ae_title)

    def said(self, result: Facility) -> str:
        return f"facility {result.name} added: AE title {result.ae_title}, port {result.port}"


class EditFacility(FormDialog):
    """AE title, port and calling AE titles of one facility (the name stays)."""

    def __init__(self, facility: Facility) -> None:
        super().__init__(
            f"Edit facility {facility.name}",
            "A running listener moves at once: tell the remote PACS the new AE title "
            "or port.",
            [Field("ae_title", "AE title", facility.ae_title),
             Field("port", "Port", str(facility.port)),
             Field("calling_aes", "Calling AEs", ", ".join(facility.calling_aes),
                   "comma separated; blank: none")])
        self.facility = facility

    def request(self, values: dict[str, str]) -> Call:
        name, port = self.facility.name, port_of(values["port"])
        ae_title, callers = values["ae_title"], words_of(values["calling_aes"])
        return lambda backend: backend.update_facility(name, ae_title=ae_title, port=port,
                                                       calling_aes=callers)

    def said(self, result: Facility) -> str:
        return f"facility {result.name}: AE title {result.ae_title}, port {result.port}"
