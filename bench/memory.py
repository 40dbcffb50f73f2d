"""Memory of `dicomtui serve` as instances arrive: is it flat?

Four sender processes (pynetdicom, each its own association) store small synthetic CT
instances with fresh UIDs, 50 per study, into one `dicomtui serve`; the service's RSS is
read from /proc at each checkpoint. What grows per instance must live on disk or in a
bounded cache, so RSS after 100,000 instances should be within ~30 MB of RSS after
10,000. fsync is off here (it changes the time, not the memory) so the run takes minutes:

    python bench/memory.py                         # checkpoints up to 100,000
    python bench/memory.py --total 20000 --every 5000
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from receive import HOST, running_server  # noqa: E402

PER_STUDY = 50


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sender(port: int, ae_title: str, count: int, done) -> None:
    """One association storing `count` instances, each with new UIDs."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid
    from pynetdicom import AE

    from dicomtui.service.sending.reactor import parked

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ae = AE(ae_title="MEMBENCH")
    ae.dimse_timeout = 300  # a slow answer is a finding (the max is printed), not a failure
    ae.add_requested_context(ds.SOPClassUID, str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate(HOST, port, ae_title=ae_title)
    assert assoc.is_established, "association refused"
    slowest = (0.0, 0)
    try:
        for i in range(count):
            if i % PER_STUDY == 0:
                ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
                ds.PatientID = f"MEM{i // PER_STUDY:06d}"
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            began = time.monotonic()
            status = parked(assoc).send_c_store(ds)
            slowest = max(slowest, (time.monotonic() - began, i))
            if not status or status.Status != 0:
                raise RuntimeError(f"store {i} answered {status or 'nothing'}")
            with done.get_lock():
                done.value += 1
    finally:
        assoc.release()
        print(f"  a sender's slowest answer: {slowest[0]:.2f} s (its store {slowest[1]})",
              flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000, help="checkpoint interval")
    parser.add_argument("--target", default="dicomtui")
    args = parser.parse_args()
    with running_server(args.target, fsync=False) as server:
        print(f"{args.target}: start {rss_mb(server.pid):.0f} MB", flush=True)
        done = multiprocessing.Value("i", 0)
        per = args.total // 4
        procs = [multiprocessing.Process(target=sender, args=(
            server.port, server.ae_title, per, done)) for _ in range(4)]
        started = time.monotonic()
        for p in procs:
            p.start()
        marks, rows = list(range(args.every, per * 4 + 1, args.every)), []
        while marks and any(p.is_alive() for p in procs):
            if done.value >= marks[0]:
                rows.append((marks.pop(0), rss_mb(server.pid)))
                print(f"  {rows[-1][0]:>7} instances  RSS {rows[-1][1]:6.0f} MB  "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
            time.sleep(0.2)
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            print("a sender failed", file=sys.stderr)
            return 1
        if marks:
            rows.append((done.value, rss_mb(server.pid)))
        first, last = rows[0], rows[-1]
        print(f"RSS at {last[0]:,}: {last[1]:.0f} MB; at {first[0]:,}: {first[1]:.0f} MB; "
              f"growth {last[1] - first[1]:+.0f} MB "
              f"({(last[1] - first[1]) * 1024 / max(1, last[0] - first[0]):.2f} KB per "
              "instance after the first checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
