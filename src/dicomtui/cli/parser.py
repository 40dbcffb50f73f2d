"""The `dicomtui` command line: the argument tree of every verb, and main().

Exit codes: 0 success, 1 operation failed, 2 usage error, 3 `status` of a receiver that
is not running (as systemctl). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dicomtui import __version__
from dicomtui.cli import archive, doctor, privacy, receiver, sites, uploads
from dicomtui.cli.errors import Failed, UsageError
from dicomtui.locations import default_data_dir
from dicomtui.settings import SettingError

EPILOG = """\
settings come from (highest first): command-line option, DICOMTUI_<NAME> environment
variable, stored setting (`dicomtui config set`), default. See `dicomtui config`.
data dir: --data-dir, else DICOMTUI_DATA_DIR, else $XDG_DATA_HOME/dicomtui
(~/.local/share/dicomtui)."""

# in the order `dicomtui --help` lists them
REGISTRY = {**receiver.VERBS, **sites.VERBS, **privacy.VERBS, **uploads.VERBS,
            **archive.VERBS, **doctor.VERBS}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose verbs take options anywhere on the line, as dcmtk's tools
    do (`send HOST PORT --aec X DIR`).

    Plain argparse stops filling a verb's positionals at the first option, and
    parse_intermixed_args refuses parsers with subcommands; so each verb's own parser
    (one without subcommands: where the positionals are) parses intermixed, and the
    parsers above it parse as usual."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # the intermixed parse calls back in here
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _common(parser: argparse.ArgumentParser) -> None:
    """--data-dir on `parser` and on every action under it (`dest add ... --data-dir`)."""
    if "--data-dir" not in parser._option_string_actions:
        parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                            help=f"data dir (default: {default_data_dir()})")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _common(child)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dicomtui", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A DICOM receiver (SCP) with an operations console in the terminal.\n"
                    "Without a COMMAND: the console (attaches to a running `dicomtui "
                    "serve`,\nelse starts one in the background, which outlives the "
                    "console).",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"dicomtui {__version__}")
    _common(parser)
    receiver.receiver_options(parser)
    parser.add_argument("--no-start", action="store_true",
                        help="console: open without starting the receiver (press s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, verb in REGISTRY.items():
        child = sub.add_parser(name, help=verb.help, description=verb.help,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        verb.configure(child)
        _common(child)
    return parser


def cli_settings(args: argparse.Namespace) -> dict:
    """Settings given on the command line, as raw strings keyed by setting name."""
    given = {name: getattr(args, attr, None) for name, attr in (
        ("port", "port"), ("ae_title", "ae_title"), ("host", "host"),
        ("storage_dir", "storage_dir"))}
    for item in getattr(args, "set", []) or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        given[name.strip().replace("-", "_")] = value
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    """The verb the arguments name; without one, the console."""
    if args.command is None:
        return receiver.cmd_console(args)
    return REGISTRY[args.command].run(args)


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # what any verb writes (restored files, exports) is the user's alone
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 0)
    args.data_dir = Path(getattr(args, "data_dir", None) or default_data_dir()).expanduser()
    try:
        args.settings = cli_settings(args)
        return run(args)
    except (UsageError, SettingError) as exc:
        print(f"dicomtui: error: {exc}", file=sys.stderr)
        return 2
    except Failed as exc:
        print(f"dicomtui: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
