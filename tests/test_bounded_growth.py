"""Files that grow forever: the hot ones hold only what is in play, history leaves after
its retention, and what the history kept (old zips, old log files) goes with it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from dicomtui.db.txlog import TransactionLog
from dicomtui.service.shipping.upload_queue import UploadQueue
from helpers import fresh_ct, send, stored_files

LONG_AGO = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()


def test_the_upload_queue_file_holds_only_uploads_in_play(tmp_path):
    queue = UploadQueue(tmp_path / "uploads.json")
    files = {"P1/a.dcm": [1, 2, 3]}
    items = [queue.add(tmp_path / f"{n}.zip", 10, f"1.{n}", "auto", 1, files)
             for n in range(50)]
    for item in items[:48]:
        queue.update(item.id, state="done", finished=LONG_AGO)
    queue.update(items[48].id, state="failed", finished=LONG_AGO)
    saved = orjson.loads((tmp_path / "uploads.json").read_bytes())["uploads"]
    assert sorted(d["state"] for d in saved.values()) == ["failed", "queued"]
    again = UploadQueue(tmp_path / "uploads.json")  # the history is listed too
    assert len(again.all()) == 50 and again.files_of(items[0].id) == files
    gone = again.expire(30)
    assert sorted(i.state for i in gone) == ["done"] * 48 + ["failed"]
    assert [i.state for i in UploadQueue(tmp_path / "uploads.json").all()] == ["queued"]
    assert not (tmp_path / "uploads" / f"{items[0].id}.json").exists()
    assert (tmp_path / "uploads" / f"{items[49].id}.json").exists()
    newer = again.add(tmp_path / "new.zip", 10)
    assert newer.id == 51  # ids are never given twice


def test_old_log_files_go_after_log_retention_days(tmp_path):
    log = TransactionLog(tmp_path / "log", shard_size=10)
    old = (datetime.now(timezone.utc) - timedelta(days=400)).isoformat()
    log.append_many([{"time": old, "type": "echo", "outcome": "ok"}] * 25)
    log.append_many([{"time": datetime.now(timezone.utc).isoformat(), "type": "echo",
                      "outcome": "ok"}] * 12)
    log.flush()
    assert len(list((tmp_path / "log").glob("tx-*.json"))) == 4
    assert log.expire(365) == 2  # the two closed shards of old records only
    assert len(log.query(limit=100)) == 17
    assert len(list((tmp_path / "log").glob("tx-*.json"))) == 2


def test_a_resent_instance_does_not_grow_its_study_file(make_engine):
    engine = make_engine()
    ds = fresh_ct()
    for _ in range(5):
        send(engine.port, [ds])
    engine.writer.flush()
    path = engine.archive.index.instances_path(str(ds.StudyInstanceUID))
    assert len(path.read_bytes().splitlines()) == 1
    assert engine.archive.index.study(str(ds.StudyInstanceUID))["instances"] == 1


def test_zips_count_as_storage_used_and_failed_ones_go_after_history_days(make_engine):
    engine = make_engine(zip_studies="true", auto_upload="true",
                         api_url="http://127.0.0.1:9/api", api_token="x",
                         max_retries="0", study_timeout="1")
    send(engine.port, [fresh_ct()])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [u.state for u in
                                           engine.shipping.upload_list()] != ["failed"]:
        time.sleep(0.05)
    (item,) = engine.shipping.upload_list()
    zipped = Path(item.path)
    files = sum(p.stat().st_size for p in stored_files(engine.storage.root))
    assert engine.storage.used_bytes == files + zipped.stat().st_size
    engine.shipping.uploads.update(item.id, finished=LONG_AGO)
    engine.shipping.housekeep()
    assert not zipped.exists() and engine.shipping.upload_list() == []
    assert engine.storage.used_bytes == files
