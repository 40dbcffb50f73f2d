"""Access control at association request: allowed callers, IP allow-list, called AE
check; refused with the PS3.8 A-ASSOCIATE-RJ reasons, logged with the rule."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import free_port
from pynetdicom import AE

from dicomtui.models import AllowedCaller
from dicomtui.service.sites.access import AccessPolicy, CallerError, check
from helpers import eventually, fresh_ct

VERIFICATION = "1.2.840.10008.1.1"
dcmtk = pytest.mark.skipif(shutil.which("echoscu") is None or shutil.which("storescu")
                           is None, reason="dcmtk is not installed (.ci/run installs it)")


def associate(port: int, calling: str, called: str = "DICOMTUI"):
    """The association attempt, released if it was accepted."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if assoc.is_established:
        assoc.release()
    return assoc


def rejection(assoc) -> tuple[int, int, int] | None:
    """(result, source, diagnostic) of the A-ASSOCIATE-RJ the peer received."""
    if not assoc.is_rejected:
        return None
    rj = assoc.acceptor.primitive
    return rj.result, rj.result_source, rj.diagnostic


def refusals(engine) -> list[dict]:
    engine.writer.flush()
    return engine.txlog.query(types=["association"], outcomes=["refused"], limit=100)


# -- the rules, pure ----------------------------------------------------------------------
def policy(**kw) -> AccessPolicy:
    return AccessPolicy(**{"our_aes": frozenset({"DICOMTUI"}), **kw})


def test_rules_in_order_with_their_reject_reasons():
    ct1 = AllowedCaller("CT1", ip="10.1.2.0/24")
    old = AllowedCaller("OLD", active=False)
    callers = {"CT1": ct1, "OLD": old}
    assert check(policy(), "ANY", "ANYTHING", "127.0.0.1") is None
    from dicomtui.settings import parse_networks
    nets = tuple(parse_networks("10.0.0.0/8"))
    assert check(policy(networks=nets), "CT1", "DICOMTUI", "192.168.1.1").rule == "allowed_ips"
    denied = check(policy(callers=callers), "OLD", "DICOMTUI", "10.1.2.3")
    assert (denied.rule, denied.diagnostic) == ("denied", 3)
    required = check(policy(require_calling_ae=True, callers=callers), "CT9", "DICOMTUI",
                     "10.1.2.3")
    assert (required.rule, required.result, required.source, required.diagnostic) == (
        "require_calling_ae", 1, 1, 3)
    assert check(policy(require_calling_ae=True, callers=callers), "CT1", "DICOMTUI",
                 "10.1.2.3") is None
    wrong_ip = check(policy(callers=callers), "CT1", "DICOMTUI", "10.9.9.9")
    assert wrong_ip.rule == "caller_ip" and "10.1.2.0/24" in wrong_ip.reason
    called = check(policy(check_called_ae=True), "CT1X", "NOTOURS", "10.1.2.3")
    assert (called.rule, called.diagnostic) == ("check_called_ae", 7)


# -- with real associations ---------------------------------------------------------------
def test_require_calling_ae_refuses_strangers_and_logs_why(make_engine):
    engine = make_engine(require_calling_ae="true")
    engine.sites.allow_caller("CT1", description="CT room 1")
    assert rejection(associate(engine.port, "CT1")) is None
    stranger = associate(engine.port, "STRANGER")
    assert rejection(stranger) == (1, 1, 3)  # permanent, service user, calling AE
    (refused,) = refusals(engine)
    assert (refused["calling_ae"], refused["called_ae"], refused["rule"]) == (
        "STRANGER", "DICOMTUI", "require_calling_ae")
    assert refused["peer"].startswith("127.0.0.1:") and "calling AE title" in \
        refused["reason"]
    assert engine.snapshot("local").counters.refused == 1

    def accepted():  # recorded as the association's thread ends, after its release
        engine.writer.flush()
        return engine.txlog.query(types=["association"], outcomes=["ok"])
    assert [r["calling_ae"] for r in eventually(accepted, what="CT1's association")] == [
        "CT1"]


def test_denied_inactive_and_ip_bound_callers(make_engine):
    engine = make_engine()
    engine.sites.allow_caller("OLD_US", active=False)
    engine.sites.allow_caller("CT_FAR", ip="10.20.0.0/16")
    engine.sites.allow_caller("CT_NEAR", ip="127.0.0.1")
    assert rejection(associate(engine.port, "OLD_US")) == (1, 1, 3)
    assert rejection(associate(engine.port, "CT_FAR")) == (1, 1, 3)
    assert rejection(associate(engine.port, "CT_NEAR")) is None
    assert rejection(associate(engine.port, "ANYONE")) is None  # require is off
    rules = {r["calling_ae"]: r["rule"] for r in refusals(engine)}
    assert rules == {"OLD_US": "denied", "CT_FAR": "caller_ip"}
    engine.sites.allow_caller("OLD_US")  # re-allowed, live
    assert rejection(associate(engine.port, "OLD_US")) is None


def test_allowed_ips_and_called_ae_checks_apply_live(make_engine):
    engine = make_engine()
    engine.set_setting("allowed_ips", "10.0.0.0/8")
    outside = associate(engine.port, "CT1")  # closed at accept: no A-ASSOCIATE-RJ
    assert not outside.is_established and rejection(outside) is None
    engine.set_setting("allowed_ips", "10.0.0.0/8, 127.0.0.0/8")
    assert rejection(associate(engine.port, "CT1")) is None
    engine.set_setting("check_called_ae", "true")
    assert rejection(associate(engine.port, "CT1", called="SOMEONEELSE")) == (1, 1, 7)
    site = engine.sites.add_facility("Main Hospital", port=free_port())
    assert rejection(associate(site.port, "CT1", called="MAINHOSPITAL")) is None
    assert rejection(associate(engine.port, "CT1", called="MAINHOSPITAL")) is None
    assert rejection(associate(site.port, "CT1", called="DICOMTUI")) is None
    assert rejection(associate(site.port, "CT1", called="NOPE")) == (1, 1, 7)
    rules = [r["rule"] for r in refusals(engine)]
    assert sorted(rules) == ["allowed_ips", "check_called_ae", "check_called_ae"]
    nope = next(r for r in refusals(engine) if r["called_ae"] == "NOPE")
    assert nope["facility"] == "Main Hospital"


def test_caller_list_rules_and_persistence(make_engine, tmp_path):
    engine = make_engine(data_dir=tmp_path / "callers")
    with pytest.raises(CallerError, match="backslash"):
        engine.sites.allow_caller("BAD\\AE")
    with pytest.raises(CallerError, match="not an IP address"):
        engine.sites.allow_caller("CT1", ip="10.0.0.300")
    engine.sites.allow_caller("CT1", ip="10.1.2.3", description="CT room 1")
    engine.sites.allow_caller("CT1", description="CT room one")  # ip kept
    engine.sites.allow_caller("OLD", active=False)
    engine.close()
    again = make_engine(data_dir=tmp_path / "callers")
    assert [(c.ae_title, c.ip, c.description, c.active) for c in again.sites.caller_list()] == [
        ("CT1", "10.1.2.3/32", "CT room one", True), ("OLD", "", "", False)]


# -- dcmtk as the peer --------------------------------------------------------------------
def _echoscu(port: int, calling: str, called: str = "DICOMTUI"):
    return subprocess.run(["echoscu", "-aet", calling, "-aec", called, "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=30)


@dcmtk
def test_dcmtk_echoscu_accepted_or_refused_per_policy_on_main_and_facility_ports(
        make_engine):
    engine = make_engine(require_calling_ae="true", check_called_ae="true")
    site = engine.sites.add_facility("St. Mary's Clinic", port=free_port())
    engine.sites.allow_caller("MODALITY1")
    for port, called in ((engine.port, "DICOMTUI"), (site.port, "STMARYSCLINIC")):
        ok = _echoscu(port, "MODALITY1", called)
        assert ok.returncode == 0, ok.stderr
        stranger = _echoscu(port, "STRANGER", called)
        assert stranger.returncode != 0
        assert "Calling AE Title Not Recognized" in stranger.stderr + stranger.stdout
        wrong_called = _echoscu(port, "MODALITY1", "WHOEVER")
        assert "Called AE Title Not Recognized" in wrong_called.stderr + wrong_called.stdout
    found = sorted((r["rule"], r["facility"]) for r in refusals(engine))
    assert found == [("check_called_ae", "St. Mary's Clinic"), ("check_called_ae",
                                                                "unknown"),
                     ("require_calling_ae", "St. Mary's Clinic"),
                     ("require_calling_ae", "unknown")]


@dcmtk
def test_dcmtk_storescu_to_a_facility_port_with_and_without_permission(make_engine,
                                                                      tmp_path):
    engine = make_engine(require_calling_ae="true", layout="facility/series")
    site = engine.sites.add_facility("Main Hospital", port=free_port())
    path = tmp_path / "ct.dcm"
    fresh_ct().save_as(path, enforce_file_format=True)

    def storescu(calling: str):
        return subprocess.run(["storescu", "-aet", calling, "-aec", site.ae_title,
                               "127.0.0.1", str(site.port), str(path)],
                              capture_output=True, text=True, timeout=60)

    refused = storescu("CT_NEW")
    assert refused.returncode != 0 and not list(engine.storage.root.rglob("*.dcm"))
    engine.sites.allow_caller("CT_NEW")
    stored = storescu("CT_NEW")
    assert stored.returncode == 0, stored.stderr
    (dcm,) = engine.storage.root.rglob("*.dcm")
    assert dcm.relative_to(engine.storage.root).parts[0] == "Main_Hospital"
    engine.writer.flush()
    (store,) = engine.txlog.query(types=["store"])
    assert (store["facility"], store["calling_ae"]) == ("Main Hospital", "CT_NEW")


def test_ae_verbs_through_a_running_service_apply_at_once(service):
    svc = service()
    on = svc.cli("config", "set", "require_calling_ae", "true")
    assert on.returncode == 0, on.stderr
    assert rejection(associate(svc.port, "CT_LIVE")) == (1, 1, 3)
    allowed = svc.cli("ae", "allow", "CT_LIVE", "--ip", "127.0.0.1", "--description",
                      "CT room 3")
    assert allowed.returncode == 0 and "allowed from 127.0.0.1/32" in allowed.stdout
    assert rejection(associate(svc.port, "CT_LIVE")) is None
    listing = svc.cli("ae", "list")
    assert "CT_LIVE" in listing.stdout and "require_calling_ae is on" in listing.stdout
    assert svc.cli("ae", "deny", "CT_LIVE").returncode == 0
    assert rejection(associate(svc.port, "CT_LIVE")) == (1, 1, 3)
    missing = svc.cli("ae", "remove", "NOBODY")
    assert missing.returncode == 1 and "no allowed caller 'NOBODY'" in missing.stderr
    bad = svc.cli("ae", "allow", "CT2", "--ip", "not-an-ip")
    assert bad.returncode == 2 and "not an IP address" in bad.stderr
    def refused_rules():  # the transaction log is written once a second
        log = svc.cli("log", "--status", "refused", "--json")
        rules = [json.loads(line)["rule"] for line in log.stdout.splitlines()]
        return rules if len(rules) >= 2 else None

    assert eventually(refused_rules, what="both refusals logged") == [
        "require_calling_ae", "denied"]


def test_editing_a_caller_keeps_it_allowed_or_denied(engine):
    from dicomtui.service.sites.access import CallerMissing
    engine.sites.allow_caller("CT_EDIT", "10.0.0.0/8", "old")
    engine.sites.allow_caller("US_DENIED", None, None, active=False)
    edited = engine.sites.update_caller("US_DENIED", ip="192.168.1.0/24", description="cart")
    assert (edited.active, edited.ip, edited.description) == (False, "192.168.1.0/24",
                                                              "cart")
    assert engine.sites.update_caller("CT_EDIT", description="CT room 1").active
    assert engine.sites.update_caller("CT_EDIT").ip == "10.0.0.0/8"  # None keeps
    with pytest.raises(CallerMissing):
        engine.sites.update_caller("NOBODY", ip="")
    assert "NOBODY" not in {c.ae_title for c in engine.sites.caller_list()}
