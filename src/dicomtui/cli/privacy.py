"""The `restore` and `anon` verbs: re-identify files, list and export the map, make a key.

`restore` reads the map file itself (read-only), so it works on a copy of the map on
another machine too; `anon list|export` go through the running service when there is
one, else the data dir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dicomtui.backend.base import BackendError
from dicomtui.cli import views
from dicomtui.cli.connect import verb_backend
from dicomtui.cli.errors import Failed
from dicomtui.cli.verb import Verb
from dicomtui.locations import socket_path
from dicomtui.models import to_dict


def restore_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Nothing is written unless every file can be restored; OUT must be a new "
                "path\n(or an empty folder). The key file defaults to the "
                "anonymization_key_file setting. With a service running on the data dir\n"
                "(and no --map-file), the service's map answers: it knows every instance\n"
                "acknowledged so far.")
    p.add_argument("source", type=Path, metavar="IN", help="an anonymized file or folder")
    p.add_argument("target", type=Path, metavar="OUT", help="where the restored copy goes")
    p.add_argument("--map-file", type=Path, metavar="F",
                   help="the map (default: <data-dir>/anonymization.json)")
    p.add_argument("--key-file", metavar="K", help="the Fernet key of an encrypted map")


def anon_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Anonymization is on with `dicomtui config set anonymize true` (or per "
                "facility:\n`dicomtui facility edit NAME --anonymize on`).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="subject codes with their counts")
    listing.add_argument("--search", default="", help="only codes containing this")
    listing.add_argument("--reveal", action="store_true",
                         help="show the original identities (logged)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    export = actions.add_parser("export", help="write the identities to a new JSON file "
                                "(mode 0600) for the research team")
    export.add_argument("path", help="the new file")
    keygen = actions.add_parser("keygen", help="make a Fernet key file (mode 0600) for "
                                "anonymization_key_file")
    keygen.add_argument("path", help="the new key file")


def cmd_restore(args) -> int:
    """With a service running on the data dir (and no --map-file), its map answers:
    it has everything acknowledged, saved or not yet (see ARCHITECTURE.md)."""
    from dicomtui.backend.remote import probe
    from dicomtui.service.privacy.restore import RestoreError, restore_path

    remote = None if args.map_file else probe(socket_path(args.data_dir))
    try:
        source = _ServiceMap(remote) if remote is not None else _map_file(args)
        report = restore_path(args.source, args.target, source, _progress())
    except (BackendError, RestoreError) as exc:
        raise Failed(str(exc)) from None
    finally:
        _progress_done()
        if remote is not None:
            remote.close()
    print(f"restored {report.restored} file(s) into {report.output}")
    for path in report.skipped:
        print(f"skipped (not DICOM): {path}")
    return 0


class _ServiceMap:
    """The running service's map, as restore asks it (batches over the socket)."""

    def __init__(self, backend) -> None:
        self._backend = backend

    def originals_many(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        return self._backend.anon_originals(keys)


def _map_file(args):
    """The map file itself, read-only (no service, or --map-file)."""
    from dicomtui.db.sealed import SealError, load_key
    from dicomtui.service.privacy.anonmap import AnonymizationMap, MapError

    map_file = args.map_file or args.data_dir / "anonymization.json"
    if not map_file.is_file():
        raise Failed(f"no anonymization map at {map_file} (give one with --map-file)")
    key_file = args.key_file or _stored_key_file(args)
    try:
        key = load_key(key_file) if key_file else None
        return AnonymizationMap(map_file, key, writable=False)
    except (SealError, MapError) as exc:
        raise Failed(str(exc)) from None


def _stored_key_file(args) -> str:
    """anonymization_key_file from the environment or the data dir's stored settings."""
    from dicomtui.db.storage import CorruptDatabase, read_checked
    from dicomtui.settings import SettingError, resolve
    try:
        tables = read_checked(args.data_dir / "dicomtui.json") or {}
        docs = list(tables.get("settings", {}).values())
        stored = {"anonymization_key_file": docs[0].get("anonymization_key_file")} \
            if docs else {}
        return resolve({}, os.environ, stored).anonymization_key_file
    except (CorruptDatabase, SettingError, OSError):
        return os.environ.get("DICOMTUI_ANONYMIZATION_KEY_FILE", "")


def _progress():
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{'checking' if done * 2 <= total else 'writing'} "
              f"{done * 100 // max(total, 1):3d}%", end="", file=sys.stderr, flush=True)
    return show


def _progress_done() -> None:
    if sys.stderr.isatty():
        print("\r" + " " * 20 + "\r", end="", file=sys.stderr, flush=True)


def cmd_anon(args) -> int:
    if args.action == "keygen":
        from dicomtui.db.sealed import SealError, new_key_file
        try:
            path = new_key_file(args.path)
        except SealError as exc:
            raise Failed(str(exc)) from None
        print(f"key written to {path} (mode 0600). Keep a copy somewhere safe: without it "
              "an encrypted map cannot be read.\nUse it with `dicomtui config set "
              f"anonymization_key_file {path}`")
        return 0
    with verb_backend(args) as backend:
        if args.action == "list":
            subjects = backend.anon_subjects(args.search, args.reveal)
            print(json.dumps(to_dict(subjects), indent=2) if args.json
                  else views.anon_subjects(subjects))
        else:
            path = str(Path(args.path).expanduser().absolute())
            done = backend.export_anonymization(path)
            print(f"exported {done.subjects} subject(s) to {done.path} (mode 0600: it "
                  "holds original identities)")
    return 0


VERBS = {
    "anon": Verb("the anonymization map: list subject codes, export, make a key", anon_args,
                 cmd_anon),
    "restore": Verb("re-identify anonymized files or a folder with the map", restore_args,
                    cmd_restore),
}
