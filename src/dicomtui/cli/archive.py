"""The `studies`, `dest`, `storage`, `cleanup` and `reindex` verbs: the archive.

Through the running service when there is one, else the data dir. Cleanup and reindex
run as background jobs in whichever process owns the data dir; these verbs follow the
job to its end with a progress bar.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dicomtui.cli import archive_views as views
from dicomtui.cli.connect import verb_backend
from dicomtui.cli.errors import Failed
from dicomtui.cli.verb import Verb
from dicomtui.models import StudyQuery, to_dict


def studies_args(p: argparse.ArgumentParser) -> None:
    p.epilog = "Text matches any part, any case; * and ? are wildcards."
    p.add_argument("--patient", default="", help="patient name or ID")
    p.add_argument("--accession", default="", help="accession number")
    p.add_argument("--from", dest="date_from", default="", metavar="DATE",
                   help="study date from (YYYYMMDD or YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", default="", metavar="DATE",
                   help="study date to")
    p.add_argument("--modality", default="", help="e.g. CT")
    p.add_argument("--facility", default="", help="facility name")
    p.add_argument("--limit", type=int, default=100, help="newest N (default 100)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def dest_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("A C-MOVE names its destination by AE title only; a title not listed "
                "here is\nanswered 0xA801 (move destination unknown).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the destinations")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    add = actions.add_parser("add", help="add (or change) a destination")
    # dest= names unlike the receiver's own --ae-title/--host/--port settings
    add.add_argument("dest_ae", metavar="AE", help="its AE title")
    add.add_argument("dest_host", metavar="HOST", help="its host name or IP address")
    add.add_argument("dest_port", metavar="PORT", help="its port")
    add.add_argument("--description", default="", help="free text, e.g. the room")
    remove = actions.add_parser("remove", help="remove a destination")
    remove.add_argument("dest_ae", metavar="AE", help="its AE title")


def storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cleanup_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Removes the oldest studies first; never a study being received or "
                "waiting for upload.\nEvery study removed is logged (`dicomtui log "
                "--type cleanup`).")
    p.add_argument("--older-than", type=float, metavar="DAYS",
                   help="studies received more than DAYS ago (default retention_days)")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def reindex_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Reads every file under the storage root; unreadable files are listed, "
                "not fatal.\nSafe while the service receives.")
    p.add_argument("--json", action="store_true", help="machine-readable result")


def cmd_studies(args) -> int:
    query = StudyQuery(args.patient, args.accession, args.date_from, args.date_to,
                       args.modality, args.facility, max(1, args.limit))
    with verb_backend(args) as backend:
        page = backend.studies(query)
        print(json.dumps(to_dict(page), indent=2) if args.json else views.studies(page))
    return 0


def cmd_dest(args) -> int:
    with verb_backend(args) as backend:
        if args.action == "list":
            items = backend.destinations()
            print(json.dumps(to_dict(items), indent=2) if args.json
                  else views.destinations(items))
        elif args.action == "add":
            item = backend.add_destination(args.dest_ae, args.dest_host, args.dest_port,
                                           args.description)
            print(f"destination {item.ae_title} = {item.host}:{item.port}")
        else:
            item = backend.remove_destination(args.dest_ae)
            print(f"destination {item.ae_title} removed")
    return 0


def cmd_storage(args) -> int:
    with verb_backend(args) as backend:
        report = backend.storage_report()
        print(json.dumps(to_dict(report), indent=2) if args.json else views.storage(report))
    return 0


def cmd_cleanup(args) -> int:
    with verb_backend(args) as backend:
        plan = backend.cleanup_plan(args.older_than)
        if args.dry_run:
            print(json.dumps(to_dict(plan), indent=2) if args.json
                  else views.cleanup_plan(plan, True))
            return 0
        if not args.json:
            print(views.cleanup_plan(plan, False))
        job = _follow(backend, backend.start_cleanup(args.older_than))
        print(json.dumps(to_dict(job), indent=2) if args.json else job.message)
        if job.state == "failed":
            raise Failed(job.message)
    return 0


def cmd_reindex(args) -> int:
    with verb_backend(args) as backend:
        job = _follow(backend, backend.start_reindex())
        if args.json:
            print(json.dumps(to_dict(job), indent=2))
        else:
            print(job.message)
            for line in job.result.get("unreadable", []):
                print(f"  unreadable: {line}")
            more = job.result.get("unreadable_count", 0) - len(job.result.get(
                "unreadable", []))
            if more > 0:
                print(f"  ... and {more} more (see `dicomtui log`)")
        if job.state != "done":
            raise Failed(job.message)
    return 0


def _follow(backend, job):
    """Poll a job to its end, drawing progress on stderr."""
    tty = sys.stderr.isatty()
    last = 0.0
    while job.state == "running":
        time.sleep(0.2)
        job = backend.job(job.id)
        if tty or time.monotonic() - last > 5:
            views.job_progress(job, tty)
            last = time.monotonic()
    if tty:
        sys.stderr.write("\n")
    return job


VERBS = {
    "studies": Verb("the archive: indexed studies, their state, instances and size",
                    studies_args, cmd_studies),
    "dest": Verb("C-MOVE destinations: list, add AE HOST PORT, remove AE", dest_args,
                 cmd_dest),
    "storage": Verb("storage used, quota, free disk; usage by facility, modality and day",
                    storage_args, cmd_storage),
    "cleanup": Verb("remove the oldest studies (older than retention_days or --older-than)",
                    cleanup_args, cmd_cleanup),
    "reindex": Verb("rebuild the archive index from the storage tree", reindex_args,
                    cmd_reindex),
}
