"""The `uploads`, `upload`, `retry` and `cancel` verbs: the queue of study zips going to
the remote API. Through the running service when there is one, else the data dir (the
queue is on disk: an item added there is uploaded when the service runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dicomtui.cli import views
from dicomtui.cli.connect import verb_backend
from dicomtui.cli.verb import Verb
from dicomtui.models import to_dict
from dicomtui.wording import size


def uploads_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Completed studies are zipped with zip_studies=true and queued with "
                "auto_upload=true;\ncredentials: api_token, or api_username and "
                "api_password (DICOMTUI_API_PASSWORD).")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def upload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a study folder (zipped into zip_dir first) or a .zip")


def item_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, help="the upload's id (see `dicomtui uploads`)")


def cmd_uploads(args) -> int:
    with verb_backend(args) as backend:
        items = backend.uploads()
        print(json.dumps(to_dict(items), indent=2) if args.json else views.uploads(items))
    return 0


def cmd_upload(args) -> int:
    with verb_backend(args) as backend:
        item = backend.upload(str(Path(args.path).expanduser().absolute()))
        print(f"upload {item.id} queued: {item.path} ({size(item.size)})"
              + ("" if backend.mode == "service" else
                 "; it is sent when the service runs"))
    return 0


def cmd_retry(args) -> int:
    with verb_backend(args) as backend:
        item = backend.retry_upload(args.id)
        print(f"upload {item.id} queued again ({Path(item.path).name})")
    return 0


def cmd_cancel(args) -> int:
    with verb_backend(args) as backend:
        item = backend.cancel_upload(args.id)
        print(f"upload {item.id} cancelled ({Path(item.path).name}); `dicomtui retry "
              f"{item.id}` queues it again")
    return 0


VERBS = {
    "uploads": Verb("the upload queue: each study zip, its state, tries and last error",
                    uploads_args, cmd_uploads),
    "upload": Verb("queue a study folder or zip for upload by hand", upload_args, cmd_upload),
    "retry": Verb("queue a failed or cancelled upload again", item_args, cmd_retry),
    "cancel": Verb("stop trying an upload", item_args, cmd_cancel),
}
