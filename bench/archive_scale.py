"""Archive at scale: a `dicomtui serve` whose index holds 10,000 studies (~1,000,000
instances' worth), answering STUDY-level C-FINDs.

What is measured: the wall time of one C-FIND (association already open) from sending
the request to the final response, median over --runs, for a wildcard patient name that
matches about 1% of studies, for one that matches everything, and for an exact Patient
ID; and the service's start time and memory with that index loaded.

The index is built in-process by the same code the receive path uses (new_study,
apply_instance, ArchiveIndex.save), with 100 instances per study on average, so the
study documents count a million instances. The per-study instance files are not written:
STUDY-level queries and the receive path never read them.

    python bench/archive_scale.py                   # 10,000 studies
    python bench/archive_scale.py --studies 1000    # quicker
    python bench/receive.py --targets dicomtui-10k,bare --runs 3   # receiving with it
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dicomtui.dicom.identify import Identity  # noqa: E402
from dicomtui.service.archive.index import ArchiveIndex, apply_instance, new_study  # noqa: E402,E501

SURNAMES = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES",
            "ROBINSON", "WRIGHT", "THOMPSON", "EVANS", "WALKER", "WHITE", "ROBERTS",
            "GREEN", "HALL", "WOOD", "JACKSON", "CLARKE"]
GIVEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MODALITIES = ["CT", "MR", "US", "CR", "DX", "MG", "PT", "NM"]
HOST = "127.0.0.1"


def build_index(folder: Path, studies: int, seed: int = 1) -> int:
    """Write the index of `studies` synthetic studies to `folder`; instances counted."""
    rng = random.Random(seed)
    index = ArchiveIndex(folder)
    docs, total = {}, 0
    start = datetime(2020, 1, 1).astimezone()
    for n in range(studies):
        uid = generate_uid(entropy_srcs=[f"bench-study-{seed}-{n}"])
        when = (start + timedelta(minutes=17 * n)).isoformat()
        doc = docs[uid] = new_study(uid, when, rng.choice(["north", "south", "unknown"]))
        name = f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}{GIVEN[n % 26].lower()}"
        date = (start + timedelta(days=rng.randrange(1500))).strftime("%Y%m%d")
        series = rng.randint(2, 6)
        per_series = max(1, rng.randint(60, 140) // series)
        for s in range(series):
            ident = Identity(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", study_uid=uid,
                             series_uid=f"{uid}.{s + 1}", patient_id=f"PID{n:06d}",
                             patient_name=name, modality=rng.choice(MODALITIES),
                             study_date=date, accession=f"ACC{n:07d}",
                             series_number=s + 1, study_time="101500",
                             study_description="synthetic")
            for _ in range(per_series):
                apply_instance(doc, ident, 520_000, False, when)
                total += 1
    index.replace_all(docs)
    index.save()
    return total


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_service(data: Path, port: int) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dicomtui", "serve", "--data-dir",
                             str(data), "--host", HOST, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ae = AE("BENCH")
    ae.add_requested_context("1.2.840.10008.1.1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assoc = ae.associate(HOST, port, ae_title="DICOMTUI")
        if assoc.is_established:
            assoc.release()
            return proc, time.perf_counter() - started
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("dicomtui serve did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_find(port: int, keys: dict, runs: int) -> tuple[float, int]:
    """Median seconds per C-FIND on one open association, and the number of matches."""
    ae = AE("BENCH")
    ae.add_requested_context(FIND)
    assoc = ae.associate(HOST, port, ae_title="DICOMTUI")
    assert assoc.is_established
    times, matches = [], 0
    try:
        for _ in range(runs):
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            for name in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate",
                         "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
                setattr(query, name, keys.get(name, ""))
            started = time.perf_counter()
            answers = list(assoc.send_c_find(query, FIND))
            times.append(time.perf_counter() - started)
            assert answers[-1][0].Status == 0x0000, answers[-1][0]
            matches = len(answers) - 1
    finally:
        assoc.release()
    return statistics.median(times), matches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        started = time.perf_counter()
        instances = build_index(work / "data" / "index", args.studies)
        size = sum(p.stat().st_size for p in (work / "data" / "index").glob("*.json"))
        print(f"index: {args.studies} studies, {instances} instances' worth, "
              f"{size / 1e6:.1f} MB in 64 shards, built in "
              f"{time.perf_counter() - started:.1f} s")
        port = free_port()
        proc, startup = start_service(work / "data", port)
        try:
            print(f"service: ready in {startup:.2f} s, RSS {rss_mb(proc.pid):.0f} MB")
            for label, keys in (("PatientName=SMITH^J* (about 1%)",
                                 {"PatientName": "SMITH^J*"}),
                                ("PatientName=*a* (any case, ~4%)",
                                 {"PatientName": "*a"}),
                                ("PatientID=PID000123 (exact)",
                                 {"PatientID": "PID000123"}),
                                ("StudyDate=20210101-20210131",
                                 {"StudyDate": "20210101-20210131"}),
                                ("PatientName=* (everything)", {"PatientName": "*"})):
                seconds, matches = time_find(port, keys, args.runs)
                print(f"C-FIND STUDY {label:<36} {matches:>6} matches  "
                      f"{seconds * 1000:8.1f} ms (median of {args.runs})")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
