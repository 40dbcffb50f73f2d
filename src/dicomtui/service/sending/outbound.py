"""What goes out on an association we send on: `dicomtui send`, the archive's send to
a destination, and the C-STORE sub-operations of C-MOVE and C-GET.

Each (SOP Class, transfer syntax) is proposed in a context of its own: the file's own
syntax, then Explicit and Implicit VR Little Endian and RLE Lossless, so the peer
answers each one.
A file goes out as its stored bytes (pynetdicom streams the dataset after the file
meta) when the peer accepted its syntax; otherwise a converted copy in a syntax it did
accept (`dicom/transcode.py`). One that cannot go raises Unsendable with a reason
(no path, no patient data); the caller fails that instance and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import _config
from pynetdicom.presentation import PresentationContext, build_context

from dicomtui.dicom.transcode import (
    TARGETS,
    TranscodeError,
    can_convert,
    short_name,
    transcode,
)

LOG = logging.getLogger("dicomtui.send")
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association

# A path given to send_c_store() is sent as the file's bytes after its meta, never
# decoded and re-encoded (which drops group lengths, turns UN into the real VR, ...).
# Only our code hands pynetdicom paths, and only for files whose syntax was accepted.
_config.STORE_SEND_CHUNKED_DATASET = True


class Unsendable(Exception):
    """This one instance cannot go to this peer; the message says why."""


@dataclass(frozen=True)
class Sent:
    """How an instance went: the peer's answer, the syntax it went in, and the size of
    its file (what the summaries count: converted copies differ only in encoding)."""

    reply: Dataset
    syntax: str
    converted: bool
    size: int


def wanted(sop_class: str, syntax: str) -> list[tuple[str, str]]:
    """The (SOP Class, syntax) pairs to propose for one file, best first."""
    pairs = [(sop_class, syntax)]
    pairs += [(sop_class, str(t)) for t in TARGETS if t != syntax]
    return pairs


def contexts_for(files: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """One context per pair, at most 128: every file's own syntax first, then Explicit
    VR LE, Implicit VR LE and RLE Lossless for each class, as long as room is left."""
    ranks: list[list[tuple[str, str]]] = [[], [], [], []]
    seen: set[tuple[str, str]] = set()
    for sop_class, syntax in files:
        for pair in wanted(sop_class, syntax):
            if pair not in seen:
                seen.add(pair)
                own = pair[1] == syntax
                ranks[0 if own else 1 + TARGETS.index(UID(pair[1]))].append(pair)
    pairs = [pair for rank in ranks for pair in rank][:MAX_CONTEXTS]
    return [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]


def choose(assoc, sop_class: str, syntax: str) -> tuple[str, bool]:
    """(syntax to send in, converted?) among the contexts the peer accepted for us to
    send on, in TARGETS' order; Unsendable if none will do for this file."""
    accepted = [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == sop_class and cx.as_scu
    ]
    if syntax in accepted:
        return syntax, False
    if not accepted:
        raise Unsendable(f"peer refused SOP Class {sop_class}")
    for target in TARGETS:
        if target in accepted and can_convert(syntax, target):
            return str(target), True
    raise Unsendable(f"peer accepts no syntax {short_name(syntax)} converts to")


def send_file(assoc, path: Path, sop_class: str, syntax: str, send=None, **kwargs) -> Sent:
    """C-STORE one stored file on `assoc`: as stored, else converted; Unsendable if
    neither can be. `send` is the association's own send_c_store (default)."""
    target, convert = choose(assoc, sop_class, syntax)
    send = send or assoc.send_c_store
    try:
        size = path.stat().st_size
    except OSError:
        raise Unsendable("the file is gone") from None
    if not convert:
        return Sent(send(path, **kwargs), target, False, size)
    return Sent(send(_converted(path, target), **kwargs), target, True, size)


def _converted(path: Path, target: str) -> Dataset:
    try:
        ds = dcmread(path)
    except Exception:  # any reader failure: the reason must not carry the path
        raise Unsendable("the file cannot be read") from None
    try:
        return transcode(ds, target)
    except TranscodeError as exc:
        raise Unsendable(str(exc)) from None


class RetrieveSender:
    """Stands in for an association's send_c_store() while a C-MOVE or C-GET handler
    runs, because pynetdicom sends the datasets a handler yields by itself: a
    StoredFile goes out through send_file() (as stored, else converted); a failure is
    raised to pynetdicom, which counts a failed sub-operation, and kept for the
    handler's Error Comment."""

    def __init__(self, assoc, originator: str = "") -> None:
        self.assoc = assoc
        self._send = assoc.send_c_store
        self._originator = originator
        self.reasons: list[str] = []
        self.converted = 0
        assoc.send_c_store = self

    def __call__(self, dataset, msg_id: int = 1, **kwargs) -> Dataset:
        if self._originator and kwargs.get("originator_aet"):
            # PS3.7 9.3.1.1: the C-MOVE requester's AE title (pynetdicom gives ours)
            kwargs["originator_aet"] = self._originator
        if not isinstance(dataset, StoredFile):
            return self._send(dataset, msg_id=msg_id, **kwargs)
        try:
            sent = send_file(
                self.assoc,
                dataset.path,
                dataset.sop_class,
                dataset.syntax,
                self._send,
                msg_id=msg_id,
                **kwargs,
            )
        except Unsendable as exc:
            self.reasons.append(str(exc))
            LOG.warning("retrieve: %s not sent: %s", dataset.SOPInstanceUID, exc)
            raise
        except (ValueError, AttributeError) as exc:  # pynetdicom could not encode it
            self.reasons.append("it cannot be encoded")
            LOG.warning("retrieve: %s not sent: %s", dataset.SOPInstanceUID, exc)
            raise
        self.converted += sent.converted
        return sent.reply

    def remove(self) -> None:
        """The association's own send_c_store() again."""
        self.assoc.__dict__.pop("send_c_store", None)


class StoredFile(Dataset):
    """What a retrieve handler yields for one stored instance: only its UIDs (which
    pynetdicom lists if it fails) and where the file is, for RetrieveSender."""

    def __init__(self, path: Path, sop_class: str, sop_uid: str, syntax: str) -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_uid
        self.path, self.sop_class, self.syntax = path, sop_class, syntax


def install_on_established(senders: list[RetrieveSender], originator: str):
    """An EVT_ESTABLISHED handler that puts a RetrieveSender on the association
    pynetdicom makes to a C-MOVE destination (it runs before the first C-STORE);
    `originator` is the AE title of the C-MOVE's requester."""

    def handler(event) -> None:
        senders.append(RetrieveSender(event.assoc, originator))

    return handler
