"""Export the anonymization map: the one way its identities leave the receiver."""

from __future__ import annotations

from dicomtui.models import AnonExport
from dicomtui.tui.forms import Call, Field, FormDialog, path_of

EXPORT_PATH = "~/dicomtui-anonymization-map.json"


class ExportMap(FormDialog):
    """A path for the JSON file; the receiver writes it and never overwrites one."""

    errors_in_place = True  # a path that cannot be written is fixed in place

    def __init__(self) -> None:
        super().__init__(
            "Export the anonymization map",
            "Writes every subject code with its original patient name, ID and issuer "
            "(readable only by you). Anyone holding the file can re-identify the "
            "studies: keep it safe.",
            [Field("path", "File", EXPORT_PATH, "a new file; ~ is your home")])

    def request(self, values: dict[str, str]) -> Call:
        path = path_of(values["path"], "type the path of a new file to write")
        return lambda backend: backend.export_anonymization(path)

    def said(self, result: AnonExport) -> str:
        noun = "subject" if result.subjects == 1 else "subjects"
        return f"Exported {result.subjects:,} {noun} to {result.path}"
