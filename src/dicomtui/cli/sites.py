"""The `facility` and `ae` verbs: facilities with their AE titles and ports, and the
allowed callers. Through the running service when there is one, else the data dir."""

from __future__ import annotations

import argparse
import json

from dicomtui.cli import views
from dicomtui.cli.connect import verb_backend
from dicomtui.cli.errors import Failed
from dicomtui.cli.verb import Verb
from dicomtui.dicom.aetitle import ascii_fold
from dicomtui.models import ANONYMIZE_CHOICES, to_dict


def facility_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("AE titles are generated from the name unless given (\"St. Mary's Clinic\" "
                "-> STMARYSCLINIC);\nports are the next free one from 11113 unless given. "
                "A running service starts or\nstops the facility's listener at once.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="facilities, their listeners and today's counts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    add = actions.add_parser("add", help="add a facility (AE title and port generated)")
    add.add_argument("name", help="facility name, e.g. \"Main Hospital\"")
    _facility_options(add)
    edit = actions.add_parser("edit", help="change a facility's AE title, port or callers")
    edit.add_argument("name", help="facility name")
    _facility_options(edit)
    remove = actions.add_parser("remove", help="remove a facility (stops its listener)")
    remove.add_argument("name", help="facility name")
    config = actions.add_parser("config", help="what a remote PACS must enter to send here")
    config.add_argument("name", nargs="?", help="only this facility")
    config.add_argument("--json", action="store_true", help="machine-readable output")


def _facility_options(p: argparse.ArgumentParser) -> None:
    # dests differ from the receiver's own --port/--ae-title, which are settings
    p.add_argument("--port", dest="facility_port", type=_port, metavar="P",
                   help="its TCP port (default: the next free from 11113)")
    p.add_argument("--ae-title", dest="facility_ae", metavar="AE",
                   help="its AE title (default: generated from the name)")
    p.add_argument("--caller", dest="callers", action="append", metavar="AE",
                   help="a calling AE title that belongs to it (repeatable)")
    p.add_argument("--anonymize", choices=ANONYMIZE_CHOICES,
                   help="anonymize its instances: on, off, or default (= the anonymize "
                   "setting)")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 1 to 65535, got {port}")
    return port


def ae_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("With require_calling_ae on, only active allowed callers may associate; "
                "a denied\ncaller is refused either way. `dicomtui config set "
                "require_calling_ae true` turns it on.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="allowed and denied calling AE titles")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    allow = actions.add_parser("allow", help="allow a calling AE title (add or re-allow)")
    allow.add_argument("ae", help="calling AE title")
    allow.add_argument("--ip", help="only from this address or CIDR network (\"\" = any)")
    allow.add_argument("--description", help="who this is, e.g. \"CT room 2\"")
    deny = actions.add_parser("deny", help="refuse a calling AE title from now on")
    deny.add_argument("ae", help="calling AE title")
    remove = actions.add_parser("remove", help="forget a calling AE title")
    remove.add_argument("ae", help="calling AE title")


def cmd_facility(args) -> int:
    with verb_backend(args) as backend:
        if args.action == "list":
            items = backend.facilities()
            print(json.dumps(to_dict(items), indent=2) if args.json
                  else views.facilities(items))
        elif args.action == "add":
            made = backend.add_facility(args.name, args.facility_port, args.facility_ae,
                                        args.callers, args.anonymize)
            print(f"facility {made.name!r} added: AE title {made.ae_title}, port "
                  f"{made.port}" + _listening(made, backend))
            if args.facility_ae is None and not any(ch.isascii() and ch.isalnum()
                                                    for ch in ascii_fold(made.name)):
                print(f"(the name has no Latin letters or digits, so {made.ae_title} was "
                      "made from a hash of it; choose one with `facility edit NAME "
                      "--ae-title AE`)")
            print(views.pacs_config(backend.pacs_config(), made.name))
        elif args.action == "edit":
            changed = backend.update_facility(args.name, args.facility_ae,
                                              args.facility_port, args.callers,
                                              args.anonymize)
            print(f"facility {changed.name!r}: AE title {changed.ae_title}, port "
                  f"{changed.port}, anonymize {changed.anonymize}"
                  + _listening(changed, backend))
        elif args.action == "remove":
            gone = backend.remove_facility(args.name)
            print(f"facility {gone.name!r} removed (AE title {gone.ae_title}, port "
                  f"{gone.port} no longer listens)")
        else:
            config = backend.pacs_config()
            if args.name and not any(lst.name.casefold() == args.name.casefold()
                                     for lst in config.listeners):
                raise Failed(f"no facility named {args.name!r} (see `dicomtui facility "
                             "list`)")
            print(json.dumps(to_dict(config), indent=2) if args.json
                  else views.pacs_config(config, args.name))
    return 0


def _listening(facility, backend) -> str:
    if facility.listener == "listening":
        return "; listening now"
    if facility.listener == "error":
        return f"; its listener could not start: {facility.error}"
    return ("" if backend.mode == "service"
            else "; it listens when the receiver starts")


def cmd_ae(args) -> int:
    with verb_backend(args) as backend:
        if args.action == "list":
            items = backend.callers()
            require = next(v.value for v in backend.settings()
                           if v.name == "require_calling_ae")
            print(json.dumps(to_dict(items), indent=2) if args.json
                  else views.callers(items, bool(require)))
            return 0
        if args.action == "allow":
            caller = backend.allow_caller(args.ae, args.ip, args.description)
            where = f" from {caller.ip}" if caller.ip else " from any address"
            print(f"calling AE {caller.ae_title} allowed{where}")
        elif args.action == "deny":
            caller = backend.deny_caller(args.ae)
            print(f"calling AE {caller.ae_title} denied: its associations are refused")
        else:
            caller = backend.remove_caller(args.ae)
            print(f"calling AE {caller.ae_title} removed from the list")
    return 0


VERBS = {
    "facility": Verb("facilities: list, add, edit, remove, and their remote-PACS config",
                     facility_args, cmd_facility),
    "ae": Verb("allowed callers: list, allow, deny, remove calling AE titles", ae_args,
               cmd_ae),
}
