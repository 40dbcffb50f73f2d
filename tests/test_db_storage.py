"""Atomic orjson storage and opening DB files that may be corrupt (db/storage.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest

from dicomtui.db.state import open_or_set_aside
from dicomtui.db.storage import AtomicJSONStorage, flush_database


def test_storage_round_trips_and_reads_missing_or_empty_as_none(tmp_path):
    storage = AtomicJSONStorage(tmp_path / "a" / "b.json")
    assert storage.read() is None
    (tmp_path / "a" / "b.json").write_bytes(b"  \n")
    assert storage.read() is None
    storage.write({"t": {"1": {"x": "é", "n": [1, 2]}}})
    assert storage.read() == {"t": {"1": {"x": "é", "n": [1, 2]}}}


def test_a_save_that_fails_leaves_the_old_file_and_no_temp(tmp_path):
    db, warning = open_or_set_aside(tmp_path / "x.json", "lost")
    assert warning is None
    db.table("t").insert({"a": 1})
    flush_database(db)
    before = (tmp_path / "x.json").read_bytes()
    db.table("t").insert({"bad": object()})  # orjson cannot serialize this
    with pytest.raises(TypeError):
        flush_database(db)
    assert (tmp_path / "x.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_save_that_cannot_replace_the_file_leaves_no_temp(tmp_path):
    (tmp_path / "x.json").mkdir()  # a directory where the file should go: replace fails
    with pytest.raises(OSError):
        AtomicJSONStorage(tmp_path / "x.json").write({"t": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


WRITER = textwrap.dedent("""
    import sys
    from dicomtui.db.storage import AtomicJSONStorage
    storage = AtomicJSONStorage(sys.argv[1])
    n = 0
    while True:
        storage.write({"t": {"1": {"n": n, "pad": "x" * 300_000}}})
        if n == 0:
            print("saved", flush=True)
        n += 1
""")


@pytest.mark.parametrize("round_", range(3))
def test_a_kill_during_saves_leaves_a_complete_file(tmp_path, round_):
    path = tmp_path / "x.json"
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                          stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"saved\n"
        time.sleep(0.03 * round_)  # kill at a different point of a later save
        os.kill(proc.pid, signal.SIGKILL)
    data = orjson.loads(path.read_bytes())
    assert isinstance(data["t"]["1"]["n"], int) and len(data["t"]["1"]["pad"]) == 300_000


def test_nothing_is_saved_until_flushed(tmp_path):
    db, _ = open_or_set_aside(tmp_path / "x.json", "lost")
    db.table("t").insert_multiple({"i": i} for i in range(10))
    for i in range(1500):  # more writes than TinyDB's default cache size of 1000
        db.table("t").insert({"i": i})
    assert not (tmp_path / "x.json").exists()
    flush_database(db)
    assert len(orjson.loads((tmp_path / "x.json").read_bytes())["t"]) == 1510


def test_an_existing_file_opens_with_its_data(tmp_path):
    path = tmp_path / "deep" / "er" / "x.json"
    db, _ = open_or_set_aside(path, "lost")
    db.table("facilities").insert({"name": "CT"})
    flush_database(db)
    again, warning = open_or_set_aside(path, "lost")
    assert warning is None
    assert again.table("facilities").all() == [{"name": "CT"}]


@pytest.mark.parametrize("content, why", [
    (b'{"t": {"1": {"a": 1}', "is truncated (JSON error at byte"),
    (b"\x00\xff garbage", "is garbled (JSON error at byte"),
    (b"[1, 2]", "is garbled (a JSON list, not an object of tables"),
    (b'{"t": 5}', "is garbled (table 't' is not a JSON object"),
    (b'{"t": {"1": 7}}', "is garbled (table 't' has a bad document '1'"),
    (b'{"t": {"x": {"a": 1}}}', "is garbled (table 't' has a bad document 'x'"),
    (b"", "is empty"),
    (b" \n ", "is empty"),
])
def test_a_corrupt_file_is_moved_aside_with_a_message(tmp_path, content, why):
    path = tmp_path / "dicomtui.json"
    path.write_bytes(content)
    db, warning = open_or_set_aside(path, "lost")
    (aside,) = tmp_path.glob("dicomtui.json.corrupt-*")
    assert re.fullmatch(r"dicomtui\.json\.corrupt-\d{8}T\d{6}", aside.name)
    assert warning.startswith(str(path)) and why in warning
    assert f"moved to {aside.name}: lost" in warning
    assert aside.read_bytes() == content  # never deleted
    db.table("t").insert({"ok": True})
    flush_database(db)
    assert orjson.loads(path.read_bytes()) == {"t": {"1": {"ok": True}}}


def test_a_second_corrupt_file_in_the_same_second_keeps_the_first(tmp_path):
    path = tmp_path / "x.json"
    for content in (b"{1", b"{2"):
        path.write_bytes(content)
        open_or_set_aside(path, "lost")
    asides = sorted(tmp_path.glob("x.json.corrupt-*"))
    assert sorted(p.read_bytes() for p in asides) == [b"{1", b"{2"]


def test_files_get_their_mode_and_a_stricter_one_is_kept(tmp_path):
    db, _ = open_or_set_aside(tmp_path / "secret.json", "lost", mode=0o600)
    db.table("t").insert({"a": 1})
    flush_database(db)
    assert (os.stat(tmp_path / "secret.json").st_mode & 0o777) == 0o600
    plain = AtomicJSONStorage(tmp_path / "plain.json")
    plain.write({})
    os.chmod(tmp_path / "plain.json", 0o400)
    plain.write({"t": {}})
    assert (os.stat(tmp_path / "plain.json").st_mode & 0o777) == 0o400


def test_opening_removes_temp_files_a_crash_left(tmp_path):
    (tmp_path / ".x.json.0badc0de.tmp").write_bytes(b'{"t": {}')
    (tmp_path / ".other.json.0badc0de.tmp").write_bytes(b"")
    open_or_set_aside(tmp_path / "x.json", "lost")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.0badc0de.tmp"]
