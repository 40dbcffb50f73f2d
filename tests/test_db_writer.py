"""The one DB writer thread (db/writer.py): batching, flush, stop, retries, bounds."""

from __future__ import annotations

import logging
import shutil
import threading

import orjson
import pytest

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter


class Recorder:
    """A sink and a save that remember what they were given, and can be made to fail."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.saves = 0
        self.sink_fails = False
        self.save_fails = False

    def sink(self, batch: list) -> None:
        if self.sink_fails:
            raise OSError(28, "No space left on device")
        self.batches.append(list(batch))

    def save(self) -> None:
        if self.save_fails:
            raise OSError(5, "Input/output error")
        self.saves += 1

    @property
    def items(self) -> list:
        return [item for batch in self.batches for item in batch]


@pytest.fixture
def writer():
    made: list[DBWriter] = []

    def make(**kwargs) -> DBWriter:
        made.append(DBWriter(**{"interval": 3600, **kwargs}))  # only flush() wakes it
        return made[-1]

    yield make
    for w in made:
        w.stop()


def test_flush_hands_everything_over_in_one_batch_per_kind_and_saves_once(writer):
    a, b, untouched = Recorder(), Recorder(), Recorder()
    w = writer()
    w.register("a", a.sink, a.save)
    w.register("b", b.sink, b.save)
    w.register("c", untouched.sink, untouched.save)
    w.start()
    for i in range(10):
        w.put("a" if i % 3 else "b", i)
    assert w.flush(timeout=10)
    assert a.batches == [[1, 2, 4, 5, 7, 8]] and b.batches == [[0, 3, 6, 9]]
    assert (a.saves, b.saves, untouched.saves, untouched.batches) == (1, 1, 0, [])
    assert w.stats()["pending"] == 0 and w.stats()["batches"] == 2


def test_the_thread_is_a_named_daemon(writer):
    w = writer()
    w.start()
    (thread,) = [t for t in threading.enumerate() if t.name == "dicomtui-db-writer"]
    assert thread.daemon


def test_flush_makes_transactions_durable(writer, tmp_path):
    log = TransactionLog(tmp_path)
    w = writer()
    w.register("tx", log.append_many, log.flush)
    w.start()
    for i in range(10):
        w.put("tx", {"time": "2026-11-23T01:02:03+00:00", "type": "echo", "n": i})
    assert w.flush(timeout=10)
    on_disk = orjson.loads((tmp_path / "tx-000001.json").read_bytes())["transactions"]
    assert [r["n"] for r in on_disk.values()] == list(range(10))


def test_puts_from_many_threads_all_arrive_in_order_per_thread(writer):
    rec = Recorder()
    w = writer(interval=0.005)
    w.register("x", rec.sink, rec.save)
    w.start()

    def produce(t: int) -> None:
        for i in range(2000):
            w.put("x", (t, i))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert w.flush(timeout=30)
    assert len(rec.items) == 16_000
    for t in range(8):
        assert [i for (u, i) in rec.items if u == t] == list(range(2000))


def test_stop_drains_and_saves_then_ends_the_thread(writer):
    rec = Recorder()
    w = writer()
    w.register("x", rec.sink, rec.save)
    w.start()
    for i in range(5):
        w.put("x", i)
    assert w.stop(timeout=10)
    assert rec.items == [0, 1, 2, 3, 4] and rec.saves == 1
    assert not [t for t in threading.enumerate() if t.name == "dicomtui-db-writer"]
    w.put("x", 5)  # after stop: written by the next flush, in the caller's thread
    assert w.flush() and rec.items[-1] == 5


def test_a_failing_sink_is_retried_in_order_and_logged_once(writer, caplog):
    rec = Recorder()
    rec.sink_fails = True
    w = writer(interval=0.01)  # retries every tick
    w.register("x", rec.sink, rec.save)
    w.start()
    for i in range(5):
        w.put("x", i)
    assert not w.flush(timeout=0.2)
    assert "No space left on device" in w.stats()["last_error"]
    w.put("x", 5)
    assert not w.flush(timeout=0.2)
    assert w.stats()["pending"] == 6 and rec.batches == []
    rec.sink_fails = False
    assert w.flush(timeout=10)
    assert rec.items == [0, 1, 2, 3, 4, 5]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
    assert w.stats()["last_error"] is None and "recovered" in caplog.text


def test_a_failing_save_is_retried_without_handing_items_over_twice(writer):
    rec = Recorder()
    rec.save_fails = True
    w = writer(interval=0.01)
    w.register("x", rec.sink, rec.save)
    w.start()
    for i in range(3):
        w.put("x", i)
    assert not w.flush(timeout=0.2)
    w.put("x", 3)
    assert not w.flush(timeout=0.2)
    assert w.stats()["unsaved"] == ["x"]
    rec.save_fails = False
    assert w.flush(timeout=10)
    assert rec.items == [0, 1, 2, 3] and rec.saves == 1


def test_a_blocked_log_shard_recovers_with_every_record_once(writer, tmp_path):
    log = TransactionLog(tmp_path)
    w = writer(interval=0.01)
    w.register("tx", log.append_many, log.flush)
    w.start()
    (tmp_path / "tx-000001.json").mkdir()  # the save's rename fails like a bad disk
    for i in range(3):
        w.put("tx", {"time": "2026-11-23T01:02:03+00:00", "type": "store", "n": i})
    assert not w.flush(timeout=0.2)
    w.put("tx", {"time": "2026-11-23T01:02:04+00:00", "type": "store", "n": 3})
    assert not w.flush(timeout=0.2)
    shutil.rmtree(tmp_path / "tx-000001.json")
    assert w.flush(timeout=10)
    on_disk = orjson.loads((tmp_path / "tx-000001.json").read_bytes())["transactions"]
    assert [(r["id"], r["n"]) for r in on_disk.values()] == [(1, 0), (2, 1), (3, 2),
                                                            (4, 3)]


def test_too_many_pending_drops_the_oldest_and_says_how_many(writer, caplog):
    rec = Recorder()
    rec.sink_fails = True
    w = writer(max_pending=3)
    w.register("x", rec.sink, rec.save)
    for i in range(10):
        w.put("x", i)
    assert not w.flush()  # not started: runs one tick in this thread, which fails
    assert w.stats()["dropped"] == 7
    assert "dropped 7" in caplog.text
    rec.sink_fails = False
    assert w.flush() and rec.items == [7, 8, 9]


def test_put_of_an_unregistered_kind_fails_at_the_caller(writer):
    with pytest.raises(KeyError):
        writer().put("nope", 1)
