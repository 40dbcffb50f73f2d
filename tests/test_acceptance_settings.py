"""services, sop_classes and transfer_syntaxes: applied to the next association without
a restart, refused contexts answered at association time and logged with the reason."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (CTImageStorage, MRImageStorage,
                                  PatientRootQueryRetrieveInformationModelGet,
                                  PatientRootQueryRetrieveInformationModelMove,
                                  StudyRootQueryRetrieveInformationModelFind,
                                  StudyRootQueryRetrieveInformationModelGet,
                                  StudyRootQueryRetrieveInformationModelMove, Verification)

from archive_helpers import get, send_all, study
from conftest import cli_env, run_cli
from helpers import eventually, fresh_ct, parked, stored_files

ABSTRACT_SYNTAX_NOT_SUPPORTED = 0x03
TRANSFER_SYNTAXES_NOT_SUPPORTED = 0x04


def _associate(port: int, *contexts: tuple[str, list[str]]):
    ae = AE(ae_title="PICKY")
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    assert assoc.is_established
    return assoc


def _results(assoc) -> dict[str, int]:
    """Abstract syntax -> result of its context (0 accepted)."""
    out = {str(cx.abstract_syntax): 0 for cx in assoc.accepted_contexts}
    out.update({str(cx.abstract_syntax): cx.result for cx in assoc.rejected_contexts})
    return out


def _context_refusals(engine) -> list[dict]:
    engine.writer.flush()
    return [r for r in engine.txlog.query(limit=100, types=["association"])
            if r.get("contexts")]


DEFAULT = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def test_store_off_refuses_storage_contexts_live_and_logs_why(engine):
    engine.set_setting("services", "echo,find,move,get")
    assoc = _associate(engine.port, (Verification, DEFAULT), (CTImageStorage, DEFAULT))
    try:
        assert _results(assoc) == {Verification: 0,
                                   CTImageStorage: ABSTRACT_SYNTAX_NOT_SUPPORTED}
        assert parked(assoc).send_c_echo().Status == 0
    finally:
        assoc.release()
    (rec,) = _context_refusals(engine)
    assert rec["outcome"] == "warning" and rec["rule"] == "services"
    assert rec["calling_ae"] == "PICKY"
    assert rec["contexts"] == ["CT Image Storage: service disabled (services: store)"]
    assert "refused 1 of 2" in rec["reason"]

    engine.set_setting("services", "all")  # no restart: the next association stores
    send_all(engine.port, [fresh_ct()])
    assert len(stored_files(engine.storage.root)) == 1


def test_find_off_refuses_the_find_context(engine):
    engine.set_setting("services", "echo,store")
    assoc = _associate(engine.port, (StudyRootQueryRetrieveInformationModelFind, DEFAULT),
                       (Verification, DEFAULT))
    try:
        assert _results(assoc) == {
            StudyRootQueryRetrieveInformationModelFind: ABSTRACT_SYNTAX_NOT_SUPPORTED,
            Verification: 0}
    finally:
        assoc.release()
    (rec,) = _context_refusals(engine)
    assert rec["outcome"] == "warning"
    assert rec["contexts"] == [
        "Study Root Query/Retrieve Information Model - FIND: service disabled "
        "(services: find)"]


@pytest.mark.parametrize(("off", "models"), [
    ("move", (StudyRootQueryRetrieveInformationModelMove,
              PatientRootQueryRetrieveInformationModelMove)),
    ("get", (StudyRootQueryRetrieveInformationModelGet,
             PatientRootQueryRetrieveInformationModelGet)),
])
def test_move_and_get_off_refuse_both_models(engine, off, models):
    engine.set_setting("services", ",".join(
        s for s in ("echo", "store", "find", "move", "get") if s != off))
    assoc = _associate(engine.port, *((m, DEFAULT) for m in models),
                       (StudyRootQueryRetrieveInformationModelFind, DEFAULT))
    try:
        assert _results(assoc) == {**{m: ABSTRACT_SYNTAX_NOT_SUPPORTED for m in models},
                                   StudyRootQueryRetrieveInformationModelFind: 0}
    finally:
        assoc.release()
    (rec,) = _context_refusals(engine)
    assert all(f"service disabled (services: {off})" in c for c in rec["contexts"])


def test_sop_classes_restricts_storage_classes(engine):
    engine.set_setting("sop_classes", "CT Image Storage")
    assoc = _associate(engine.port, (CTImageStorage, DEFAULT), (MRImageStorage, DEFAULT),
                       (Verification, DEFAULT))
    try:
        assert _results(assoc) == {CTImageStorage: 0, Verification: 0,
                                   MRImageStorage: ABSTRACT_SYNTAX_NOT_SUPPORTED}
        assert parked(assoc).send_c_store(fresh_ct()).Status == 0
    finally:
        assoc.release()
    (rec,) = _context_refusals(engine)
    assert rec["rule"] == "sop_classes"
    assert rec["contexts"] == ["MR Image Storage: SOP class not accepted here (sop_classes)"]


def test_transfer_syntaxes_restricts_what_storage_contexts_accept(engine):
    engine.set_setting("transfer_syntaxes", "ExplicitVRLittleEndian")
    assoc = _associate(engine.port, (CTImageStorage, [ImplicitVRLittleEndian]),
                       (Verification, DEFAULT))
    try:
        assert _results(assoc) == {CTImageStorage: TRANSFER_SYNTAXES_NOT_SUPPORTED,
                                   Verification: 0}
    finally:
        assoc.release()
    (rec,) = _context_refusals(engine)
    assert rec["rule"] == "transfer_syntaxes"
    assert "no proposed transfer syntax accepted here" in rec["contexts"][0]
    assoc = _associate(engine.port, (CTImageStorage, [ImplicitVRLittleEndian,
                                                      ExplicitVRLittleEndian]))
    try:
        (cx,) = assoc.accepted_contexts
        assert cx.transfer_syntax[0] == ExplicitVRLittleEndian
    finally:
        assoc.release()


def test_a_store_after_the_settings_changed_is_refused_with_a_reason(engine):
    """An association negotiated before the change is held to it from then on."""
    assoc = _associate(engine.port, (CTImageStorage, DEFAULT))
    try:
        engine.set_setting("sop_classes", "MRImageStorage")
        reply = parked(assoc).send_c_store(fresh_ct())
    finally:
        assoc.release()
    assert reply.Status == 0x0122
    assert reply.ErrorComment == "SOP class not accepted here (sop_classes)"
    assert stored_files(engine.storage.root) == []


def test_nothing_left_is_a_refusal(engine):
    """pynetdicom's requestor aborts when no context is accepted; the record says
    refused, the peer had its answer in the A-ASSOCIATE-AC."""
    engine.set_setting("services", "none")
    ae = AE(ae_title="PICKY")
    ae.add_requested_context(Verification)
    assert not ae.associate("127.0.0.1", engine.port, ae_title="DICOMTUI").is_established
    (rec,) = eventually(lambda: _context_refusals(engine), what="the refusal logged")
    assert rec["outcome"] == "refused" and rec["rule"] == "services"
    assert rec["contexts"] == ["Verification SOP Class: service disabled (services: echo)"]


def test_c_get_still_delivers_with_store_off(engine):
    """A C-GET requester's storage contexts (it takes the SCP role) belong to get."""
    instances = study("GET^ONLY", "G1", "20240101")
    send_all(engine.port, instances)
    engine.set_setting("services", "get")
    statuses, received = get(engine.port, QueryRetrieveLevel="STUDY",
                             StudyInstanceUID=instances[0].StudyInstanceUID)
    assert statuses[-1].Status == 0x0000
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(
        ds.SOPInstanceUID for ds in instances)
    with pytest.raises(AssertionError, match="not accepted"):
        send_all(engine.port, [fresh_ct()])  # and nobody may store


@pytest.mark.parametrize(("name", "value", "says"), [
    ("services", "echo,print", "'print' is not a service"),
    ("sop_classes", "CTImageStorage, FooStorage",
     "'FooStorage' is not a storage SOP class this receiver knows"),
    ("transfer_syntaxes", "1.2.3.4", "'1.2.3.4' is not a transfer syntax"),
])
def test_config_set_rejects_unknown_names(tmp_path, name, value, says):
    done = run_cli("--data-dir", str(tmp_path / "d"), "config", "set", name, value,
                   env=cli_env(tmp_path))
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_config_set_accepts_names_keywords_and_uids(tmp_path):
    data = str(tmp_path / "d")
    done = run_cli("--data-dir", data, "config", "set", "sop_classes",
                   "ct image storage, MRImageStorage, 1.2.840.10008.5.1.4.1.1.7",
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    shown = run_cli("--data-dir", data, "config", env=cli_env(tmp_path)).stdout
    assert "sop_classes" in shown and "MRImageStorage" in shown
