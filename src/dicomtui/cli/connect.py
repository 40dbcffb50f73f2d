"""How a verb reaches the engine: the running service when one answers, else the data
dir opened in this process, never starting the SCP (see ARCHITECTURE.md)."""

from __future__ import annotations

import contextlib

from dicomtui.backend.base import BackendError, InvalidRequest
from dicomtui.cli.errors import Failed, UsageError
from dicomtui.locations import socket_path


def console_backend(args):
    """The Backend the console uses: the service when one answers, else a service it
    starts for the data dir (cli/background.py) and attaches to the same way.

    Runs on a worker thread of the console; failures become BackendError for the screen.
    """
    from dicomtui.backend.remote import probe
    from dicomtui.cli.background import log_path, start_service
    remote = probe(socket_path(args.data_dir))
    if remote is not None:
        if args.settings:
            remote.notice = (f"attached to the running service: {', '.join(sorted(args.settings))}"
                             " given here are ignored (change them on screen 9)")
        return remote
    remote = start_service(args, no_start=getattr(args, "no_start", False))
    snap = remote.status()
    if snap.error:
        remote.notice = (f"the receiver did not start: {snap.error}; then press s "
                         f"(its log: {log_path(args.data_dir)})")
    return remote


@contextlib.contextmanager
def backend_for(args, need_service: bool = False):
    """The running service's API if one answers, else the data dir opened here."""
    from dicomtui.backend.remote import probe
    from dicomtui.service.engine import EngineError
    remote = probe(socket_path(args.data_dir))
    if remote is not None:
        try:
            yield remote
        finally:
            remote.close()
        return
    if need_service:
        raise Failed(f"the dicomtui service is not running (data dir {args.data_dir}); "
                     "`dicomtui` starts one, `dicomtui serve` runs one in the foreground")
    try:
        local = local_backend(args)
    except EngineError as exc:
        raise Failed(str(exc)) from None
    try:
        yield local
    finally:
        local.close()


@contextlib.contextmanager
def verb_backend(args):
    """backend_for(args) for a verb: bad input exits 2, anything refused or missing 1,
    each as one line."""
    try:
        with backend_for(args) as backend:
            yield backend
    except InvalidRequest as exc:
        raise UsageError(str(exc)) from None
    except BackendError as exc:
        raise Failed(str(exc)) from None


def local_backend(args):
    """The engine on the data dir, opened (locked) in this process but not receiving.

    Raises EngineError when the data dir cannot be opened, e.g. another process holds it.
    """
    from dicomtui.backend.local import LocalBackend
    from dicomtui.service.engine import Engine
    return LocalBackend(Engine(args.data_dir, args.settings))
