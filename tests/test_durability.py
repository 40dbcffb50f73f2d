"""What an answer of 0x0000 promises: file, folder and journal on disk first, in order.

The order is read from the system calls themselves (os.fsync, os.fdatasync, os.replace
wrapped to note what they were called on), so taking away a sync, or answering before
one, fails here.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson
import pytest
from pydicom import dcmread
from pynetdicom import AE

from dicomtui.service.core.journal import Journal
from dicomtui.service.privacy.restore import restore_path
from helpers import fresh_ct, parked, stored_files

CT = "1.2.840.10008.5.1.4.1.1.2"


class Syscalls:
    """Notes fsync/fdatasync/replace calls under a data dir, in order, from any thread."""

    def __init__(self, monkeypatch, data_dir: Path) -> None:
        self.data_dir = str(data_dir)
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None  # blocks the first file fsync
        self.held = threading.Event()
        for name in ("fsync", "fdatasync"):
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            self.note("rename", str(dst))

        monkeypatch.setattr(os, "replace", replace)

    def _wrap(self, name: str, real):
        def call(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            if self.hold is not None and ".incoming" in path and not self.held.is_set():
                self.held.set()
                self.hold.wait(30)
            real(fd)
            self.note(name, path)

        return call

    def note(self, what: str, path: str) -> None:
        if path.startswith(self.data_dir):
            with self.lock:
                self.events.append((what, path))

    def kinds(self, final: Path) -> list[str]:
        """The events that made one stored file durable, by kind, in order."""
        out = []
        for what, path in list(self.events):
            if what == "fsync" and "/.incoming/" in path:
                out.append("file")
            elif what == "rename" and path == str(final):
                out.append("rename")
            elif what == "fsync" and path == str(final.parent):
                out.append("folder")
            elif what == "fdatasync" and "/journal/" in path:
                out.append("journal")
            elif what == "response":
                out.append("response")
        return out


def _association(port: int):
    ae = AE(ae_title="DURABLE")
    ae.add_requested_context(CT, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMTUI")
    assert assoc.is_established
    return assoc


def test_the_answer_comes_after_file_folder_and_journal_are_synced(make_engine, monkeypatch):
    engine = make_engine()
    calls = Syscalls(monkeypatch, engine.data_dir)
    assoc = _association(engine.port)
    try:
        status = parked(assoc).send_c_store(fresh_ct())
        calls.note("response", str(engine.data_dir / "x"))
    finally:
        assoc.release()
    assert status.Status == 0x0000
    (final,) = stored_files(engine.storage.root)
    kinds = calls.kinds(final)
    assert kinds[:5] == ["file", "rename", "folder", "journal", "response"], kinds


def test_a_store_that_arrives_while_the_receiver_stops_is_refused(make_engine,
                                                                  monkeypatch):
    """In-flight stores finish; one that comes once stopping began is not taken."""
    engine = make_engine()
    calls = Syscalls(monkeypatch, engine.data_dir)
    calls.hold = threading.Event()
    first, second = _association(engine.port), _association(engine.port)
    answers: dict[str, int] = {}
    sending = threading.Thread(
        target=lambda: answers.setdefault("a", parked(first).send_c_store(fresh_ct()).Status))
    sending.start()
    assert calls.held.wait(30)  # A is in flight, blocked in its file fsync
    stopping = threading.Thread(target=engine.stop)
    stopping.start()
    _wait(lambda: engine.receiver.state == "stopping", "the receiver stopping")
    late = parked(second).send_c_store(fresh_ct())
    calls.hold.set()
    sending.join(30)
    stopping.join(60)
    assert answers["a"] == 0x0000
    assert late.Status == 0xA700 and "shutting down" in late.ErrorComment
    assert len(stored_files(engine.storage.root)) == 1


def _wait(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.01)


# -- the journal on its own ---------------------------------------------------------------
def test_concurrent_writers_share_fsyncs_and_each_returns_durable(tmp_path, monkeypatch):
    syncs = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (time.sleep(0.005), real(fd),
                                                     syncs.append(fd)))
    journal = Journal(tmp_path / "j", save=lambda: True)
    done = []

    def writer(n: int) -> None:
        for i in range(25):
            ticket = journal.write({"n": n, "i": i})
            done.append(ticket)
            journal.applied(ticket)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(done) == 100 and len({t.jid for t in done}) == 100
    assert len(syncs) < 100  # shared: several lines per fsync
    lines = (tmp_path / "j" / "000001.jsonl").read_bytes().splitlines()
    assert sorted((e["n"], e["i"]) for e in map(orjson.loads, lines)) == sorted(
        (n, i) for n in range(4) for i in range(25))


def test_a_checkpoint_deletes_a_segment_only_after_the_save(tmp_path):
    saves = []
    journal = Journal(tmp_path / "j", save=lambda: saves.append(1) or len(saves) > 1)
    journal.applied(journal.write({"a": 1}))
    assert not journal.checkpoint()  # the save failed: the lines stay
    assert (tmp_path / "j" / "000001.jsonl").exists()
    assert journal.checkpoint()
    assert not (tmp_path / "j" / "000001.jsonl").exists()


def test_a_checkpoint_waits_for_lines_being_applied(tmp_path):
    journal = Journal(tmp_path / "j", save=lambda: True)
    ticket = journal.write({"a": 1})
    assert not journal.checkpoint(timeout=0.2)  # not applied yet: kept
    journal.applied(ticket)
    assert journal.checkpoint()


def test_what_a_crash_left_is_replayed_then_dropped_and_a_torn_line_skipped(tmp_path):
    first = Journal(tmp_path / "j", save=lambda: True)
    for i in range(3):
        first.applied(first.write({"i": i}))
    with open(tmp_path / "j" / "000001.jsonl", "ab") as fh:
        fh.write(b'{"i": 3, "torn')  # the crash came in the middle of a line
    again = Journal(tmp_path / "j", save=lambda: True)
    assert [e["i"] for e in again.replay()] == [0, 1, 2]
    assert again.checkpoint()
    assert (tmp_path / "j" / "000001.jsonl").exists()  # only replayed() drops it
    again.replayed()
    assert not (tmp_path / "j" / "000001.jsonl").exists()
    assert list(Journal(tmp_path / "j", save=lambda: True).replay()) == []


@pytest.mark.parametrize("log_instances", ["true", "false"])
def test_what_is_acknowledged_is_in_the_log_index_and_map_at_once(make_engine,
                                                                log_instances):
    engine = make_engine(anonymize="true", log_instances=log_instances)
    ds = fresh_ct(PatientID="AT-ONCE", PatientName="RIGHT^AWAY")
    assoc = _association(engine.port)
    try:
        assert parked(assoc).send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    stores = engine.txlog.query(types=["store"])
    assert len(stores) == (1 if log_instances == "true" else 0)
    (doc,) = engine.archive.index.all_studies()
    (stored,) = stored_files(engine.storage.root)
    out = engine.data_dir.parent / "restored.dcm"
    restore_path(stored, out, engine.privacy.anonymizer().map)  # no wait, no flush
    assert dcmread(out).PatientID == "AT-ONCE" and doc["instances"] == 1


# -- through a running service: what it acknowledged, at once ----------------------------
def test_restore_and_log_see_a_store_right_after_its_answer(service, tmp_path):
    svc = service("--set", "anonymize=true", "--set", "anonymize_uids=true")
    ds = fresh_ct(PatientID="RIGHT-NOW", PatientName="AT^ONCE")
    from helpers import send
    assert [r.Status for r in send(svc.port, [ds])] == [0x0000]
    log = svc.cli("log", "--json", "--type", "store")  # no wait: it is on record
    (record,) = [orjson.loads(line) for line in log.stdout.splitlines()]
    assert record["outcome"] == "ok" and record["jid"]
    (stored,) = stored_files(svc.data_dir / "storage")
    out = tmp_path / "restored.dcm"
    done = svc.cli("restore", str(stored), str(out))  # the service's map answers
    assert done.returncode == 0, done.stderr
    restored = dcmread(out)
    assert (restored.PatientID, restored.SOPInstanceUID) == ("RIGHT-NOW", ds.SOPInstanceUID)


def test_an_idle_service_stops_within_a_second_of_sigterm(service, tmp_path):
    svc = service()
    from helpers import send
    send(svc.port, [fresh_ct(), fresh_ct()])
    started = time.monotonic()
    assert svc.stop() == 0
    assert time.monotonic() - started < 1.0


def test_a_service_stops_within_a_second_while_an_upload_waits_on_the_api(service,
                                                                         tmp_path):
    from conftest import cli_env
    from upload_server import UploadApi
    api = UploadApi()
    api.state.delay = 30  # the API takes the body and says nothing for 30 s
    try:
        env = {**cli_env(tmp_path), "DICOMTUI_API_PASSWORD": api.state.password}
        svc = service("--set", "zip_studies=true", "--set", "auto_upload=true",
                      "--set", f"api_url={api.url}", "--set", "api_username=uploader",
                      "--set", "study_timeout=1", env=env)
        from helpers import send
        send(svc.port, [fresh_ct(), fresh_ct()])
        _wait(lambda: any(u["state"] == "uploading" for u in orjson.loads(
            svc.cli("uploads", "--json").stdout or "[]")), "an upload in progress")
        started = time.monotonic()
        assert svc.stop() == 0
        assert time.monotonic() - started < 1.0
    finally:
        api.stop()


def test_restarts_never_leave_two_upload_or_completion_threads(make_engine, tmp_path):
    from upload_server import UploadApi
    api = UploadApi()
    api.state.delay = 30
    try:
        engine = make_engine(zip_studies="true", auto_upload="true", api_url=api.url,
                             api_token="t0ken", study_timeout="1")
        from helpers import send
        send(engine.port, [fresh_ct()])
        _wait(lambda: any(u.state == "uploading" for u in engine.shipping.upload_list()),
              "an upload in progress")
        for _ in range(3):
            engine.restart()
        names = [t.name for t in threading.enumerate() if t.is_alive()]
        assert names.count("dicomtui-uploads") == 1, names
        assert names.count("dicomtui-studies") == 1, names
    finally:
        api.stop()


# -- folder fsyncs in the group commit ------------------------------------------------------
def test_concurrent_stores_into_one_folder_share_its_fsync(tmp_path, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(0.005), real(fd),
                                                 synced.append(fd)))
    journal = Journal(tmp_path / "j", save=lambda: True)

    def writer(n: int) -> None:
        for i in range(25):
            journal.applied(journal.write({"n": n, "i": i}, folder))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 0 < len(synced) < 100  # one folder fsync per group, not per store


def test_a_folder_removed_before_its_group_commit_does_not_fail_the_line(tmp_path):
    journal = Journal(tmp_path / "j", save=lambda: True)
    journal.applied(journal.write({"i": 1}, tmp_path / "cleaned-up-already"))
    assert [e["i"] for e in Journal(tmp_path / "j", save=lambda: True).replay()] == [1]


def test_replay_skips_a_line_whose_file_never_reached_the_folder(make_engine, tmp_path):
    """The kernel may write a journal line before its folder's entry: that store was
    never answered (the answer waits for both), so its line must not invent an index
    entry or a log record. A line whose file is there is recovered."""
    source = make_engine()
    hold = source.journal._checkpointing  # no checkpoint may drop the lines meanwhile
    with hold:
        for patient in ("KEPT", "LOST"):
            assoc = _association(source.port)
            try:
                assert parked(assoc).send_c_store(
                    fresh_ct(PatientID=patient)).Status == 0x0000
            finally:
                assoc.release()
        segments = sorted((source.data_dir / "journal").glob("*.jsonl"))
        lines = [orjson.loads(x) for s in segments for x in s.read_bytes().splitlines()]
    by_patient = {e["tx"]["patient_id"]: e for e in lines}
    assert set(by_patient) == {"KEPT", "LOST"}
    crashed = make_engine()  # another data dir, as a crash left it: lines, one file
    crashed.close()
    kept = by_patient["KEPT"]["stored"]["path"]
    target = crashed.storage.root / kept
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((source.storage.root / kept).read_bytes())
    (crashed.data_dir / "journal" / "000001.jsonl").write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in by_patient.values()))
    again = make_engine(crashed.data_dir)
    (doc,) = again.archive.index.all_studies()
    assert doc["instances"] == 1
    stores = again.txlog.query(types=["store"])
    assert [r["patient_id"] for r in stores] == ["KEPT"]
