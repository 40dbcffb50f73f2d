"""Facilities end to end: a listener per facility, live add/remove, recognition, the
facility on transactions and in the layout, persistence, and the CLI."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from conftest import cli_env, free_port, run_cli, wait_for_echo
from pynetdicom import AE

from dicomtui.service.sites.facilities import FacilityError
from helpers import fresh_ct, parked, send, stored_files

VERIFICATION = "1.2.840.10008.1.1"


def echo(port: int, called: str = "DICOMTUI", calling: str = "TESTSCU"):
    """(established?, the association) for one C-ECHO attempt."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    established = assoc.is_established
    if established:
        parked(assoc).send_c_echo()
        assoc.release()
    return established, assoc


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def records(engine, **flt):
    engine.writer.flush()
    return engine.txlog.query(limit=500, **flt)


def test_each_facility_listens_on_its_own_port_and_is_recorded(make_engine):
    engine = make_engine()
    port = free_port()
    made = engine.sites.add_facility("Main Hospital", port=port)
    assert (made.ae_title, made.port, made.listener) == ("MAINHOSPITAL", port, "listening")
    assert echo(port, called="MAINHOSPITAL", calling="CT1")[0]
    send(port, [fresh_ct()], called="MAINHOSPITAL", calling="CT1")
    assert echo(engine.port, calling="OTHER")[0]
    (store,) = records(engine, types=["store"])
    assert store["facility"] == "Main Hospital"
    by_calling = {r["calling_ae"]: r["facility"] for r in records(engine, types=["echo"])}
    assert by_calling == {"CT1": "Main Hospital", "OTHER": "unknown"}
    (listed,) = engine.sites.facility_list()
    assert (listed.instances_today, listed.studies_today) == (1, 1) and listed.last_seen
    assert [lst.name for lst in engine.snapshot("local").listeners] == ["main",
                                                                        "Main Hospital"]


def test_recognised_by_called_ae_then_by_registered_calling_ae(make_engine):
    engine = make_engine()
    engine.sites.add_facility("Main Hospital", port=free_port())
    engine.sites.add_facility("St. Mary's Clinic", port=free_port(), calling_aes=["MR_ST_MARY"])
    assert echo(engine.port, called="MAINHOSPITAL", calling="X1")[0]
    assert echo(engine.port, called="DICOMTUI", calling="MR_ST_MARY")[0]
    assert echo(engine.port, called="DICOMTUI", calling="NOBODY")[0]
    found = {r["calling_ae"]: r["facility"] for r in records(engine, types=["echo"])}
    assert found == {"X1": "Main Hospital", "MR_ST_MARY": "St. Mary's Clinic",
                     "NOBODY": "unknown"}


def test_adding_and_removing_a_facility_while_another_port_receives(make_engine):
    engine = make_engine()
    keeper = engine.sites.add_facility("Keeper", port=free_port())
    items = [fresh_ct() for _ in range(60)]
    answers: list = []
    sender = threading.Thread(target=lambda: answers.extend(
        send(keeper.port, items, called=keeper.ae_title, calling="BUSYCT")))
    sender.start()
    ports = []
    for n in range(4):  # churn facilities while the transfer runs
        port = free_port()
        ports.append(port)
        engine.sites.add_facility(f"Churn {n}", port=port)
        assert echo(port, called="X", calling="CHURN")[0]
        engine.sites.remove_facility(f"Churn {n}")
    sender.join(60)
    assert [a.Status for a in answers] == [0] * len(items)
    assert len(stored_files(engine.storage.root)) == len(items)
    assert all(refused(port) for port in ports)
    assert echo(keeper.port)[0] and echo(engine.port)[0]
    closed = records(engine, types=["association"])
    assert not [r for r in closed if r["calling_ae"] == "BUSYCT" and r["outcome"] != "ok"]


def test_removing_a_facility_lets_its_running_association_finish(make_engine):
    engine = make_engine()
    doomed = engine.sites.add_facility("Doomed", port=free_port())
    ae = AE(ae_title="LATE")
    ds = fresh_ct()
    ae.add_requested_context(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate("127.0.0.1", doomed.port, ae_title=doomed.ae_title)
    assert assoc.is_established
    engine.sites.remove_facility("Doomed")
    assert refused(doomed.port)
    assert parked(assoc).send_c_store(ds).Status == 0  # the open association goes on
    assoc.release()
    assert len(stored_files(engine.storage.root)) == 1


def test_facility_layout_puts_each_facility_in_its_own_folder(make_engine):
    engine = make_engine(layout="facility/study")
    site = engine.sites.add_facility("St. Mary's Clinic", port=free_port())
    first, second = fresh_ct(), fresh_ct()
    send(site.port, [first], called=site.ae_title)
    send(engine.port, [second])
    root = engine.storage.root
    tops = {f.relative_to(root).parts[0]: f for f in stored_files(root)}
    assert set(tops) == {"St._Mary_s_Clinic", "unknown"}
    assert first.SOPInstanceUID in tops["St._Mary_s_Clinic"].name


def test_rules_refuse_bad_facilities_with_clear_messages(make_engine):
    engine = make_engine()
    engine.sites.add_facility("Main Hospital", port=free_port())
    with pytest.raises(FacilityError, match="already exists"):
        engine.sites.add_facility("main hospital")
    with pytest.raises(FacilityError, match="must not be empty"):
        engine.sites.add_facility("  ")
    with pytest.raises(FacilityError, match="main listener"):
        engine.sites.add_facility("Clash", port=engine.port)
    with pytest.raises(FacilityError, match="already used by facility"):
        engine.sites.add_facility("Twin", ae_title="MAINHOSPITAL")
    with pytest.raises(FacilityError, match="receiver's own"):
        engine.sites.add_facility("Self", ae_title="DICOMTUI")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(FacilityError, match="in use on this host"):
            engine.sites.add_facility("Busy", port=busy.getsockname()[1])
    with pytest.raises(FacilityError, match="reserved"):
        engine.sites.add_facility("Unknown")
    assert [f.name for f in engine.sites.facility_list()] == ["Main Hospital"]
    second = engine.sites.add_facility("Main-Hospital", port=free_port())
    assert second.ae_title == "MAINHOSPITAL2"


# it holds 11113 and 11114 while the others in this group take the next free port from
# 11113: run together, they could take each other's ports
@pytest.mark.xdist_group("facility-ports")
def test_next_free_port_skips_ports_in_use_on_the_host(make_engine):
    engine = make_engine()
    holders = []
    try:
        for port in (11113, 11114):
            sock = socket.socket()
            # as a listener binds: connections an earlier test left in TIME_WAIT on the
            # port (the tests of this group use it) do not stop it, another listener does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                holders.append(sock)
            except OSError:
                sock.close()  # another program (another test run?) listens there
        assert holders, "11113 and 11114 are both taken: nothing to test with"
        held = {sock.getsockname()[1] for sock in holders}
        made = engine.sites.add_facility("Auto Port")
        assert made.port not in held and made.port >= 11113  # the ports held are skipped
        assert made.listener == "listening"
    finally:
        for sock in holders:
            sock.close()


def test_facilities_persist_and_listen_again_after_a_restart(make_engine, tmp_path):
    data = tmp_path / "persist"
    engine = make_engine(data_dir=data)
    port = free_port()
    engine.sites.add_facility("Main Hospital", port=port, calling_aes=["CT1"])
    engine.close()
    assert refused(port)
    again = make_engine(data_dir=data)
    (facility,) = again.sites.facility_list()
    assert (facility.name, facility.port, facility.calling_aes) == ("Main Hospital", port,
                                                                    ["CT1"])
    wait_for_echo(port, ae_title="MAINHOSPITAL")


# its listener takes the next free port from 11113, as do the others in this group: run
# together, two could pick the same port between the check and the bind
@pytest.mark.xdist_group("facility-ports")
def test_auto_create_makes_a_facility_for_an_unknown_caller(make_engine):
    engine = make_engine(auto_create_facilities="true")
    assert echo(engine.port, calling="MOBILE_CT7")[0]
    (made,) = engine.sites.facility_list()
    assert made.name == "MOBILE_CT7" and made.auto_created and made.ae_title == "MOBILECT7"
    assert made.calling_aes == ["MOBILE_CT7"] and made.listener == "listening"
    assert echo(engine.port, calling="MOBILE_CT7")[0]  # recognised, not created again
    assert len(engine.sites.facility_list()) == 1
    found = [r["facility"] for r in records(engine, types=["echo"])]
    assert found == ["MOBILE_CT7", "MOBILE_CT7"]
    assert any("created automatically" in e.message
               for e in engine.ring.since(0, 1000).events)


# its listener takes the next free port from 11113, as do the others in this group: run
# together, two could pick the same port between the check and the bind
@pytest.mark.xdist_group("facility-ports")
def test_auto_create_stops_at_its_limit(make_engine, monkeypatch):
    from dicomtui.service.sites import sites
    monkeypatch.setattr(sites, "AUTO_CREATE_LIMIT", 2)
    engine = make_engine(auto_create_facilities="true")
    for calling in ("AUTO1", "AUTO2", "AUTO3"):
        assert echo(engine.port, calling=calling)[0]  # accepted either way
    assert [f.name for f in engine.sites.facility_list()] == ["AUTO1", "AUTO2"]
    found = {r["calling_ae"]: r["facility"] for r in records(engine, types=["echo"])}
    assert found["AUTO3"] == "unknown"


def test_cli_facility_add_list_config_remove(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    env = cli_env(tmp_path)
    port = free_port()
    added = run_cli("facility", "add", "St. Mary's Clinic", "--port", str(port), *data,
                    env=env)
    assert added.returncode == 0, added.stderr
    assert "AE title STMARYSCLINIC" in added.stdout and "Configuration for remote PACS" \
        in added.stdout
    generated = run_cli("facility", "add", "Hospital Regional de São Paulo", *data, env=env)
    assert "HOSPITALREGIONAL" in generated.stdout
    listed = json.loads(run_cli("facility", "list", "--json", *data, env=env).stdout)
    assert {f["ae_title"] for f in listed} == {"STMARYSCLINIC", "HOSPITALREGIONAL"}
    config = run_cli("facility", "config", "St. Mary's Clinic", *data, env=env)
    assert config.returncode == 0 and "AE Title: STMARYSCLINIC" in config.stdout
    assert f"Port:     {port}" in config.stdout and "Main receiver" not in config.stdout
    empty = run_cli("facility", "add", "", *data, env=env)
    assert empty.returncode == 2 and "must not be empty" in empty.stderr
    missing = run_cli("facility", "remove", "Nowhere", *data, env=env)
    assert missing.returncode == 1 and "no facility named 'Nowhere'" in missing.stderr
    gone = run_cli("facility", "remove", "St. Mary's Clinic", *data, env=env)
    assert gone.returncode == 0 and "no longer listens" in gone.stdout
    left = json.loads(run_cli("facility", "list", "--json", *data, env=env).stdout)
    assert [f["name"] for f in left] == ["Hospital Regional de São Paulo"]


def test_a_running_service_starts_and_stops_facility_listeners_live(service):
    svc = service()
    port = free_port()
    added = svc.cli("facility", "add", "Main Hospital", "--port", str(port))
    assert added.returncode == 0 and "listening now" in added.stdout, added.stderr
    wait_for_echo(port, ae_title="MAINHOSPITAL")
    status = json.loads(svc.cli("status", "--json").stdout)
    assert {(lst["name"], lst["state"]) for lst in status["listeners"]} == {
        ("main", "listening"), ("Main Hospital", "listening")}
    moved = free_port()
    edited = svc.cli("facility", "edit", "Main Hospital", "--port", str(moved))
    assert edited.returncode == 0, edited.stderr
    wait_for_echo(moved, ae_title="MAINHOSPITAL")
    assert refused(port)
    assert svc.cli("facility", "remove", "Main Hospital").returncode == 0
    assert refused(moved)
    wait_for_echo(svc.port)  # the main listener never stopped
    assert svc.cli("facility", "remove", "Main Hospital").returncode == 1
    odd = svc.cli("facility", "add", "X-Ray/CT 2 (East)", "--port", str(free_port()))
    assert odd.returncode == 0 and "AE title XRAYCT2EAST" in odd.stdout, odd.stderr
    assert svc.cli("facility", "remove", "x-ray/ct 2 (east)").returncode == 0


def test_a_malformed_saved_facility_keeps_the_receiver_stopped_and_is_kept(tmp_path):
    """An access list that cannot be read fails closed: a lost entry could open a
    door. The entry is kept as it was, through later saves, until someone fixes it."""
    from dicomtui.service.engine import Engine, EngineError
    data = tmp_path / "bad"
    data.mkdir()
    broken = {"name": "Broken", "port": "not a number"}
    (data / "dicomtui.json").write_text(json.dumps({"facilities": {
        "1": {"name": "Good", "ae_title": "GOOD", "port": free_port()}, "2": broken}}))
    engine = Engine(data, {"host": "127.0.0.1", "port": str(free_port())}, environ={})
    try:
        assert [f.name for f in engine.sites.facility_list()] == ["Good"]
        with pytest.raises(EngineError, match="cannot be read.*Broken"):
            engine.start()
        status = engine.snapshot("local")
        assert status.state == "error" and "does not start" in status.error
        assert any("Broken" in w for w in status.warnings)
        engine.sites.add_facility("Other", port=free_port())  # a save keeps it
    finally:
        engine.close()
    saved = json.loads((data / "dicomtui.json").read_text())["facilities"].values()
    assert broken in list(saved)


def test_todays_counts_per_facility_survive_a_restart(make_engine, tmp_path):
    data = tmp_path / "counts"
    engine = make_engine(data_dir=data)
    site = engine.sites.add_facility("Main Hospital", port=free_port())
    study = fresh_ct()
    same_study = fresh_ct(StudyInstanceUID=study.StudyInstanceUID)
    send(site.port, [study, same_study, fresh_ct()], called=site.ae_title)
    engine.close()
    again = make_engine(data_dir=data)
    (facility,) = again.sites.facility_list()
    assert (facility.instances_today, facility.studies_today) == (3, 2)
    assert facility.last_seen
