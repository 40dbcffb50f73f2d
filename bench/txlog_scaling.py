"""Cost of recording one transaction as the log grows: it must stay flat.

Appends realistic ~350-byte store records through the DB writer into a sharded
TransactionLog in a temp dir, one flush (one atomic save) per batch, and prints the
cost per record of the batches around the 1st, 10,000th, 50,000th and 100,000th record.
The ratio last/first near 1 is the point: a shard is capped, so a save never rewrites
more than one shard, however many records came before.

    python bench/txlog_scaling.py [--records 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter


def record(n: int) -> dict:
    uid = f"1.2.826.0.1.3680043.8.498.{n:012d}"
    return {"time": datetime.now(timezone.utc).isoformat(), "type": "store",
            "outcome": "ok", "status": 0, "calling_ae": "CT_SCANNER_01",
            "called_ae": "DICOMTUI", "peer": "10.1.2.3:40112",
            "sop_class": "1.2.840.10008.5.1.4.1.1.2", "study_uid": uid[:-4],
            "series_uid": uid[:-2], "sop_uid": uid, "patient_id": "PAT000123",
            "modality": "CT", "transfer_syntax": "1.2.840.10008.1.2.1", "bytes": 527_000,
            "duration_ms": 2.4, "path": f"PAT000123/{uid}.dcm", "reason": ""}


def run(records: int, batch: int) -> list[tuple[int, float]]:
    """(records so far, microseconds per record) for every batch."""
    with tempfile.TemporaryDirectory() as tmp:
        log = TransactionLog(Path(tmp) / "log")
        writer = DBWriter(interval=3600)  # only our flush() wakes it
        writer.register("tx", log.append_many, log.flush)
        writer.start()
        costs = []
        for start in range(0, records, batch):
            items = [record(n) for n in range(start, start + batch)]
            began = time.perf_counter()
            for item in items:
                writer.put("tx", item)
            writer.flush(timeout=60)
            costs.append((start + batch, (time.perf_counter() - began) / batch * 1e6))
        writer.stop()
    return costs


def near(costs: list[tuple[int, float]], n: int, window: int = 5) -> float:
    """Median cost of the batches around the n-th record."""
    index = min(range(len(costs)), key=lambda i: abs(costs[i][0] - n))
    around = sorted(c for _, c in costs[max(0, index - window):index + window + 1])
    return around[len(around) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    costs = run(args.records, args.batch)
    points = [p for p in (args.batch, 10_000, 50_000, args.records) if p <= args.records]
    print(f"command: python {' '.join(sys.argv)}")
    print(f"{'record':>8}  {'us/record':>10}  (batch {args.batch}, one atomic save each)")
    for p in points:
        print(f"{p:>8}  {near(costs, p):>10.1f}")
    print(f"ratio last/first: {near(costs, args.records) / near(costs, args.batch):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
