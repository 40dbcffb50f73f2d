"""Archive test helpers: synthetic studies sent for real, and Q/R requests over DICOM."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (CTImageStorage, MRImageStorage,
                                  PatientRootQueryRetrieveInformationModelFind,
                                  PatientRootQueryRetrieveInformationModelGet,
                                  PatientRootQueryRetrieveInformationModelMove,
                                  StudyRootQueryRetrieveInformationModelFind,
                                  StudyRootQueryRetrieveInformationModelGet,
                                  StudyRootQueryRetrieveInformationModelMove)

from helpers import fresh_ct, parked, send

FIND = {"STUDY": StudyRootQueryRetrieveInformationModelFind,
        "PATIENT": PatientRootQueryRetrieveInformationModelFind}
MOVE = {"STUDY": StudyRootQueryRetrieveInformationModelMove,
        "PATIENT": PatientRootQueryRetrieveInformationModelMove}
GET = {"STUDY": StudyRootQueryRetrieveInformationModelGet,
       "PATIENT": PatientRootQueryRetrieveInformationModelGet}


def study(name: str, pid: str, date: str, modality: str = "CT", series: int = 1,
          per_series: int = 2, accession: str = "", time: str = "101500") -> list[Dataset]:
    """A study's instances: new UIDs, `series` series of `per_series` instances."""
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(per_series):
            out.append(fresh_ct(PatientName=name, PatientID=pid, StudyDate=date,
                                StudyTime=time, StudyInstanceUID=study_uid,
                                SeriesInstanceUID=series_uid, Modality=modality,
                                SeriesNumber=s + 1, InstanceNumber=i + 1,
                                AccessionNumber=accession or f"A{pid}",
                                StudyDescription=f"{modality} study of {name}"))
    return out


def send_all(port: int, datasets: list[Dataset], **kwargs) -> None:
    statuses = [int(r.Status) for r in send(port, datasets, **kwargs)]
    assert statuses == [0] * len(datasets), statuses


def ask(port: int, model: str = "STUDY", calling: str = "QUERIER",
        called: str = "DICOMTUI"):
    """An association offering FIND and MOVE in both models (caller releases it)."""
    ae = AE(ae_title=calling)
    for contexts in (FIND, MOVE):
        for sop in contexts.values():
            ae.add_requested_context(sop)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    return assoc


def find(port: int, model: str = "STUDY", **keys) -> tuple[int, list[Dataset]]:
    """One C-FIND: (final status, the matches)."""
    query = Dataset()
    for name, value in keys.items():
        setattr(query, name, value)
    assoc = ask(port)
    try:
        answers = list(parked(assoc).send_c_find(query, FIND[model]))
    finally:
        assoc.release()
    matches = [ds for status, ds in answers if status.Status in (0xFF00, 0xFF01)]
    return int(answers[-1][0].Status), matches


class StoreSCP:
    """A pynetdicom storage SCP on a free port: the C-MOVE destination of a test."""

    def __init__(self, port: int, ae_title: str = "DEST", refuse: bool = False) -> None:
        self.received: list[Dataset] = []
        self.refuse = refuse
        ae = AE(ae_title=ae_title)
        ae.supported_contexts = StoragePresentationContexts
        self.server = ae.start_server(("127.0.0.1", port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])
        self.port = port

    def _store(self, event) -> int:
        if self.refuse:
            return 0xA700
        self.received.append(event.dataset)
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


def move(port: int, destination: str, model: str = "STUDY", **keys):
    """One C-MOVE: the list of response status datasets (pending ones and the final)."""
    query = Dataset()
    for name, value in keys.items():
        setattr(query, name, value)
    assoc = ask(port)
    try:
        return [status for status, _ds in parked(assoc).send_c_move(query, destination,
                                                                      MOVE[model])]
    finally:
        assoc.release()


def get(port: int, model: str = "STUDY", **keys) -> tuple[list, list[Dataset]]:
    """One C-GET with our storage SCP role: (response statuses, datasets received)."""
    received: list[Dataset] = []

    def on_store(event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="GETTER")
    ae.add_requested_context(GET[model])
    roles = []
    for sop in (CTImageStorage, MRImageStorage):
        ae.add_requested_context(sop)
        roles.append(build_role(sop, scp_role=True))
    query = Dataset()
    for name, value in keys.items():
        setattr(query, name, value)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        statuses = [status for status, _ds in parked(assoc).send_c_get(query,
                                                                       GET[model])]
    finally:
        assoc.release()
    return statuses, received


def write_small_studies(root, count: int, prefix: str = "BULK") -> list[str]:
    """`count` one-instance studies written as real Part 10 files (no pixel data) under
    `root`, as a store would have left them; `reindex` indexes them. Study UIDs back."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for n in range(count):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.PatientName, ds.PatientID = f"{prefix}^{n:05d}", f"{prefix}{n}"
        ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = \
            "20240101", "OT", 1, 1
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(root / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        out.append(str(ds.StudyInstanceUID))
    return out
