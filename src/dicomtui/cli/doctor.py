"""`dicomtui doctor`: check the data dir, say what is wrong and how to fix it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from dicomtui.cli.verb import Verb


def doctor_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Reads the data dir (never writes it), also beside a running service. "
                "Exit 0 when all is\nwell, 1 when something is wrong: an error keeps "
                "the receiver from starting.")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_doctor(args) -> int:
    from dicomtui.service.doctor import ERROR, examine

    findings = examine(args.data_dir)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
        return 1 if findings else 0
    if not findings:
        print(f"{args.data_dir}: no problems found")
        return 0
    for finding in findings:
        print(f"{finding.severity.upper()}: {finding.what}")
        if finding.fix:
            print(f"  fix: {finding.fix}")
    errors = sum(f.severity == ERROR for f in findings)
    print(f"{len(findings)} problem(s), {errors} keeping the receiver from starting")
    return 1


VERBS = {
    "doctor": Verb("check the data dir: what is damaged, and how to fix it", doctor_args,
                   cmd_doctor),
}
