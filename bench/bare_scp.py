"""The benchmark's baseline: a bare, stock pynetdicom Storage SCP.

It accepts every storage SOP class in every transfer syntax (and C-ECHO), writes the
received bytes to `<out>/<sop_uid>.dcm` (temp file, fsync, rename) and answers 0x0000.
No other work: no socket tuning, no bookkeeping; it stands for pynetdicom out of the box.

    python bench/bare_scp.py --port 11112 --out /tmp/received [--no-fsync]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
from pathlib import Path

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC210
UID = re.compile(r"[0-9.]{1,64}")


def handle_store(event: evt.Event, out: Path, fsync: bool) -> int:
    """Write one instance exactly as received; only then report success."""
    sop_uid = event.request.AffectedSOPInstanceUID
    if not UID.fullmatch(str(sop_uid)):
        return CANNOT_UNDERSTAND
    temp = out / f".{sop_uid}.{threading.get_ident()}.tmp"
    try:
        with open(temp, "wb") as f:
            f.write(event.encoded_dataset())
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, out / f"{sop_uid}.dcm")
    except OSError:
        temp.unlink(missing_ok=True)
        return OUT_OF_RESOURCES
    return SUCCESS


def make_ae(ae_title: str, max_associations: int) -> AE:
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    ae.add_supported_context(Verification)  # C-ECHO: answered by pynetdicom itself
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, AllTransferSyntaxes)
    return ae


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the server shuts down cleanly."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ae", default="BARE")
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--max-associations", type=int, default=10)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ae = make_ae(args.ae, args.max_associations)
    handlers = [(evt.EVT_C_STORE, handle_store, [args.out, not args.no_fsync])]
    stop = stop_on_signals()
    server = ae.start_server((args.host, args.port), block=False, evt_handlers=handlers)
    print("ready", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
