"""Cost of recording one transaction as the log grows: it must stay flat.

Appends realistic ~350-byte store records through the DB writer into a sharded
TransactionLog in a temp dir, one flush (one atomic save) per batch, and prints the mean
cost per record over the first, 5th and 10th block of 10,000 records (one shard each).
Within a shard a save grows with the shard (it is capped); across shards it must not
grow at all: a ratio last/first near 1 is the point.

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


def block_mean(costs: list[tuple[int, float]], upto: int, block: int = 10_000) -> float:
    """Mean cost per record over the 10,000-record block ending at `upto` (one shard)."""
    inside = [c for n, c in costs if upto - block < n <= upto]
    return sum(inside) / len(inside)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    costs = run(args.records, args.batch)
    blocks = [b for b in (10_000, 50_000, 100_000, args.records) if b <= args.records]
    print(f"command: python {' '.join(sys.argv)}")
    print(f"mean cost per record over each 10,000-record block (one shard), batches of "
          f"{args.batch} with one atomic save each")
    for b in sorted(set(blocks)):
        print(f"  records {b - 9_999:>7}-{b:<7} {block_mean(costs, b):8.1f} us/record")
    first, last = block_mean(costs, blocks[0]), block_mean(costs, max(blocks))
    print(f"ratio last block / first block: {last / first:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
