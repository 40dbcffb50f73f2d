"""The upload queue and worker against a real HTTP server with failures on demand."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import pytest

from conftest import free_port
from dicomtui.service.shipping.upload_queue import QueueError, UploadQueue
from dicomtui.service.receiving.store import StorageWriter
from dicomtui.service.shipping.upload_worker import UploadWorker
from dicomtui.settings import resolve
from upload_server import UploadApi


@pytest.fixture
def api():
    server = UploadApi()
    yield server
    server.stop()


def make_zip(folder: Path, name: str, size: int = 200_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("1.dcm", os.urandom(size))
    return path


class Rig:
    """A queue and a worker on real settings; stopped at the end of the test."""

    def __init__(self, tmp_path: Path, url: str, **overrides: str) -> None:
        self.values = {"api_url": url, "api_username": "uploader",
                       "api_password": "s3cret-pass", "retry_delay": "0.05",
                       "max_retries": "3", "upload_timeout": "5", **overrides}
        self.tmp = tmp_path
        self.queue = UploadQueue(tmp_path / "uploads.json")
        (tmp_path / "storage").mkdir(exist_ok=True)
        self.worker = UploadWorker(self.queue, lambda: resolve(self.values),
                                   StorageWriter(tmp_path / "storage"))

    def add(self, name: str, size: int = 200_000):
        path = make_zip(self.tmp / "zips", name, size)
        return self.queue.add(path, path.stat().st_size, "1.2.3", "auto")

    def wait(self, item_id: int, *states: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.queue.get(item_id)
            if item.state in states:
                return item
            time.sleep(0.02)
        raise AssertionError(f"upload {item_id} stayed {self.queue.get(item_id)}")


@pytest.fixture
def rig(tmp_path, api):
    made = []

    def _make(url: str | None = None, **overrides: str) -> Rig:
        r = Rig(tmp_path, url or api.url, **overrides)
        made.append(r)
        return r
    yield _make
    for r in made:
        r.worker.stop()


def test_an_upload_streams_the_zip_with_a_login_and_is_done_once(rig, api):
    r = rig()
    item = r.add("a.zip", 3_000_000)
    r.worker.start()
    done = r.wait(item.id, "done")
    assert done.attempts == 1 and done.last_error == ""
    (received,) = api.state.received
    assert received.name == "a.zip" and received.data == Path(item.path).read_bytes()
    assert api.state.logins == 1
    assert r.queue.get(item.id).bytes_sent >= item.size  # progress was reported
    # saved: a new queue on the same file knows it is done
    assert UploadQueue(r.tmp / "uploads.json").get(item.id).state == "done"


def test_503_twice_then_success_is_retried_with_backoff(rig, api):
    api.state.script = [503, 503]
    r = rig()
    item = r.add("b.zip")
    r.worker.start()
    done = r.wait(item.id, "done")
    assert done.attempts == 3
    assert [s for p, s in api.state.requests if p.endswith("upload/")] == [503, 503, 201]
    (received,) = api.state.received
    assert received.key == f"dicomtui-{item.id}-{item.created}"  # same on every retry


def test_retry_after_is_honoured_for_429(rig, api):
    api.state.script = [(429, {"Retry-After": "1"}, {"detail": "slow down"})]
    r = rig()
    item = r.add("c.zip")
    started = time.monotonic()
    r.worker.start()
    assert r.wait(item.id, "done").attempts == 2
    assert time.monotonic() - started >= 0.9  # Retry-After, not the 0.05 s retry_delay
    assert [s for p, s in api.state.requests if p.endswith("upload/")] == [429, 201]


def test_an_expired_token_mid_queue_logs_in_again_once(rig, api):
    r = rig()
    first, second, third = r.add("1.zip"), r.add("2.zip"), r.add("3.zip")
    r.worker.start()
    r.wait(first.id, "done")
    api.expire_tokens()
    r.wait(second.id, "done")
    r.wait(third.id, "done")
    assert api.state.logins == 2
    assert sorted(api.names()) == ["1.zip", "2.zip", "3.zip"]
    assert r.queue.get(second.id).attempts == 1  # the 401 did not cost an attempt


def test_a_400_is_not_retried_and_keeps_the_servers_message(rig, api):
    api.state.script = [(400, {}, {"detail": "not a DICOM study"})]
    r = rig()
    item = r.add("d.zip")
    r.worker.start()
    failed = r.wait(item.id, "failed")
    assert failed.attempts == 1 and "400" in failed.last_error
    assert "not a DICOM study" in failed.last_error
    assert api.state.received == []


def test_connection_refused_is_retried_then_fails_with_the_reason(rig):
    r = rig(f"http://127.0.0.1:{free_port()}/api", max_retries="2")
    item = r.add("e.zip")
    r.worker.start()
    failed = r.wait(item.id, "failed")
    assert failed.attempts == 3 and "cannot reach" in failed.last_error
    assert "gave up after 3 attempts" in failed.last_error


def test_a_server_slower_than_the_timeout_is_retried(rig, api):
    api.state.delay = 2.5
    r = rig(upload_timeout="1", max_retries="5")
    item = r.add("f.zip", 10_000)
    r.worker.start()
    queued = r.wait(item.id, "queued", timeout=30)
    deadline = time.monotonic() + 20
    while "within 1 s" not in r.queue.get(item.id).last_error:
        assert time.monotonic() < deadline, r.queue.get(item.id)
        time.sleep(0.05)
    assert queued.id == item.id
    api.state.delay = 0.0
    assert r.wait(item.id, "done").attempts >= 2


def test_wrong_credentials_fail_without_showing_the_password(rig, api):
    r = rig(api_password="wrong-password-123")
    item = r.add("g.zip")
    r.worker.start()
    failed = r.wait(item.id, "failed")
    assert "401" in failed.last_error and "wrong-password-123" not in failed.last_error
    assert b"wrong-password-123" not in (r.tmp / "uploads.json").read_bytes()


def test_an_api_token_is_used_as_is(rig, api):
    api.state.tokens.add("given-token-xyz")
    r = rig(api_username="", api_password="", api_token="given-token-xyz")
    item = r.add("h.zip")
    r.worker.start()
    r.wait(item.id, "done")
    assert api.state.logins == 0 and api.state.received[0].token == "given-token-xyz"


def test_retry_and_cancel_follow_the_state(rig, api):
    api.state.script = [(400, {}, {"detail": "nope"})]
    r = rig()
    item = r.add("i.zip")
    r.worker.start()
    r.wait(item.id, "failed")
    with pytest.raises(QueueError):
        r.queue.cancel(item.id) and r.queue.cancel(item.id)
    again = r.add("j.zip")
    r.wait(again.id, "done")
    with pytest.raises(QueueError, match="already done"):
        r.queue.cancel(again.id)
    with pytest.raises(QueueError, match="only failed or cancelled"):
        r.queue.retry(again.id)
    r.queue.retry(item.id)
    r.wait(item.id, "done")
    assert sorted(api.names()) == ["i.zip", "j.zip"]


def test_an_upload_interrupted_by_a_crash_is_queued_again(tmp_path):
    queue = UploadQueue(tmp_path / "uploads.json")
    path = make_zip(tmp_path, "k.zip")
    item = queue.add(path, path.stat().st_size)
    queue.update(item.id, state="uploading", attempts=1)
    again = UploadQueue(tmp_path / "uploads.json")  # what a restart reads
    assert again.get(item.id).state == "queued"
    assert "interrupted" in again.get(item.id).last_error


def test_a_stored_password_is_masked_and_its_file_private(tmp_path):
    import stat

    from conftest import cli_env, run_cli
    env = cli_env(tmp_path)
    data_dir = tmp_path / "data"
    done = run_cli("--data-dir", str(data_dir), "config", "set", "api_password",
                   "hunter22-secret", env=env)
    assert done.returncode == 0, done.stderr
    shown = run_cli("--data-dir", str(data_dir), "config", "--json", env=env).stdout
    assert "hunter22-secret" not in shown and "hunter22-secret" not in done.stdout
    assert stat.S_IMODE(os.stat(data_dir / "dicomtui.json").st_mode) == 0o600


def test_a_large_zip_is_streamed_not_loaded_into_memory(api, tmp_path):
    """A 400 MB zip goes out while the uploading process grows by far less than that."""
    import subprocess
    import sys
    api.state.discard = True
    api.state.tokens.add("big-token")
    big = tmp_path / "big.zip"
    with open(big, "wb") as fh:  # sparse: no disk space used
        fh.truncate(400 * 1024 * 1024)
    script = f"""
import resource, sys
from pathlib import Path
from dicomtui.service.shipping.upload_client import UploadClient
from dicomtui.settings import resolve
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
settings = resolve({{"api_url": "{api.url}", "api_token": "big-token"}})
sent = [0]
outcome = UploadClient(lambda: settings).send(Path("{big}"), lambda n: sent.__setitem__(0, sent[0] + n), lambda: False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome.kind, sent[0], (after - before) // 1024)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    kind, sent, grew_mb = done.stdout.split()
    assert kind == "done" and int(sent) == 400 * 1024 * 1024
    assert api.state.discarded and api.state.discarded[0] > 400 * 1024 * 1024
    assert int(grew_mb) < 64, f"the uploader grew by {grew_mb} MB"
    print(f"400 MB upload: the uploader grew by {grew_mb} MB")
