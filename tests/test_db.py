"""The persistence layer: atomic saves, corrupt files, the sharded log, the writer."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from dicomtui.db.storage import flush_database, open_database
from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def rec(n: int, **extra) -> dict:
    return {"time": (T0 + timedelta(seconds=n)).isoformat(), "type": "store",
            "outcome": "ok", "status": 0, "calling_ae": "CT1", "called_ae": "DICOMTUI",
            "n": n, **extra}


def test_atomic_save_keeps_the_old_file_when_a_save_fails(tmp_path):
    db, warning = open_database(tmp_path / "x.json")
    assert warning is None
    db.table("t").insert({"a": 1})
    flush_database(db)
    before = (tmp_path / "x.json").read_bytes()
    db.table("t").insert({"bad": object()})  # orjson cannot serialize this
    with pytest.raises(TypeError):
        flush_database(db)
    assert (tmp_path / "x.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("content", [b'{"t": {"1": {"a": 1}', b"[1, 2]", b'{"t": 5}',
                                     b"\x00\xff garbage"])
def test_corrupt_file_is_moved_aside_with_a_message(tmp_path, content):
    path = tmp_path / "dicomtui.json"
    path.write_bytes(content)
    db, warning = open_database(path)
    assert warning and "corrupt" in warning and "moved it to" in warning
    (aside,) = tmp_path.glob("dicomtui.json.corrupt-*")
    assert aside.read_bytes() == content  # never deleted
    db.table("t").insert({"ok": True})
    flush_database(db)
    assert orjson.loads(path.read_bytes())["t"]["1"] == {"ok": True}


def test_secret_files_are_created_with_their_mode(tmp_path):
    db, _ = open_database(tmp_path / "secret.json", mode=0o600)
    db.table("t").insert({"a": 1})
    flush_database(db)
    assert (os.stat(tmp_path / "secret.json").st_mode & 0o777) == 0o600


def test_log_rotates_and_ids_continue_after_reopen(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i) for i in range(120)])
    log.flush()
    assert len(list(tmp_path.glob("tx-*.json"))) == 3
    again = TransactionLog(tmp_path, shard_size=50)
    again.append_many([rec(120)])
    assert again.query(limit=1)[0]["id"] == 121
    assert again.count() == 121


def test_query_filters_and_orders(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    rows = [rec(i, outcome="failed" if i % 10 == 0 else "ok",
                status=0xA700 if i % 10 == 0 else 0,
                calling_ae="MR1" if i % 2 else "CT1",
                type="echo" if i == 7 else "store") for i in range(200)]
    log.append_many(rows)
    newest = log.query(limit=5)
    assert [r["n"] for r in newest] == [199, 198, 197, 196, 195]
    assert {r["n"] for r in log.query(outcomes=["failed"], limit=100)} == set(range(0, 200, 10))
    assert len(log.query(statuses=[0xA700], ae="ct1", limit=100)) == 20
    assert [r["n"] for r in log.query(types=["echo"])] == [7]
    since = log.query(since=T0 + timedelta(seconds=190), limit=100)
    assert [r["n"] for r in since] == list(range(199, 189, -1))
    tail = log.query(after_id=100, limit=3)
    assert [r["id"] for r in tail] == [101, 102, 103]


def test_query_while_appending_from_another_thread(tmp_path):
    log = TransactionLog(tmp_path, shard_size=100)
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            try:
                log.query(limit=50)
            except Exception as exc:  # the point of the test
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for batch in range(30):
        log.append_many([rec(batch * 20 + i) for i in range(20)])
        log.flush()
    stop.set()
    thread.join()
    assert errors == [] and log.count() == 600


def test_corrupt_closed_shard_is_skipped_loudly(tmp_path, caplog):
    log = TransactionLog(tmp_path, shard_size=10)
    log.append_many([rec(i) for i in range(25)])
    log.flush()
    (tmp_path / "tx-000001.json").write_bytes(b"{broken")
    fresh = TransactionLog(tmp_path, shard_size=10)
    found = fresh.query(limit=100)
    assert [r["id"] for r in found] == list(range(25, 10, -1))
    assert list(tmp_path.glob("tx-000001.json.corrupt-*"))


def test_writer_flush_makes_items_durable(tmp_path):
    log = TransactionLog(tmp_path)
    writer = DBWriter(interval=60)  # only flush() wakes it
    writer.register("tx", log.append_many, log.flush)
    writer.start()
    for i in range(10):
        writer.put("tx", rec(i))
    assert writer.flush(timeout=10)
    on_disk = orjson.loads((tmp_path / "tx-000001.json").read_bytes())
    assert len(on_disk["transactions"]) == 10
    writer.stop()


def test_writer_retries_a_failing_sink_without_loss_or_duplicates(tmp_path):
    got: list = []
    fail = {"sink": 2, "save": 1}

    def sink(batch):
        if fail["sink"]:
            fail["sink"] -= 1
            raise OSError(28, "No space left on device")
        got.extend(batch)

    def save():
        if fail["save"]:
            fail["save"] -= 1
            raise OSError(28, "No space left on device")

    writer = DBWriter(interval=0.05)
    writer.register("x", sink, save)
    writer.start()
    for i in range(5):
        writer.put("x", i)
    assert writer.flush(timeout=10)
    writer.put("x", 5)
    assert writer.flush(timeout=10)
    writer.stop()
    assert got == [0, 1, 2, 3, 4, 5]
    assert writer.stats()["last_error"] is None


def test_writer_bounds_pending_items(caplog):
    writer = DBWriter(interval=60, max_pending=3)
    writer.register("x", lambda batch: (_ for _ in ()).throw(OSError("disk gone")))
    for i in range(10):
        writer.put("x", i)
    writer.flush()
    assert writer.stats()["dropped"] == 7
    assert "dropped 7" in caplog.text
