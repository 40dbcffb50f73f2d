"""Storage usage, cleanup (by hand and automatic), destinations: engine, CLI, service."""

from __future__ import annotations

import json

from archive_helpers import send_all, study
from helpers import eventually, send

from dicomtui.models import StudyQuery


def wait_quiet(engine) -> None:
    """Until no study counts as being received any more: study_timeout (1 s in these
    tests) after its last instance, by the rule cleanup keeps studies by."""
    eventually(lambda: not [s for s in engine.archive.study_page(StudyQuery()).studies
                            if s.state == "receiving"], what="studies no longer receiving")


def test_storage_report_by_facility_modality_and_day(make_engine):
    engine = make_engine()
    send_all(engine.port, study("A^A", "P1", "20240101", "CT", per_series=3))
    send_all(engine.port, study("B^B", "P2", "20240101", "MR", per_series=2))
    report = engine.archive.storage_report()
    assert report.studies == 2 and report.instances == 5
    assert report.used_bytes == report.indexed_bytes > 0
    assert {r.key: r.instances for r in report.by_modality} == {"CT": 3, "MR": 2}
    assert [(r.key, r.studies) for r in report.by_facility] == [("unknown", 2)]
    assert len(report.by_day) == 1 and report.by_day[0].instances == 5
    assert report.disk_total >= report.disk_free > 0


def test_cleanup_removes_old_studies_files_index_and_logs_them(make_engine):
    engine = make_engine(study_timeout="1")
    old = study("OLD^ONE", "P1", "20240101", series=2)
    send_all(engine.port, old)
    wait_quiet(engine)
    used = engine.storage.used_bytes
    preview = engine.archive.retention.cleanup_plan(0)
    assert [c.uid for c in preview.remove] == [str(old[0].StudyInstanceUID)]
    assert (engine.storage.root / "P1").exists()  # a preview removes nothing
    job = engine.archive.jobs.wait(engine.archive.retention.start_cleanup(0).id, 30)
    assert job.state == "done" and job.result["studies"] == 1 and job.result["files"] == 4
    assert not (engine.storage.root / "P1").exists()  # empty folders pruned
    assert engine.archive.index.study(str(old[0].StudyInstanceUID)) is None
    assert engine.storage.used_bytes == used - job.result["bytes"] == 0
    engine.writer.flush()
    records = [e.data for e in engine.ring.since(0).events
               if e.data.get("type") == "cleanup"]
    assert records[0]["study_uid"] == str(old[0].StudyInstanceUID)
    assert records[0]["instances"] == 4


def test_cleanup_keeps_studies_being_received_or_waiting_for_upload(make_engine, tmp_path):
    engine = make_engine(study_timeout="1")
    waiting = study("WAIT^UPLOAD", "P1", "20240101")
    send_all(engine.port, waiting)
    wait_quiet(engine)
    zip_path = tmp_path / "w.zip"
    zip_path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    engine.shipping.uploads.add(zip_path, 22, str(waiting[0].StudyInstanceUID), "auto")
    fresh = study("JUST^NOW", "P2", "20240101")
    send_all(engine.port, fresh)
    plan = engine.archive.retention.cleanup_plan(0)
    assert plan.remove == []
    reasons = {c.uid: c.kept_because for c in plan.keep}
    assert reasons[str(waiting[0].StudyInstanceUID)].startswith("waiting for upload")
    assert reasons[str(fresh[0].StudyInstanceUID)].startswith("being received")
    job = engine.archive.jobs.wait(engine.archive.retention.start_cleanup(0).id, 30)
    assert job.result["studies"] == 0 and len(engine.archive.index.studies) == 2


def test_auto_cleanup_makes_room_for_a_new_study(make_engine):
    engine = make_engine(study_timeout="1", max_storage_gb="0.00012",  # 120 kB
                         auto_cleanup="true", retention_days="0")
    old = study("OLD^ONE", "P1", "20240101")  # 2 x ~39 kB
    send_all(engine.port, old)
    wait_quiet(engine)
    new = study("NEW^ONE", "P2", "20240102")
    statuses = [int(r.Status) for r in send(engine.port, new)]
    assert statuses == [0, 0]
    assert engine.archive.index.study(str(old[0].StudyInstanceUID)) is None
    assert engine.archive.index.study(str(new[0].StudyInstanceUID))["instances"] == 2
    assert not (engine.storage.root / "P1").exists()
    assert engine.storage.used_bytes <= 120_000
    records = [e.data for e in engine.ring.since(0).events
               if e.data.get("type") == "cleanup"]
    assert "auto_cleanup" in records[0]["reason"]


def test_without_auto_cleanup_a_full_quota_refuses_and_removes_nothing(make_engine):
    engine = make_engine(study_timeout="1", max_storage_gb="0.00012",
                         retention_days="0")
    old = study("OLD^ONE", "P1", "20240101")
    send_all(engine.port, old)
    wait_quiet(engine)
    statuses = [int(r.Status) for r in send(engine.port, study("NEW^ONE", "P2",
                                                                "20240102"))]
    assert 0xA700 in statuses
    assert engine.archive.index.study(str(old[0].StudyInstanceUID))["instances"] == 2


def test_auto_cleanup_never_removes_the_study_being_received(make_engine):
    engine = make_engine(max_storage_gb="0.00012", auto_cleanup="true",
                         retention_days="0")  # study_timeout 60: all still receiving
    first = study("BUSY^ONE", "P1", "20240101")
    send_all(engine.port, first)
    statuses = [int(r.Status) for r in send(engine.port, study("NEW^ONE", "P2",
                                                                "20240102"))]
    assert 0xA700 in statuses
    assert engine.archive.index.study(str(first[0].StudyInstanceUID))["instances"] == 2


def test_cli_through_the_service(service, tmp_path):
    svc = service("--set", "study_timeout=1")
    send_all(svc.port, study("CLI^ONE", "P1", "20240101", "MR"))
    eventually(lambda: '"state": "receiving"' not in svc.cli("studies", "--json").stdout,
               what="the study no longer receiving")
    storage = svc.cli("storage", "--json")
    assert storage.returncode == 0, storage.stderr
    report = json.loads(storage.stdout)
    assert report["studies"] == 1 and report["by_modality"][0]["key"] == "MR"
    assert "By modality:" in svc.cli("storage").stdout
    dry = svc.cli("cleanup", "--older-than", "0", "--dry-run")
    assert dry.returncode == 0 and "would remove 1 studies" in dry.stdout
    assert svc.cli("studies", "--json").stdout.count('"uid"') == 1
    done = svc.cli("cleanup", "--older-than", "0")
    assert done.returncode == 0 and "removed 1 studies (2 files" in done.stdout
    assert '"total": 0' in svc.cli("studies", "--json").stdout
    logged = svc.cli("log", "--type", "cleanup")
    assert "older than 0 days" in logged.stdout
    again = svc.cli("reindex")
    assert again.returncode == 0 and "indexed 0 of 0 files" in again.stdout


def test_dest_cli_and_its_errors(service):
    svc = service()
    added = svc.cli("dest", "add", "PACS1", "127.0.0.1", "4242", "--description", "room 3")
    assert added.returncode == 0 and "PACS1 = 127.0.0.1:4242" in added.stdout
    listing = svc.cli("dest", "list")
    assert "PACS1" in listing.stdout and "room 3" in listing.stdout
    for bad in (("dest", "add", "X", "127.0.0.1", "70000"),
                ("dest", "add", "BAD\\AE", "127.0.0.1", "104"),
                ("dest", "add", "Y", "not a host!", "104")):
        done = svc.cli(*bad)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    missing = svc.cli("dest", "remove", "NOPE")
    assert missing.returncode == 1 and "no destination 'NOPE'" in missing.stderr
    assert svc.cli("dest", "remove", "PACS1").returncode == 0
    assert "no C-MOVE destinations" in svc.cli("dest", "list").stdout
