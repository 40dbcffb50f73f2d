"""Queue an upload by hand: a study folder (zipped first) or a zip, by its path."""

from __future__ import annotations

import os

from dicomtui.models import UploadItem
from dicomtui.tui import format as fmt
from dicomtui.tui.forms import Call, Field, FormDialog, path_of


class UploadPath(FormDialog):
    """A path; the receiver checks it, zips a folder into zip_dir, and queues the zip."""

    errors_in_place = True  # a path that is not there is fixed in place
    working = "queuing… (a folder is zipped first: a large study takes a while)"

    def __init__(self) -> None:
        super().__init__(
            "Upload a study",
            "A study folder is zipped into zip_dir first; a .zip is sent as it is. It "
            "goes to api_url, retried like the studies queued on their own.",
            [Field("path", "Path", placeholder="a study folder or a .zip; ~ is your home")])

    def request(self, values: dict[str, str]) -> Call:
        path = path_of(values["path"], "type the path of a study folder or a .zip")
        return lambda backend: backend.upload(path)

    def said(self, result: UploadItem) -> str:
        return (f"upload {result.id} queued: {os.path.basename(result.path)} "
                f"({fmt.size(result.size)})")
