"""The sharded transaction log (db/txlog.py): ids, rotation, queries, damage."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import orjson

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def rec(n: int, **extra) -> dict:
    """A store record `n` seconds after T0."""
    return {"time": (T0 + timedelta(seconds=n)).isoformat(), "type": "store",
            "status": 0, "outcome": "ok", "calling_ae": "CT1", "called_ae": "DICOMTUI",
            "n": n, "sop_uid": f"1.2.3.{n}", **extra}


def shard_sizes(log_dir) -> list[int]:
    return [len(orjson.loads(p.read_bytes())["transactions"])
            for p in sorted(log_dir.glob("tx-*.json"))]


def test_ids_are_global_and_continue_after_reopen(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i) for i in range(120)])
    log.flush()
    again = TransactionLog(tmp_path, shard_size=50)
    assert again.count() == 120
    again.append_many([rec(120), rec(121)])
    assert [r["id"] for r in again.query(limit=3)] == [122, 121, 120]


def test_ids_continue_when_the_last_shard_is_exactly_full(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i) for i in range(100)])
    log.flush()
    again = TransactionLog(tmp_path, shard_size=50)
    again.append_many([rec(100)])
    again.flush()
    assert shard_sizes(tmp_path) == [50, 50, 1]
    assert again.query(limit=1)[0]["id"] == 101


def test_shards_rotate_at_shard_size_and_closed_ones_are_never_rewritten(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i) for i in range(30)])
    log.flush()
    log.append_many([rec(i) for i in range(30, 120)])  # one batch across two rotations
    log.flush()
    assert [p.name for p in sorted(tmp_path.glob("tx-*.json"))] == [
        "tx-000001.json", "tx-000002.json", "tx-000003.json"]
    assert shard_sizes(tmp_path) == [50, 50, 20]
    closed = {p.name: p.read_bytes() for p in tmp_path.glob("tx-00000[12].json")}
    log.append_many([rec(i) for i in range(120, 140)])
    log.flush()
    assert {p.name: p.read_bytes() for p in tmp_path.glob("tx-00000[12].json")} == closed


def test_records_are_stored_untouched_plus_their_id(tmp_path):
    log = TransactionLog(tmp_path)
    original = rec(1, extra={"nested": [1, "two", None]}, status=None)
    log.append_many([original])
    log.flush()
    assert "id" not in original  # the caller's dict is not changed
    (stored,) = orjson.loads((tmp_path / "tx-000001.json").read_bytes())[
        "transactions"].values()
    assert stored == {**original, "id": 1}


def test_unflushed_records_are_in_queries(tmp_path):
    log = TransactionLog(tmp_path, shard_size=10)
    log.append_many([rec(i) for i in range(25)])  # two shards closed, none saved
    assert not list(tmp_path.glob("tx-*.json"))
    assert [r["n"] for r in log.query(limit=100)] == list(range(24, -1, -1))
    assert [r["n"] for r in log.query(after_id=0, limit=100)] == list(range(25))


def test_a_value_json_cannot_hold_is_stored_as_text_and_does_not_block_saves(tmp_path):
    log = TransactionLog(tmp_path)
    log.append_many([rec(1, peer=object()), rec(2, big=2**70), "not a record", rec(3)])
    log.flush()
    found = TransactionLog(tmp_path).query()
    assert [r["n"] for r in found] == [3, 1]
    assert found[1]["peer"].startswith("<object object")


def mixed_log(tmp_path) -> TransactionLog:
    """200 records over 4 shards: every 10th failed (0xA700), odd ones from MR1."""
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i, outcome="failed" if i % 10 == 0 else "ok",
                         status=0xA700 if i % 10 == 0 else 0,
                         calling_ae="MR1" if i % 2 else "CT1",
                         type="echo" if i in (7, 160) else "store") for i in range(200)])
    log.flush()
    return log


def test_query_is_newest_first_across_shards_up_to_limit(tmp_path):
    log = mixed_log(tmp_path)
    assert [r["n"] for r in log.query(limit=5)] == [199, 198, 197, 196, 195]
    assert [r["id"] for r in log.query(limit=1000)] == list(range(200, 0, -1))


def test_each_filter_matches_any_of_its_values(tmp_path):
    log = mixed_log(tmp_path)
    assert [r["n"] for r in log.query(types=["echo"])] == [160, 7]
    assert len(log.query(types=["echo", "store"], limit=1000)) == 200
    assert {r["n"] for r in log.query(outcomes=["failed"], limit=100)} == set(
        range(0, 200, 10))
    assert len(log.query(statuses=[0xA700, 0xC000], limit=100)) == 20
    assert len(log.query(ae="mr1", limit=1000)) == 100
    assert len(log.query(ae=" dicomtui ", limit=1000)) == 200  # the called AE
    assert log.query(ae="CT") == []  # exact, not a prefix


def test_filters_combine(tmp_path):
    log = mixed_log(tmp_path)
    found = log.query(statuses=[0xA700], ae="ct1", outcomes=["failed"], limit=100)
    assert len(found) == 20
    found = log.query(types=["echo"], ae="CT1", since=T0 + timedelta(seconds=100))
    assert [r["n"] for r in found] == [160]


def test_since_includes_the_instant_and_skips_older_shards(tmp_path):
    mixed_log(tmp_path)
    (tmp_path / "tx-000001.json").write_bytes(b"{not read")
    log = TransactionLog(tmp_path, shard_size=50)  # nothing cached from before
    found = log.query(since=T0 + timedelta(seconds=190), limit=100)
    assert [r["n"] for r in found] == list(range(199, 189, -1))
    assert [r["n"] for r in log.query(limit=10)] == list(range(199, 189, -1))
    assert (tmp_path / "tx-000001.json").read_bytes() == b"{not read"  # never opened


def test_naive_since_means_local_time(tmp_path):
    log = mixed_log(tmp_path)
    local = (T0 + timedelta(seconds=195)).astimezone().replace(tzinfo=None)
    assert [r["n"] for r in log.query(since=local)] == [199, 198, 197, 196, 195]


def test_after_id_tails_oldest_first_across_shards(tmp_path):
    log = mixed_log(tmp_path)
    assert [r["id"] for r in log.query(after_id=40, limit=20)] == list(range(41, 61))
    assert [r["id"] for r in log.query(after_id=0, limit=3)] == [1, 2, 3]
    failed = log.query(after_id=95, outcomes=["failed"], limit=3)
    assert [r["n"] for r in failed] == [100, 110, 120]
    assert log.query(after_id=200) == []
    log.append_many([rec(200)])
    assert [r["n"] for r in log.query(after_id=200)] == [200]


def test_tailing_reads_no_shard_older_than_after_id(tmp_path):
    mixed_log(tmp_path)
    (tmp_path / "tx-000001.json").write_bytes(b"{not read")
    log = TransactionLog(tmp_path, shard_size=50)
    assert [r["id"] for r in log.query(after_id=60, limit=3)] == [61, 62, 63]
    assert (tmp_path / "tx-000001.json").read_bytes() == b"{not read"


def test_returned_records_are_copies(tmp_path):
    log = mixed_log(tmp_path)
    log.query(limit=1)[0]["n"] = "changed"
    assert log.query(limit=1)[0]["n"] == 199


def test_a_corrupt_closed_shard_is_moved_aside_and_the_rest_still_answers(tmp_path,
                                                                          caplog):
    log = TransactionLog(tmp_path, shard_size=10)
    log.append_many([rec(i) for i in range(25)])
    log.flush()
    (tmp_path / "tx-000001.json").write_bytes(b"{broken")
    fresh = TransactionLog(tmp_path, shard_size=10)
    assert [r["id"] for r in fresh.query(limit=100)] == list(range(25, 10, -1))
    assert [r["id"] for r in fresh.query(after_id=0, limit=3)] == [11, 12, 13]
    (aside,) = tmp_path.glob("tx-000001.json.corrupt-*")
    assert aside.read_bytes() == b"{broken"
    assert "tx-000001.json is garbled" in caplog.text and "moved to" in caplog.text


def test_a_corrupt_current_shard_is_moved_aside_and_ids_go_on(tmp_path, caplog):
    log = TransactionLog(tmp_path, shard_size=10)
    log.append_many([rec(i) for i in range(25)])
    log.flush()
    (tmp_path / "tx-000003.json").write_bytes(b'{"transactions": [1, 2]}')
    fresh = TransactionLog(tmp_path, shard_size=10)
    assert "tx-000003.json is" in caplog.text and "moved to" in caplog.text
    assert list(tmp_path.glob("tx-000003.json.corrupt-*"))
    fresh.append_many([rec(99)])
    assert [r["id"] for r in fresh.query(limit=2)] == [21, 20]


def test_queries_while_the_writer_thread_appends(tmp_path):
    log = TransactionLog(tmp_path, shard_size=100)
    writer = DBWriter(interval=0.001)
    writer.register("tx", log.append_many, log.flush)
    writer.start()
    stop, errors, seen = threading.Event(), [], []

    def reader(after: bool) -> None:
        while not stop.is_set():
            try:
                found = log.query(after_id=0 if after else None, limit=150)
                ids = [r["id"] for r in found]
                assert ids == sorted(ids, reverse=not after) and len(set(ids)) == len(ids)
                seen.append(len(ids))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i % 2 == 0,)) for i in range(4)]
    for thread in readers:
        thread.start()
    for i in range(2000):
        writer.put("tx", rec(i))
    assert writer.flush(timeout=30)
    stop.set()
    for thread in readers:
        thread.join()
    writer.stop()
    assert errors == [] and seen
    assert log.count() == 2000 and shard_sizes(tmp_path) == [100] * 20


def test_before_id_pages_backwards_across_shards_without_gaps(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i) for i in range(175)])
    log.flush()
    seen, before = [], None
    while page := log.query(limit=40, before_id=before):
        seen += [r["id"] for r in page]
        before = page[-1]["id"]
    assert seen == list(range(175, 0, -1))


def test_before_id_combines_with_filters(tmp_path):
    log = TransactionLog(tmp_path, shard_size=50)
    log.append_many([rec(i, calling_ae="MR1" if i % 2 else "CT1") for i in range(120)])
    page = log.query(ae="MR1", before_id=100, limit=5)
    assert [r["id"] for r in page] == [98, 96, 94, 92, 90]
    assert {r["calling_ae"] for r in page} == {"MR1"}


def test_text_matches_any_field_in_any_case_and_status_in_hex(tmp_path):
    log = TransactionLog(tmp_path)
    log.append_many([rec(1, reason="Storage quota reached", status=0xA700, outcome="failed"),
                     rec(2, patient_id="PAT-77"), rec(3)])
    assert [r["n"] for r in log.query(text="QUOTA")] == [1]
    assert [r["n"] for r in log.query(text="pat-7")] == [2]
    assert [r["n"] for r in log.query(text="0xa700")] == [1]
    assert [r["n"] for r in log.query(text="  ")] == [3, 2, 1]
    assert log.query(text="nowhere") == []
