"""Anonymize on receive: decode the whole dataset, apply the profile, keep the originals.

The slow path of receiving (a full decode and re-encode, ~1 ms for a CT slice); only
facilities with anonymization on take it. The pixel data bytes are written back exactly
as they came, in the transfer syntax they came in.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from dicomtui.dicom.anonymize import AnonymizeError, anonymize, subject_key
from dicomtui.dicom.filemeta import file_header
from dicomtui.dicom.identify import Identity, UnreadableDataset, identity_of
from dicomtui.service.privacy.anonmap import AnonymizationMap
from dicomtui.service.privacy.phi import KNOWN_PHI


@dataclass(frozen=True)
class Anonymized:
    """The instance as it will be stored: its identity, the whole file's bytes, and the
    originals of this instance for the map (recorded once it is acknowledged)."""

    ident: Identity
    data: bytes
    subject: str
    originals: dict


class Anonymizer:
    """Turns one received dataset into its anonymized file; records the originals."""

    def __init__(self, amap: AnonymizationMap) -> None:
        self.map = amap

    def apply(
        self,
        body,
        syntax: str,
        ident: Identity,
        source_ae: str,
        replace_uids: bool,
        now: str,
    ) -> Anonymized:
        ds = decode(body, syntax)
        key = subject_key(ds)
        name = str(ds.get("PatientName", "") or "")
        KNOWN_PHI.note(key[0], name, key[1])
        code = self.map.subject_for(key, name, now)
        try:
            originals = anonymize(ds, code, self.map.uid_secret if replace_uids else None)
        except AnonymizeError:
            raise
        except Exception as exc:  # a value pydicom cannot decode: refuse, write nothing
            raise UnreadableDataset(f"dataset cannot be anonymized: {exc}") from exc
        sop, study = str(ds.get("SOPInstanceUID", "")), str(ds.get("StudyInstanceUID", ""))
        data = file_header(ident.sop_class_uid, sop, syntax, source_ae) + encode(ds, syntax)
        mine = self.map.add_instance(code, study, sop, originals, now)
        # everything the index and the log see comes from the anonymized dataset
        stored = replace(
            identity_of(ds),
            sop_class_uid=ident.sop_class_uid,
            patient_id=code,
            patient_name=code,
        )
        return Anonymized(stored, data, code, mine)


def decode(body, syntax: str) -> Dataset:
    """The whole dataset of a C-STORE (no file meta), pixel data left encoded."""
    uid = UID(syntax)
    raw = bytes(body)
    try:
        if uid.is_deflated:
            raw = zlib.decompress(raw, -zlib.MAX_WBITS)
        ds = read_dataset(BytesIO(raw), uid.is_implicit_VR, uid.is_little_endian)
    except Exception as exc:  # pydicom raises many kinds on garbage input
        raise UnreadableDataset(
            f"dataset cannot be parsed for anonymization: {exc}"
        ) from exc
    return ds


def encode(ds: Dataset, syntax: str) -> bytes:
    """`ds` encoded in `syntax` (deflated again if it came deflated)."""
    uid = UID(syntax)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = uid.is_little_endian, uid.is_implicit_VR
    write_dataset(fp, ds)
    raw = fp.getvalue()
    if uid.is_deflated:
        packer = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS
        )
        raw = packer.compress(raw) + packer.flush()
    return raw
