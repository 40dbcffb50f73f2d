"""The `dicomtui` command line: argument parsing and dispatch to the Backend.

Exit codes: 0 success, 1 operation failed, 2 usage error. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dicomtui import __version__, commands
from dicomtui.locations import default_data_dir
from dicomtui.commands import UsageError
from dicomtui.settings import SettingError
from dicomtui.service.privacy.phi import PHI_FILTER

EPILOG = """\
settings come from (highest first): command-line option, DICOMTUI_<NAME> environment
variable, stored setting (`dicomtui config set`), default. See `dicomtui config`.
data dir: --data-dir, else DICOMTUI_DATA_DIR, else $XDG_DATA_HOME/dicomtui
(~/.local/share/dicomtui)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="data dir (default: %s)" % default_data_dir())


def _receiver_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("receiver settings (override env and stored)")
    group.add_argument("--port", help="TCP port to listen on (default 11112)")
    group.add_argument("--ae-title", help="our AE title (default DICOMTUI)")
    group.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    group.add_argument("--storage-dir", help="where DICOM files go "
                       "(default <data-dir>/storage)")
    group.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any other setting, e.g. --set layout=flat (repeatable)")
    group.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="log level on stderr (DEBUG includes pynetdicom's detail)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomtui", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A DICOM receiver (SCP) with an operations console in the terminal.\n"
                    "Without a COMMAND: the console (attaches to a running `dicomtui "
                    "serve`,\nelse runs the receiver itself until you quit).",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"dicomtui {__version__}")
    _common(parser)
    _receiver_options(parser)
    parser.add_argument("--no-start", action="store_true",
                        help="console: open without starting the receiver (press s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (helptext, configure) in commands.REGISTRY.items():
        child = sub.add_parser(name, help=helptext, description=helptext,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(child)
        configure(child)
        if name == "serve":
            _receiver_options(child)
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


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(PHI_FILTER)  # deidentify_logs: the engine turns it on or off
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("dicomtui").setLevel(level)
    logging.getLogger("pynetdicom").setLevel("DEBUG" if level == "DEBUG" else "WARNING")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 0)
    args.data_dir = Path(getattr(args, "data_dir", None) or default_data_dir()).expanduser()
    try:
        args.settings = cli_settings(args)
        return commands.run(args)
    except (UsageError, SettingError) as exc:
        print(f"dicomtui: error: {exc}", file=sys.stderr)
        return 2
    except commands.Failed as exc:
        print(f"dicomtui: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
