"""Sending helpers for tests: real pynetdicom associations, no shortcuts."""

from __future__ import annotations

import os
import time
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from dicomtui.service.sending.reactor import parked  # noqa: F401 (one copy: the sender's own)


def ct_small() -> Dataset:
    return dcmread(get_testdata_file("CT_small.dcm"))


def fresh_ct(**changes) -> Dataset:
    """CT_small with new UIDs (and any element overrides)."""
    ds = ct_small()
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    for name, value in changes.items():
        setattr(ds, name, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def send(port: int, items: list, called: str = "DICOMTUI", calling: str = "TESTSCU",
         contexts: list[tuple[str, str]] | None = None) -> list[Dataset]:
    """C-STORE each item (Dataset or file path) on one association; returns responses.

    A path is read and re-encoded by pydicom, as pynetdicom does by default: the engine,
    once imported, has pynetdicom stream a path's bytes as stored instead
    (ARCHITECTURE.md, "Sending and retrieving"), and these tests mean the default."""
    ae = AE(ae_title=calling)
    for sop_class, syntax in contexts or _contexts(items):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association was not accepted"
    try:
        return [parked(assoc).send_c_store(item if isinstance(item, Dataset)
                                           else dcmread(item)) for item in items]
    finally:
        assoc.release()


def _contexts(items: list) -> list[tuple[str, str]]:
    found = []
    for item in items:
        ds = item if isinstance(item, Dataset) else dcmread(item, stop_before_pixels=True)
        key = (str(ds.file_meta.MediaStorageSOPClassUID) if "MediaStorageSOPClassUID" in
               ds.file_meta else str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
        if key not in found:
            found.append(key)
    return found


def write_raw_file(path: Path, ds: Dataset, meta_sop_uid: str) -> Path:
    """Write `ds` with file meta claiming `meta_sop_uid` (to send malformed datasets)."""
    ds.file_meta.MediaStorageSOPInstanceUID = meta_sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path.write_bytes(buffer.getvalue())
    return path


def stored_files(root: Path) -> list[Path]:
    """The .dcm files under `root` (os.walk skips folders removed while it looks: an
    upload's cleanup may be pruning them)."""
    found = [Path(top) / name for top, _dirs, names in os.walk(root)
             for name in names if name.endswith(".dcm")]
    return sorted(p for p in found if p.is_file())


def leftovers(root: Path) -> list[Path]:
    """Temp files a failed store must never leave behind."""
    return [p for p in root.rglob("*.tmp")]


def send_encoded(port: int, sop_class: str, sop_uid: str, encoded: bytes,
                 syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """C-STORE already-encoded dataset bytes, skipping pynetdicom's own dataset checks.

    pynetdicom refuses to send a dataset without SOPInstanceUID; a broken modality does
    not, so this builds the C-STORE request by hand, as send_c_store() does inside.
    """
    from pynetdicom.dimse_primitives import C_STORE
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    assert assoc.is_established
    try:
        req = C_STORE()
        req.MessageID, req.Priority = 1, 2
        req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = sop_class, sop_uid
        req.DataSet = BytesIO(encoded)
        context_id = assoc.accepted_contexts[0].context_id
        parked(assoc)
        assoc.dimse.send_msg(req, context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
        assoc._reactor_checkpoint.set()
        answer = Dataset()
        answer.Status = rsp.Status
        if rsp.ErrorComment:
            answer.ErrorComment = rsp.ErrorComment
        return answer
    finally:
        assoc.release()


def encode_dataset(ds: Dataset) -> bytes:
    """`ds` encoded as Explicit VR Little Endian, without file meta."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def eventually(check, timeout: float = 30.0, what: str = "the condition"):
    """Poll `check()` until it returns something true; that value.

    For state that arrives on its own (a record written after a release, a log batched
    once a second): wait for the state, never for a guess at how long it takes. The
    deadline only bounds a failure; it costs nothing when things work."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} "
                                 f"(last: {value!r})")
        time.sleep(0.05)
