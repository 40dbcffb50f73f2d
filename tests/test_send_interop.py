"""`dicomtui send` with peers that accept only some transfer syntaxes: each syntax is
proposed in a context of its own, files go as stored when the peer accepts their
syntax, else decompressed; what cannot go fails alone, with a reason, never a
traceback (issue J, item 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless)
from pynetdicom import AE, evt
from pynetdicom.sop_class import (CTImageStorage, MRImageStorage,
                                  SecondaryCaptureImageStorage)

from conftest import cli_env, free_port, run_cli

LE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


class Peer:
    """A pynetdicom storage SCP accepting the given classes in the given syntaxes; it
    keeps what it received: the syntax of the context and the dataset's raw bytes."""

    def __init__(self, syntaxes=LE, classes=(CTImageStorage, MRImageStorage,
                                             SecondaryCaptureImageStorage)) -> None:
        self.received: list[tuple[str, bytes, object]] = []
        ae = AE(ae_title="PEER")
        for sop_class in classes:
            ae.add_supported_context(sop_class, list(syntaxes))
        self.port = free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event) -> int:
        raw = event.request.DataSet.getvalue()
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received.append((str(event.context.transfer_syntax), raw, ds))
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def peer():
    made = []

    def _make(*args, **kwargs) -> Peer:
        made.append(Peer(*args, **kwargs))
        return made[-1]

    yield _make
    for p in made:
        p.close()


def _send(tmp_path, port, *paths):
    return run_cli("send", "127.0.0.1", str(port), *map(str, paths), "--aec", "PEER",
                   env=cli_env(tmp_path))


def test_a_folder_with_jpeg_goes_to_a_peer_that_accepts_only_uncompressed(tmp_path,
                                                                         peer):
    """The reported crash: a traceback and the rest never sent."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "a_ct.dcm")
    shutil.copy(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"), folder / "b_jpeg.dcm")
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), folder / "c_rle.dcm")
    scp = peer(LE)
    result = _send(tmp_path, scp.port, folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "sent 3" in result.stdout and "2 converted" in result.stdout
    assert "failed 0" in result.stdout and " 0 Bytes" not in result.stdout
    syntaxes = sorted(s for s, _raw, _ds in scp.received)
    assert all(s in LE for s in syntaxes), syntaxes
    by_class = {str(ds.SOPClassUID): ds for _s, _raw, ds in scp.received}
    sc = by_class[SecondaryCaptureImageStorage]
    original = dcmread(folder / "b_jpeg.dcm")
    assert sc.SOPInstanceUID == original.SOPInstanceUID  # same instance, decompressed
    assert len(sc.PixelData) == sc.Rows * sc.Columns * sc.SamplesPerPixel
    mr = by_class[MRImageStorage]
    assert (mr.pixel_array == dcmread(get_testdata_file("MR_small.dcm")).pixel_array).all()


def test_stored_bytes_go_as_stored_when_the_peer_accepts_the_syntax(tmp_path, peer):
    scp = peer([JPEGBaseline8Bit, ExplicitVRLittleEndian])
    path = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
    result = _send(tmp_path, scp.port, path)
    assert result.returncode == 0, result.stderr
    assert "converted" not in result.stdout
    [(syntax, raw, _ds)] = scp.received
    assert syntax == JPEGBaseline8Bit
    assert open(path, "rb").read().endswith(raw)  # the file's dataset, byte for byte


def test_what_cannot_be_converted_fails_alone_with_a_reason(tmp_path, peer):
    folder = tmp_path / "some"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "a_ct.dcm")
    broken = dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frame = bytearray(broken.PixelData)
    frame[200:-20] = bytes(len(frame) - 220)  # the JPEG stream's entropy data zeroed
    broken.PixelData = bytes(frame)
    broken.save_as(folder / "b_broken_jpeg.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "c_mr.dcm")
    scp = peer(LE)
    result = _send(tmp_path, scp.port, folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "sent 2" in result.stdout and "failed 1" in result.stdout
    assert "b_broken_jpeg.dcm" in result.stderr
    assert "cannot decode JPEG Baseline" in result.stdout + result.stderr
    assert len(scp.received) == 2


def test_a_class_the_peer_refuses_fails_that_file_only(tmp_path, peer):
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "a_ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "b_mr.dcm")
    scp = peer(LE, classes=[CTImageStorage])
    result = _send(tmp_path, scp.port, folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "sent 1" in result.stdout and "failed 1" in result.stdout
    assert f"peer refused SOP Class {MRImageStorage}" in result.stdout


def test_one_refused_file_alone_says_why(tmp_path, peer):
    """With one file the peer once 'aborted the association' and 'sent 0, failed 0'."""
    scp = peer(LE)
    result = _send(tmp_path, scp.port, get_testdata_file("JPEG2000.dcm"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 1" in result.stdout and "1 converted" in result.stdout


@pytest.mark.dcmtk
def test_big_endian_goes_as_be_or_converted(tmp_path, peer):
    """dcmtk's dcmconv makes the Big Endian file; a BE peer gets BE, an LE one LE."""
    if shutil.which("dcmconv") is None:
        pytest.skip("dcmtk is not installed")
    be, le = tmp_path / "be.dcm", tmp_path / "le.dcm"
    subprocess.run(["dcmconv", "+tb", get_testdata_file("CT_small.dcm"), str(be)],
                   check=True)
    subprocess.run(["dcmconv", "+te", str(be), str(le)], check=True)
    be_peer, le_peer = peer([ExplicitVRBigEndian]), peer(LE)
    assert _send(tmp_path, be_peer.port, be).returncode == 0
    assert _send(tmp_path, le_peer.port, be).returncode == 0
    [(syntax, raw, _ds)] = be_peer.received
    assert syntax == ExplicitVRBigEndian and be.read_bytes().endswith(raw)
    [(syntax, raw, ds)] = le_peer.received
    assert syntax == ExplicitVRLittleEndian and le.read_bytes().endswith(raw)


def test_each_syntax_is_proposed_in_its_own_context(tmp_path, peer):
    """A peer that accepts RLE only for MR and LE only for CT gets both."""
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "a_ct.dcm")
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), folder / "b_mr.dcm")
    scp = peer([RLELossless, ExplicitVRLittleEndian])
    result = _send(tmp_path, scp.port, folder)
    assert result.returncode == 0, result.stderr
    assert sorted(s for s, _r, _d in scp.received) == [ExplicitVRLittleEndian,
                                                       RLELossless]


def test_synthetic_send_counts_its_bytes_and_converts_too(tmp_path, peer):
    scp = peer([ImplicitVRLittleEndian])
    result = run_cli("send", "127.0.0.1", str(scp.port), "--synthetic", "2", "--aec",
                     "PEER", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "sent 2 (1.1 MB, 2 converted)" in result.stdout, result.stdout  # 2 x 512 kB
    assert [s for s, _r, _d in scp.received] == [ImplicitVRLittleEndian] * 2


def test_a_send_is_recorded_in_the_services_transaction_log(service, tmp_path, peer):
    svc = service()
    folder = tmp_path / "some"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "a_ct.dcm")
    shutil.copy(get_testdata_file("JPEG2000.dcm"), folder / "b_j2k.dcm")
    scp = peer(LE, classes=[CTImageStorage])
    result = run_cli("--data-dir", str(svc.data_dir), "send", "127.0.0.1", str(scp.port),
                     str(folder), "--aec", "PEER", env=svc.env)
    assert result.returncode == 1 and "not recorded" not in result.stderr
    log = svc.cli("log", "--json")
    assert log.returncode == 0, log.stderr
    records = [json.loads(line) for line in log.stdout.splitlines() if line.strip()]
    sends = [r for r in records if r.get("initiated") == "send"]
    assert len(sends) == 1, records
    [sent] = sends
    assert (sent["total"], sent["completed"], sent["failed"]) == (2, 1, 1)
    assert sent["called_ae"] == "PEER" and sent["peer"] == f"127.0.0.1:{scp.port}"
    assert sent["status"] == 0xB000 and "peer refused SOP Class" in sent["reason"]
    assert sent["bytes"] == (folder / "a_ct.dcm").stat().st_size


def test_a_send_without_a_service_is_recorded_in_the_data_dir(tmp_path, peer):
    scp = peer(LE)
    env = cli_env(tmp_path)
    data = tmp_path / "data"
    result = run_cli("--data-dir", str(data), "send", "127.0.0.1", str(scp.port),
                     get_testdata_file("CT_small.dcm"), "--aec", "PEER", env=env)
    assert result.returncode == 0 and "not recorded" not in result.stderr, result.stderr
    log = run_cli("--data-dir", str(data), "log", "--json", env=env)
    sends = [json.loads(line) for line in log.stdout.splitlines()
             if '"initiated": "send"' in line or '"initiated":"send"' in line]
    assert len(sends) == 1 and sends[0]["completed"] == 1 and sends[0]["outcome"] == "ok"


def test_a_peer_that_takes_only_rle_gets_rle(tmp_path, peer):
    """Compression is the last resort: RLE Lossless, pydicom's own encoder."""
    scp = peer([RLELossless])
    result = _send(tmp_path, scp.port, get_testdata_file("CT_small.dcm"))
    assert result.returncode == 0, result.stdout + result.stderr
    [(syntax, _raw, ds)] = scp.received
    assert syntax == RLELossless
    assert (ds.pixel_array == dcmread(get_testdata_file("CT_small.dcm")).pixel_array).all()


def _storescp(out: Path, *options: str):
    """dcmtk's storescp on a free port, writing what it receives to `out`."""
    port = free_port()
    proc = subprocess.Popen(["storescp", "-aet", "PEER", "-od", str(out), *options,
                             str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    from conftest import wait_for_echo
    wait_for_echo(port, ae_title="PEER")
    return proc, port


@pytest.mark.dcmtk
@pytest.mark.parametrize("options, converted", [((), 3), (("+xa",), 0)])
def test_dcmtk_storescp_gets_every_file(tmp_path, options, converted):
    """storescp accepts uncompressed syntaxes only by default (+xa: all it knows); a
    folder of JPEG, RLE, JPEG 2000 and Big Endian files all arrive either way."""
    if shutil.which("storescp") is None or shutil.which("dcmconv") is None:
        pytest.skip("dcmtk is not installed")
    folder, out = tmp_path / "mixed", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    for name in ("CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm",
                 "JPEG2000.dcm"):
        shutil.copy(get_testdata_file(name), folder / name)
    subprocess.run(["dcmconv", "+tb", get_testdata_file("MR_small.dcm"),
                    str(folder / "mr_be.dcm")], check=True)
    proc, port = _storescp(out, *options)
    try:
        result = _send(tmp_path, port, folder)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 5" in result.stdout
    assert (f"{converted} converted" in result.stdout) == bool(converted), result.stdout
    got = {str(dcmread(p).SOPInstanceUID) for p in out.iterdir()}
    assert got == {str(dcmread(p).SOPInstanceUID) for p in folder.iterdir()}
