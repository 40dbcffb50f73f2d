"""The receiver's own verbs: serve, the console, status, log, config, and echo and send.

`serve` is the service; status, log and config use it when it runs, else open the data
dir (see ARCHITECTURE.md); echo and send talk to a DICOM peer.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import logging.handlers
import re
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.cli import views
from dicomtui.cli.connect import backend_for, console_backend
from dicomtui.cli.errors import Failed, UsageError
from dicomtui.cli.verb import Verb
from dicomtui.locations import socket_path
from dicomtui.models import TRANSACTION_TYPES, TransactionFilter, status_word, to_dict
from dicomtui.service.privacy.phi import PHI_FILTER
from dicomtui.settings import resolve


def receiver_options(parser: argparse.ArgumentParser) -> None:
    """The receiver's settings as options: for `serve` and for the console."""
    group = parser.add_argument_group("receiver settings (override env and stored)")
    group.add_argument("--port", help="TCP port of plain DICOM (default 11112; 0: none, "
                       "TLS only with --set tls_port=N)")
    group.add_argument("--ae-title", help="our AE title (default DICOMTUI)")
    group.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    group.add_argument("--storage-dir", help="where DICOM files go "
                       "(default <data-dir>/storage)")
    group.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any other setting, e.g. --set layout=flat (repeatable)")
    group.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="log level on stderr (DEBUG includes pynetdicom's detail)")


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.epilog = "Runs until SIGTERM/SIGINT; then finishes in-flight stores and exits 0."
    receiver_options(p)
    p.add_argument("--no-start", action="store_true",
                   help="serve the control API with the receiver stopped (start it "
                        "from the console with s)")
    # what the console passes to the service it starts (cli/background.py)
    p.add_argument("--started-by", choices=["console"], help=argparse.SUPPRESS)
    p.add_argument("--log-file", type=Path, help=argparse.SUPPRESS)


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", action="append", type=record_type, metavar="T",
                   help="record type: " + ", ".join(TRANSACTION_TYPES) + ", or the DIMSE "
                        "name (C-STORE, C-ECHO, C-FIND, C-MOVE, C-GET), any case "
                        "(repeatable)")
    p.add_argument("--status", action="append", metavar="S",
                   help="outcome (ok, warning, failed, refused) or a status code such "
                        "as 0xA700 (repeatable)")
    p.add_argument("--ae", help="calling or called AE title")
    p.add_argument("--since", help="ISO date/time (2026-11-23T08:00) or age (30m, 2h, 1d)")
    p.add_argument("--limit", type=int, default=50, help="newest N records (default 50)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


# the DIMSE names dcmtk and PS3.7 use, for the record types that carry them
DIMSE_TYPES = {"c-store": "store", "c-echo": "echo", "c-find": "find", "c-move": "move",
               "c-get": "get"}


def record_type(text: str) -> str:
    """A --type word as our record type: ours or a DIMSE name, in any case."""
    word = text.strip().lower()
    word = DIMSE_TYPES.get(word, DIMSE_TYPES.get(word.replace("_", "-"), word))
    if word not in TRANSACTION_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a record type; use one of {', '.join(TRANSACTION_TYPES)} "
            "or C-STORE, C-ECHO, C-FIND, C-MOVE, C-GET")
    return word


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["show", "set", "unset"], default="show",
                   help="show (default), set NAME VALUE, or unset NAME")
    p.add_argument("name", nargs="?", help="setting name")
    p.add_argument("value", nargs="?", help="new value (for set)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _peer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="peer host name or address")
    p.add_argument("port", type=int, help="peer port")
    p.add_argument("--aec", default="DICOMTUI", help="called AE title (default DICOMTUI)")
    p.add_argument("--aet", default="DICOMTUI-SCU", help="our calling AE title")
    tls = p.add_argument_group("DICOM TLS (each --tls-* option implies --tls)")
    tls.add_argument("--tls", action="store_true",
                     help="speak DICOM TLS (TLS 1.2+) and verify the peer's certificate")
    tls.add_argument("--tls-ca", metavar="FILE",
                     help="PEM CA certificate(s) to verify the peer with "
                          "(default: the system's CAs)")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="PEM certificate to present (peers with tls_ca_file want one)")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="PEM private key of --tls-cert (default: in the --tls-cert file)")


def _send_args(p: argparse.ArgumentParser) -> None:
    _peer_args(p)
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="files or folders (recursive); non-DICOM files are skipped")
    p.add_argument("--synthetic", type=int, metavar="N",
                   help="send N generated 512x512 CT instances instead of files")


def cmd_console(args) -> int:
    """The console: attached to a running service, else the engine in this process."""
    from dicomtui.tui.app import make_app
    resolve(args.settings)  # refuse bad options before the screen opens
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise UsageError("the console needs a terminal; for a headless receiver run "
                         "`dicomtui serve` (see `dicomtui --help`)")
    app = make_app(lambda: console_backend(args), no_start=args.no_start)
    app.run()
    return 0


def cmd_serve(args) -> int:
    from dicomtui.control.daemon import serve
    from dicomtui.service.engine import EngineError

    resolve(args.settings)  # refuse bad options before touching the data dir
    setup_logging(args.log_level, args.log_file)
    # `kill -USR1 PID` writes every thread's stack to stderr (the journal): what a
    # service that seems stuck is doing, without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return serve(args.data_dir, args.settings, started_by=args.started_by or "",
                     start=not args.no_start)
    except EngineError as exc:
        raise Failed(str(exc)) from None


LOG_FILE_BYTES = 1_000_000  # a console's service keeps this file and one older, no more


def setup_logging(level: str, log_file: Path | None = None) -> None:
    """Log records on stderr, for systemd's journal (or to a bounded file, for the
    service a console started); PHI masked when deidentify_logs is on."""
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if log_file is None else
        logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_FILE_BYTES,
                                             backupCount=1))
    handler.addFilter(PHI_FILTER)  # deidentify_logs: the engine turns it on or off
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("dicomtui").setLevel(level)
    logging.getLogger("pynetdicom").setLevel("DEBUG" if level == "DEBUG" else "WARNING")


NOT_RUNNING = 3  # `status` of a receiver that is not running, as systemctl says it


def cmd_status(args) -> int:
    """The service's status; exit 0 while its receiver runs, 3 when it does not."""
    try:
        with backend_for(args, need_service=True) as backend:
            snap = backend.status()
    except BackendError as exc:
        raise Failed(str(exc)) from None
    except Failed as exc:
        if args.json:
            print(json.dumps({"state": "stopped", "data_dir": str(args.data_dir)}))
        print(f"dicomtui: {exc}", file=sys.stderr)
        return NOT_RUNNING
    print(json.dumps(to_dict(snap), indent=2) if args.json else views.status(snap))
    return 0 if snap.state == "running" else NOT_RUNNING


def cmd_config(args) -> int:
    if args.action != "show" and not args.name:
        raise UsageError(f"config {args.action} needs a setting NAME")
    if args.action == "set" and args.value is None:
        raise UsageError("config set needs NAME and VALUE")
    try:
        with backend_for(args) as backend:
            if args.action == "show":
                values = backend.settings()
            elif args.action == "set":
                changed = backend.set_setting(args.name, args.value)
            else:
                changed = backend.unset_setting(args.name)
    except InvalidRequest as exc:
        raise UsageError(str(exc)) from None
    except BackendError as exc:
        raise Failed(str(exc)) from None
    if args.action == "show":
        print(json.dumps(to_dict(values), indent=2) if args.json else views.settings(values))
    else:
        print(json.dumps(to_dict(changed), indent=2) if args.json
              else views.setting_changed(changed))
    return 0


def cmd_log(args) -> int:
    flt = log_filter(args)
    try:
        return _log(args, flt)
    except InvalidRequest as exc:
        raise UsageError(str(exc)) from None
    except BackendError as exc:
        raise Failed(str(exc)) from None


def _log(args, flt: TransactionFilter) -> int:
    from dicomtui.backend.remote import probe
    remote = probe(socket_path(args.data_dir))
    records = (remote.transactions(flt) if remote else _local_records(args, flt))
    records.reverse()  # oldest first, newest at the bottom like any log
    _print_records(records, args.json)
    if not records and not args.json and not args.follow:
        print("no matching transactions", file=sys.stderr)
    if args.follow:
        last = max((r["id"] for r in records), default=_newest_id(remote, args, flt))
        _follow(args, flt, last, remote)
    return 0


def _local_records(args, flt: TransactionFilter) -> list[dict]:
    from dicomtui.db.txlog import TransactionLog
    log_dir = Path(args.data_dir) / "log"
    if not log_dir.is_dir():
        return []
    since = datetime.fromisoformat(flt.since) if flt.since else None
    return TransactionLog(log_dir).query(
        types=flt.types, outcomes=flt.outcomes, statuses=flt.statuses, ae=flt.ae,
        since=since, after_id=flt.after_id, limit=flt.limit)


def _newest_id(remote, args, flt: TransactionFilter) -> int:
    probe_flt = TransactionFilter(limit=1)
    found = remote.transactions(probe_flt) if remote else _local_records(args, probe_flt)
    return found[0]["id"] if found else 0


def _follow(args, flt: TransactionFilter, last: int, remote) -> None:
    """Print new records until Ctrl-C (or SIGTERM). The signal only sets a flag, seen
    between requests: a KeyboardInterrupt in the middle of one could leave the HTTP
    client's pool lock held, and the process then hung at exit instead of stopping."""
    from dicomtui.backend.remote import probe
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    waiting_said = False
    while not stop.is_set():
        remote = remote or probe(socket_path(args.data_dir))
        if remote is None:
            if not waiting_said:
                print("(service not running; waiting for it to start, Ctrl-C to stop)",
                      file=sys.stderr)
                waiting_said = True
            stop.wait(1.0)
            continue
        try:
            batch = remote.transactions(_after(flt, last))
        except BackendError:
            remote = None
            continue
        _print_records(batch, args.json)
        last = batch[-1]["id"] if batch else last
        stop.wait(0.5 if not batch else 0.05)


def _after(flt: TransactionFilter, last: int) -> TransactionFilter:
    return TransactionFilter(types=flt.types, outcomes=flt.outcomes, statuses=flt.statuses,
                             ae=flt.ae, since=None, after_id=last, limit=500)


def _print_records(records: list[dict], as_json: bool) -> None:
    for record in records:
        print(json.dumps(record) if as_json else views.record_line(record), flush=True)


def log_filter(args) -> TransactionFilter:
    """The TransactionFilter for `log` options; bad options raise UsageError."""
    outcomes, statuses = [], []
    for word in args.status or []:
        try:
            outcome, code = status_word(word)
        except ValueError as exc:
            raise UsageError(f"--status: {exc}") from None
        outcomes += [outcome] if outcome else []
        statuses += [code] if code is not None else []
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return TransactionFilter(types=args.type, outcomes=outcomes or None,
                             statuses=statuses or None, ae=args.ae,
                             since=_since(args.since), limit=args.limit)


_AGE = re.compile(r"(\d+)\s*([smhd])")


def _since(text: str | None) -> str | None:
    if not text:
        return None
    match = _AGE.fullmatch(text.strip().lower())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        moment = datetime.now().astimezone() - timedelta(**{unit: int(match.group(1))})
        return moment.isoformat()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since: {text!r} is neither an ISO date/time "
                           "(2026-11-23T08:00) nor an age like 30m, 2h or 1d") from None
    return (moment if moment.tzinfo else moment.astimezone()).isoformat()


def tls_context(args):
    """The client TLS context the --tls options ask for, or None (UsageError if a file
    will not do)."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if args.tls_key and not args.tls_cert:
        raise UsageError("--tls-key needs --tls-cert (the certificate it belongs to)")
    from dicomtui.service.receiving.tls import TLSConfigError, client_context
    try:
        return client_context(args.tls_ca or "", args.tls_cert or "", args.tls_key or "")
    except TLSConfigError as exc:
        raise UsageError(str(exc)) from None


def cmd_echo(args) -> int:
    from dicomtui.service.sending.sender import SendError, echo
    tls = tls_context(args)
    started = time.perf_counter()
    try:
        status = echo(args.host, args.port, args.aec, args.aet, tls)
    except SendError as exc:
        raise Failed(str(exc)) from None
    ms = (time.perf_counter() - started) * 1000
    over = " over TLS" if tls is not None else ""
    print(f"C-ECHO {args.aet} -> {args.aec}@{args.host}:{args.port}{over}: status "
          f"0x{status:04X} ({'success' if status == 0 else 'failure'}) in {ms:.0f} ms")
    return 0 if status == 0 else 1


def cmd_send(args) -> int:
    from dicomtui.service.sending import sender
    if bool(args.paths) == bool(args.synthetic):
        raise UsageError("send needs PATH... or --synthetic N (not both)")
    if args.synthetic is not None and args.synthetic < 1:
        raise UsageError("--synthetic N needs N >= 1")
    peer = sender.Peer(args.host, args.port, args.aec, args.aet, tls_context(args))
    summary = sender.SendSummary()
    try:
        items = _send_items(args, summary)
        sender.send(items, peer, summary,
                    views.send_progress if sys.stderr.isatty() else None,
                    views.send_failure)
    except sender.SendError as exc:
        print(views.send_summary(summary), file=sys.stderr)
        _record_send(args, summary, str(exc))
        raise Failed(str(exc)) from None
    print(views.send_summary(summary))
    _record_send(args, summary, "")
    return 0 if summary.failed == 0 and (summary.sent or summary.skipped == 0) else 1


def _record_send(args, summary, error: str) -> None:
    """Log the send as one transaction (the service's, else the data dir's); a send
    that cannot be logged still happened, so this only warns."""
    from dicomtui.models import SendReport
    common = summary.unsendable.most_common(1) or [
        (r, 0) for r in summary.reasons.values() if r][:1]
    report = SendReport(
        called_ae=args.aec, calling_ae=args.aet, peer=f"{args.host}:{args.port}",
        total=summary.sent + summary.failed, completed=summary.sent - summary.warnings,
        warning=summary.warnings, failed=summary.failed, converted=summary.converted,
        bytes=summary.bytes,
        reason=error or (f"{summary.failed} failed ({common[0][0]})" if common
                         else f"{summary.failed} failed" if summary.failed else ""))
    try:
        with backend_for(args) as backend:
            backend.record_send(report)
    except (Failed, BackendError) as exc:
        print(f"dicomtui send: not recorded in the transaction log: {exc}", file=sys.stderr)


def _send_items(args, summary):
    from dicomtui.service.sending import sender
    if args.synthetic:
        from dicomtui.dicom.synthetic import synthetic_instances
        return sender.dataset_items(synthetic_instances(args.synthetic))
    items = sender.scan_files(args.paths, summary)
    if not items:
        raise Failed(f"no DICOM files found ({summary.skipped} other files skipped)")
    return items


VERBS = {
    "serve": Verb("run the receiver headless (for systemd)", _serve_args, cmd_serve),
    "status": Verb("state, uptime, listeners, associations and counters", _status_args,
                   cmd_status),
    "log": Verb("the transaction log (associations, echoes, stores, queries, retrieves, "
                "cleanups)", _log_args, cmd_log),
    "config": Verb("effective settings and their source; set or unset stored values",
                   _config_args, cmd_config),
    "echo": Verb("send a C-ECHO to a DICOM peer", _peer_args, cmd_echo),
    "send": Verb("send DICOM files or synthetic instances to a peer", _send_args, cmd_send),
}
