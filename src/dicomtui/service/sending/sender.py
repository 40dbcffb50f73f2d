"""The SCU side: C-ECHO and C-STORE to any receiver, for `dicomtui echo` and `send`
and the archive's send to a destination (what goes out per file: `outbound.py`).

Sockets get TCP_NODELAY: a sender that leaves Nagle on stalls ~40 ms per image against
receivers that delay their ACKs (ARCHITECTURE.md, "Rules for the network").
"""

from __future__ import annotations

import errno
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import Verification

from dicomtui.dicom.transcode import TranscodeError, transcode
from dicomtui.service.receiving.netio import TunedAssociationSocket, tune
from dicomtui.service.sending.outbound import (
    MAX_CONTEXTS,
    Unsendable,
    choose,
    contexts_for,
    send_file,
    wanted,
)
from dicomtui.service.sending.reactor import parked
from dicomtui.wording import rejection

LOG = logging.getLogger("dicomtui.send")


class SendError(RuntimeError):
    """The peer could not be reached or refused us; the message says why."""


@dataclass
class SendSummary:
    """What a send did, for the one-screen summary and the exit code."""

    sent: int = 0
    failed: int = 0
    warnings: int = 0
    skipped: int = 0
    bytes: int = 0
    converted: int = 0  # sent in another transfer syntax than their file's
    statuses: Counter = field(default_factory=Counter)
    reasons: dict[int, str] = field(default_factory=dict)
    unsendable: Counter = field(default_factory=Counter)  # not sent at all, by reason


@dataclass(frozen=True)
class Item:
    """One file (or generated dataset) to send, with what negotiation needs."""

    sop_class: str
    syntax: str
    path: Path | None = None
    dataset: Dataset | None = None
    size: int = 0


def _make_ae(calling: str, contexts: Iterable[tuple[str, str]] = ()) -> AE:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    return ae


def _associate(ae: AE, host: str, port: int, called: str, tls: ssl.SSLContext | None):
    """An established association (over TLS with `tls`), else SendError saying why."""
    failure = _ConnectFailure()
    transport = logging.getLogger("pynetdicom.transport")
    transport.addHandler(failure)
    try:
        assoc = ae.associate(
            host, port, ae_title=called, tls_args=(tls, host) if tls is not None else None
        )
    except OSError as exc:
        raise SendError(_connect_error(host, port, str(exc))) from None
    finally:
        transport.removeHandler(failure)
    if not assoc.is_established:
        if failure.reason:
            raise SendError(_connect_error(host, port, failure.reason))
        raise SendError(_why_not(assoc, host, port, called))
    sock = assoc.dul.socket
    tune(sock.socket)
    sock.__class__ = TunedAssociationSocket
    return assoc


def _connect_error(host: str, port: int, reason: str) -> str:
    """Why no connection was made, in words: a refused one means nobody listens there."""
    if "Connection refused" in reason or f"[Errno {errno.ECONNREFUSED}]" in reason:
        return f"connection refused: nothing listening on {host}:{port}"
    return f"cannot connect to {host}:{port}: {reason}"


class _ConnectFailure(logging.Handler):
    """What pynetdicom logs (and only logs) when it cannot connect: the refused
    connection, or the TLS handshake's reason (an untrusted certificate, ...)."""

    PREFIX = "TCP Initialisation Error: "

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reason = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.PREFIX):
            self.reason = message.removeprefix(self.PREFIX)
            if "CERTIFICATE_VERIFY_FAILED" in self.reason:
                self.reason += " (is --tls-ca the CA that signed the peer's certificate?)"


def _why_not(assoc, host: str, port: int, called: str) -> str:
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        detail = rejection(rj.result, rj.result_source, rj.diagnostic)
        return f"{host}:{port} rejected the association as {called} ({detail})"
    if assoc.is_aborted:
        return f"{host}:{port} aborted the association"
    return f"no association with {host}:{port} (nothing listening, or it timed out)"


def echo(
    host: str, port: int, called: str, calling: str, tls: ssl.SSLContext | None = None
) -> int:
    """One C-ECHO (over TLS with `tls`); returns its status or raises SendError."""
    assoc = _associate(
        _make_ae(calling, [(Verification, "1.2.840.10008.1.2")]), host, port, called, tls
    )
    try:
        reply = parked(assoc).send_c_echo()
    finally:
        assoc.release()
    if "Status" not in reply:
        raise SendError(f"{host}:{port} sent no C-ECHO response")
    return int(reply.Status)


def scan_files(paths: Iterable[Path], summary: SendSummary) -> list[Item]:
    """DICOM files under the given files/folders; others are counted as skipped."""
    items = []
    for path in _walk(paths):
        item = _read_item(path)
        if item is None:
            summary.skipped += 1
        else:
            items.append(item)
    return items


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise SendError(f"{path}: no such file or folder")


def _read_item(path: Path) -> Item | None:
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        meta = ds.file_meta
        return Item(
            str(meta.MediaStorageSOPClassUID),
            str(meta.TransferSyntaxUID),
            path=path,
            size=path.stat().st_size,
        )
    except (InvalidDicomError, AttributeError, KeyError, ValueError, OSError, EOFError):
        return None


def dataset_items(datasets: Iterable[Dataset]) -> Iterator[Item]:
    """Generated datasets to send, each with its encoded size (for the summary)."""
    for ds in datasets:
        syntax = ds.file_meta.TransferSyntaxUID
        encoded = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian) or b""
        yield Item(str(ds.SOPClassUID), str(syntax), dataset=ds, size=len(encoded))


@dataclass(frozen=True)
class Peer:
    """Where a send goes: address, AE titles, and TLS (a client context) or not."""

    host: str
    port: int
    called: str
    calling: str
    tls: ssl.SSLContext | None = None


def send(
    items: Iterable[Item],
    peer: Peer,
    summary: SendSummary,
    progress: Callable[[SendSummary], None] | None = None,
    failure: Callable[[Item, str], None] | None = None,
) -> None:
    """C-STORE every item, opening a new association when contexts run out. An item
    that fails is counted (and told to `failure` with why); the rest go on."""
    batch: list[Item] = []
    pairs: set[tuple[str, str]] = set()
    for item in items:
        new = set(wanted(item.sop_class, item.syntax)) - pairs
        if batch and len(pairs) + len(new) > MAX_CONTEXTS:
            _send_batch(batch, pairs, peer, summary, progress, failure)
            batch, pairs, new = [], set(), set(wanted(item.sop_class, item.syntax))
        pairs |= new
        batch.append(item)
        if len(batch) >= 1000 and item.dataset is not None:  # bound generated memory
            _send_batch(batch, pairs, peer, summary, progress, failure)
            batch, pairs = [], set()
    if batch:
        _send_batch(batch, pairs, peer, summary, progress, failure)


def _send_batch(batch, pairs, peer: Peer, summary, progress, failure) -> None:
    host, port = peer.host, peer.port
    ae = _make_ae(peer.calling)
    ae.requested_contexts = contexts_for(pairs)
    assoc = _associate(ae, host, port, peer.called, peer.tls)
    try:
        for item in batch:
            answered = _send_one(assoc, item, summary, failure)
            if progress is not None:
                progress(summary)
            # No answer means the association is over (aborted by the peer, closed, or
            # by pynetdicom itself), though is_established may still say True for a
            # moment: a C-STORE sent on, or the release in `finally`, would then wait
            # dimse_timeout or acse_timeout (30 s) for an answer that cannot come.
            if not answered or not assoc.is_established:
                assoc.abort()
                raise SendError(f"{host}:{port} ended the association mid-transfer")
    finally:
        if assoc.is_established:
            assoc.release()


def _send_one(assoc, item: Item, summary: SendSummary, failure) -> bool:
    """C-STORE one item and count its answer; False when none came. An item that
    cannot go to this peer, or that pynetdicom cannot encode, fails alone."""
    try:
        reply, size, converted = _store(assoc, item)
    except Unsendable as exc:
        _failed(summary, item, str(exc), failure)
        return True
    except Exception as exc:  # pynetdicom cannot encode it, or the association ended
        if not assoc.is_established:
            return False
        _failed(summary, item, f"not sent: {exc}", failure)
        return True
    status = int(reply.Status) if "Status" in reply else -1
    summary.statuses[status] += 1
    if status == 0x0000 or 0xB000 <= status <= 0xBFFF:
        summary.sent += 1
        summary.bytes += size
        summary.warnings += status != 0x0000
        summary.converted += converted
    else:
        summary.failed += 1
        comment = str(reply.get("ErrorComment", "")) if status != -1 else "no response"
        summary.reasons.setdefault(status, comment)
        if failure is not None and status != -1:
            failure(item, f"status 0x{status:04X}" + (f" ({comment})" if comment else ""))
    return status != -1


def _store(assoc, item: Item) -> tuple[Dataset, int, bool]:
    """The peer's answer, the bytes and whether they were converted: a file through
    send_file() (as stored, else converted); a generated dataset as pynetdicom
    encodes it."""
    parked(assoc)
    if item.path is not None:
        sent = send_file(assoc, item.path, item.sop_class, item.syntax)
        return sent.reply, sent.size, sent.converted
    syntax, converted = choose(assoc, item.sop_class, item.syntax)
    dataset = item.dataset
    if converted and dataset is not None:
        try:
            dataset = transcode(dataset, syntax)
        except TranscodeError as exc:
            raise Unsendable(str(exc)) from None
    return assoc.send_c_store(dataset), item.size, converted


def _failed(summary: SendSummary, item: Item, reason: str, failure) -> None:
    summary.failed += 1
    summary.unsendable[reason] += 1
    if failure is not None:
        failure(item, reason)
