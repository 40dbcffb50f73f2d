"""DICOM TLS: dcmtk's echoscu/storescu +tls against our TLS listener, our SCU (dicomtui
echo/send --tls) against storescp +tls; client certificates required when tls_ca_file
is set; failed handshakes recorded as refusals with their reason; certificates made
by the test (tls_certs.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from pynetdicom import AE

from conftest import cli_env, free_port, run_cli
from helpers import fresh_ct, stored_files
from test_abuse import wait_until
from tls_certs import make_certificates

VERIFICATION = "1.2.840.10008.1.1"
dcmtk = pytest.mark.skipif(shutil.which("echoscu") is None or shutil.which("storescp")
                           is None, reason="dcmtk is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_engine(make_engine, certs):
    """An engine with its plain listener and a TLS listener (no client certificate)."""
    def _make(**settings):
        engine = make_engine(**{"tls_port": str(free_port()),
                                "tls_cert_file": str(certs.server.cert),
                                "tls_key_file": str(certs.server.key), **settings})
        engine.tls_port = engine.listeners.tls_port
        return engine
    return _make


def tls_refusals(engine) -> list[dict]:
    engine.writer.flush()
    found = engine.txlog.query(types=["association"], outcomes=["refused"], limit=50)
    return [r for r in found if r.get("rule") == "tls"]


def dcmtk_tool(tool: str, port: int, *args: str, files: tuple[str, ...] = ()
               ) -> subprocess.CompletedProcess:
    return subprocess.run([tool, "-aec", "DICOMTUI", *args, "127.0.0.1", str(port), *files],
                          capture_output=True, text=True, timeout=60)


@dcmtk
def test_echoscu_over_tls_is_answered_beside_the_plain_listener(tls_engine, certs):
    engine = tls_engine()
    result = dcmtk_tool("echoscu", engine.tls_port, "+tla", "+cf", str(certs.ca))
    assert result.returncode == 0, result.stderr
    plain = dcmtk_tool("echoscu", engine.port)
    assert plain.returncode == 0, plain.stderr
    engine.writer.flush()
    echoes = engine.txlog.query(types=["echo"], limit=10)
    assert len(echoes) == 2 and all(e["status"] == 0 for e in echoes)


@dcmtk
def test_storescu_over_tls_with_a_client_certificate_stores(tls_engine, certs, tmp_path):
    engine = tls_engine(tls_ca_file=str(certs.ca))
    ds = fresh_ct()
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = dcmtk_tool("storescu", engine.tls_port, "+tls", str(certs.client.key),
                        str(certs.client.cert), "+cf", str(certs.ca), "-pw",
                        files=(str(path),))
    assert result.returncode == 0, result.stderr
    (stored,) = stored_files(engine.storage.root)
    assert stored.name == f"{ds.SOPInstanceUID}.dcm"


@dcmtk
@pytest.mark.parametrize("client", ["none", "stranger"])
def test_without_a_trusted_client_certificate_the_handshake_is_refused(tls_engine, certs,
                                                                        client):
    engine = tls_engine(tls_ca_file=str(certs.ca))
    who = (["+tla"] if client == "none" else
           ["+tls", str(certs.stranger.key), str(certs.stranger.cert), "-pw"])
    result = dcmtk_tool("echoscu", engine.tls_port, *who, "+cf", str(certs.ca))
    assert result.returncode != 0
    wait_until(lambda: tls_refusals(engine))
    (refusal,) = tls_refusals(engine)
    assert refusal["reason"].startswith("closed before association: TLS handshake failed")
    assert "CERTIFICATE" in refusal["reason"].upper()


def test_plain_dicom_on_the_tls_port_is_refused_with_its_reason(tls_engine):
    engine = tls_engine()
    ae = AE(ae_title="PLAINSCU")
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", engine.tls_port, ae_title="DICOMTUI")
    assert not assoc.is_established
    wait_until(lambda: tls_refusals(engine))
    assert "plain DICOM" in tls_refusals(engine)[0]["reason"]


def test_port_0_leaves_only_the_tls_listener(make_engine, certs):
    engine = make_engine(port="0", tls_port=str(free_port()),
                         tls_cert_file=str(certs.server.cert),
                         tls_key_file=str(certs.server.key))
    assert engine.port is None and engine.listeners.tls_port
    listeners = engine.snapshot("local").listeners
    assert [(lst.tls, lst.state) for lst in listeners] == [(True, "listening")]


def test_tls_without_a_certificate_does_not_start(make_engine, tmp_path):
    from dicomtui.service.engine import EngineError
    with pytest.raises(EngineError, match="tls_cert_file"):
        make_engine(tls_port=str(free_port()))


def test_a_key_file_others_can_read_draws_a_warning(tls_engine, certs, tmp_path):
    loose = tmp_path / "loose.key"
    loose.write_bytes(certs.server.key.read_bytes())
    os.chmod(loose, 0o644)
    engine = tls_engine(tls_key_file=str(loose))
    warnings = engine.snapshot("local").warnings
    assert any("tls_key_file" in w and "chmod 600" in w for w in warnings), warnings


def test_our_scu_speaks_tls_to_storescp(certs, tmp_path):
    if shutil.which("storescp") is None:
        pytest.skip("dcmtk is not installed (.ci/run installs it)")
    port, received = free_port(), tmp_path / "received"
    received.mkdir()
    scp = subprocess.Popen(["storescp", "-aet", "STORESCP", "+tls", str(certs.server.key),
                            str(certs.server.cert), "-pw", "+cf", str(certs.ca),
                            "-od", str(received), str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env = cli_env(tmp_path)
    tls = ["--tls", "--tls-ca", str(certs.ca), "--tls-cert", str(certs.client.cert),
           "--tls-key", str(certs.client.key)]
    try:
        echo = _retry(lambda: run_cli("echo", "127.0.0.1", str(port), "--aec", "STORESCP",
                                      *tls, env=env))
        assert echo.returncode == 0, echo.stderr
        assert "status 0x0000" in echo.stdout
        sent = run_cli("send", "127.0.0.1", str(port), "--aec", "STORESCP",
                       "--synthetic", "2", *tls, env=env)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: len(list(received.iterdir())) == 2)
        wrong = run_cli("echo", "127.0.0.1", str(port), "--aec", "STORESCP", "--tls",
                        "--tls-ca", str(certs.stranger_ca), env=env)
        assert wrong.returncode == 1 and "certificate" in wrong.stderr.lower()
    finally:
        scp.terminate()
        scp.wait(timeout=10)


def _retry(call, attempts: int = 50):
    """storescp takes a moment to listen: ask until it answers (or give its answer)."""
    for _ in range(attempts):
        result = call()
        if result.returncode == 0 or "cannot connect" not in result.stderr:
            return result
        time.sleep(0.1)
    return result


def test_status_and_config_show_tls(service, certs, tmp_path):
    tls_port = free_port()
    svc = service("--set", f"tls_port={tls_port}", "--set",
                  f"tls_cert_file={certs.server.cert}", "--set",
                  f"tls_key_file={certs.server.key}")
    status = json.loads(svc.cli("status", "--json").stdout)
    tls = [lst for lst in status["listeners"] if lst["tls"]]
    assert [(lst["port"], lst["state"]) for lst in tls] == [(tls_port, "listening")]
    text = svc.cli("status").stdout
    assert f":{tls_port}  listening" in text and "TLS" in text
    config = svc.cli("config").stdout
    for name in ("tls_port", "tls_cert_file", "tls_key_file", "tls_ca_file",
                 "handshake_timeout", "max_peer_connections"):
        assert name in config


def test_with_plain_dicom_off_a_facility_is_reached_over_tls_by_its_ae_title(make_engine,
                                                                             certs):
    from dicomtui.service.receiving.tls import client_context
    engine = make_engine(port="0", tls_port=str(free_port()),
                         tls_cert_file=str(certs.server.cert),
                         tls_key_file=str(certs.server.key))
    site = engine.sites.add_facility("Main Hospital", port=free_port())
    (listed,) = engine.sites.facility_list()
    assert listed.listener == "error" and "plain DICOM is off" in listed.error
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", engine.listeners.tls_port, ae_title=site.ae_title,
                         tls_args=(client_context(str(certs.ca)), "127.0.0.1"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    engine.writer.flush()
    (echo,) = engine.txlog.query(types=["echo"], limit=5)
    assert echo["facility"] == "Main Hospital"
