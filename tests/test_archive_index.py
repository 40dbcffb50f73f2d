"""The archive index: live indexing, reindex from the files, restarts, damage."""

from __future__ import annotations

import threading
import time

from pydicom.data import get_testdata_file

from archive_helpers import send_all, study, write_small_studies
from conftest import cli_env, free_port, run_cli
from dicomtui.service.engine import Engine
from helpers import fresh_ct, send

TIMES = ("first_received", "last_received")


def content(engine) -> dict:
    """The index without receive times (a reindex takes them from file times)."""
    docs = {}
    for doc in engine.archive.index.all_studies():
        docs[doc["uid"]] = {k: v for k, v in doc.items() if k not in TIMES}
    instances = {uid: sorted(engine.archive.index.instances(uid)) for uid in docs}
    return {"studies": docs, "instances": instances}


def reindex(engine) -> object:
    job = engine.archive.jobs.wait(engine.archive.start_reindex().id, 120)
    assert job.state == "done", job
    return job


def test_reindex_yields_the_same_content_as_the_live_index(make_engine):
    engine = make_engine()
    for datasets in (study("DOE^JOHN", "P1", "20240110", "CT", series=3, per_series=3),
                     study("ROE^JANE", "P2", "20240111", "MR", per_series=4),
                     study("Émile^Zoë", "P3", "20240112", "US", series=2)):
        send_all(engine.port, datasets)
    again = study("DUP^ONE", "P4", "20240113", per_series=2)
    send_all(engine.port, again)
    send_all(engine.port, again[:1])  # a re-sent instance replaces, never counts twice
    engine.writer.flush()
    live = content(engine)
    assert live["studies"][str(again[0].StudyInstanceUID)]["instances"] == 2
    job = reindex(engine)
    assert job.result["unreadable_count"] == 0 and job.result["studies"] == 4
    assert content(engine) == live


def test_reindex_reports_unreadable_files_and_goes_on(make_engine):
    engine = make_engine()
    send_all(engine.port, study("OK^ONE", "P1", "20240101"))
    junk = engine.storage.root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not DICOM")
    good = open(get_testdata_file("CT_small.dcm", download=False), "rb").read()
    (junk / "truncated.dcm").write_bytes(good[:400])
    job = reindex(engine)
    assert job.result["indexed"] == 2 and job.result["unreadable_count"] == 2
    assert any("notes.txt" in line for line in job.result["unreadable"])
    assert len(engine.archive.index.studies) == 1


def test_the_index_survives_a_restart(tmp_path):
    port = free_port()
    settings = {"host": "127.0.0.1", "port": str(port)}
    engine = Engine(tmp_path / "d", settings, environ={})
    engine.start()
    send_all(port, study("KEEP^ME", "P1", "20240101", series=2))
    before = content(engine)
    engine.close()
    again = Engine(tmp_path / "d", settings, environ={})
    try:
        assert content(again) == before
    finally:
        again.close()


def test_a_damaged_shard_is_set_aside_and_the_index_rebuilt_at_start(tmp_path):
    settings = {"host": "127.0.0.1", "port": str(free_port())}
    engine = Engine(tmp_path / "d", settings, environ={})
    engine.start()
    sent = study("LOST^ONE", "P1", "20240101")
    send_all(engine.port, sent)
    engine.close()
    shards = sorted((tmp_path / "d" / "index").glob("studies-*.json"))
    for shard in shards:
        if shard.stat().st_size > 20:
            shard.write_bytes(b'{"studies": {"1": [broken')
    again = Engine(tmp_path / "d", settings, environ={})
    try:
        warnings = again.snapshot("local").warnings
        assert any("set aside" in w and "index was rebuilt" in w for w in warnings)
        assert list((tmp_path / "d" / "index").glob("studies-*.json.corrupt-*"))
        assert again.archive.index.study(str(sent[0].StudyInstanceUID)) is None
        again.start()  # a receiver rebuilds a damaged index by itself
        uid = str(sent[0].StudyInstanceUID)
        deadline = time.monotonic() + 60
        while again.archive.index.study(uid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert again.archive.index.study(uid)["instances"] == 2
    finally:
        again.close()


def test_reindex_while_receiving_loses_nothing(make_engine):
    engine = make_engine()
    write_small_studies(engine.storage.root / "bulk", 1500)
    job = engine.archive.start_reindex()
    sent: list = []

    def sender():
        for _ in range(10):
            ds = fresh_ct()
            assert int(send(engine.port, [ds])[0].Status) == 0
            sent.append(str(ds.StudyInstanceUID))

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join()
    assert engine.archive.jobs.wait(job.id, 120).state == "done"
    for uid in sent:
        assert engine.archive.index.study(uid)["instances"] == 1, uid
    assert len(engine.archive.index.studies) == 1510
    assert sum(d["instances"] for d in engine.archive.index.all_studies()) == 1510


def test_an_archive_without_an_index_is_indexed_at_start(tmp_path):
    data = tmp_path / "d"
    uids = write_small_studies(data / "storage" / "old", 5)
    engine = Engine(data, {"host": "127.0.0.1", "port": str(free_port())}, environ={})
    try:
        engine.start()
        deadline = time.monotonic() + 30
        while len(engine.archive.index.studies) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(engine.archive.index.studies) == set(uids)
    finally:
        engine.close()


def test_reindex_cli_shows_progress_and_unreadable_files(tmp_path):
    data = tmp_path / "d"
    write_small_studies(data / "storage" / "a", 3)
    (data / "storage" / "a" / "bad.dcm").write_bytes(b"\x00" * 50)
    env = cli_env(tmp_path)
    done = run_cli("--data-dir", str(data), "reindex", env=env)
    assert done.returncode == 0, done.stderr
    assert "indexed 3 of 4 files in 3 studies; 1 unreadable" in done.stdout
    assert "a/bad.dcm" in done.stdout and "reindex: " in done.stderr
    listing = run_cli("--data-dir", str(data), "studies", "--json", env=env)
    assert listing.returncode == 0 and '"total": 3' in listing.stdout
