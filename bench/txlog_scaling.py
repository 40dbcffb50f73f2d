"""Cost of recording one transaction as the log grows: it must stay flat.

Appends realistic ~375-byte store records through the DB writer into a sharded
TransactionLog in a temp dir, one flush (one atomic save) per batch, and prints the cost
per record of the batches around the 1st, 10,000th, 50,000th and 100,000th record.
A save rewrites only the current shard, so a batch costs more as its shard fills (up to
`shard_size`, a fixed cap) and never more as the log grows: batches at the same place
in their shards cost the same, and so does a whole shard, first or last.

    python bench/txlog_scaling.py [--records 100000] [--batch 500] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from dicomtui.db.txlog import TransactionLog
from dicomtui.db.writer import DBWriter


def record(n: int) -> dict:
    """A store record with the engine's main fields, ~375 bytes of JSON with its id."""
    study = f"1.2.826.0.1.3680043.9.{n // 1000}"  # 1,000 images a study, 10 series
    sop = f"{study}.{n // 100 % 10}.{n}"
    return {"time": datetime.now(timezone.utc).isoformat(), "type": "store",
            "outcome": "ok", "status": 0, "calling_ae": "CT_SCANNER_01",
            "called_ae": "DICOMTUI",
            "sop_class": "1.2.840.10008.5.1.4.1.1.2", "study_uid": study,
            "series_uid": sop.rsplit(".", 1)[0], "sop_uid": sop,
            "patient_id": "PAT0123", "modality": "CT", "bytes": 527_000,
            "duration_ms": 2.4}


def run(records: int, batch: int, shard_size: int, where: str | None):
    """Per batch, wall and CPU microseconds per record, from the first put to its save.

    CPU time (all threads of this process) is the steadier figure on a shared machine.
    """
    wall, cpu = [], []
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        log = TransactionLog(Path(tmp) / "log", shard_size=shard_size)
        writer = DBWriter(interval=3600)  # only our flush() wakes it
        writer.register("tx", log.append_many, log.flush)
        writer.start()
        for start in range(0, records, batch):
            items = [record(n) for n in range(start, min(start + batch, records))]
            began, began_cpu = time.perf_counter(), time.process_time()
            for item in items:
                writer.put("tx", item)
            if not writer.flush(timeout=60):
                raise SystemExit(f"the writer failed: {writer.stats()['last_error']}")
            wall.append((time.perf_counter() - began) / len(items) * 1e6)
            cpu.append((time.process_time() - began_cpu) / len(items) * 1e6)
        writer.stop()
    return wall, cpu


def shard_mean(costs: list[float], index: int, per_shard: int) -> float:
    """Mean cost per record of the batches in the shard that batch `index` fell in."""
    first = index // per_shard * per_shard
    inside = costs[first:first + per_shard]
    return sum(inside) / len(inside)


def report(wall: list[float], cpu: list[float], records: int, batch: int,
           shard_size: int) -> None:
    """Print the cost at the marks the design asks about, and the ratios that matter."""
    marks = [m for m in (1, 10_000, 50_000, 100_000) if m <= records]
    per_shard = max(1, shard_size // batch)
    print(f"{records:,} records, batches of {batch}, shard size {shard_size:,}; "
          "one atomic save (orjson, fsync, rename) per batch; us per record")
    print("  around record  place in shard   batch wall   its shard: wall    cpu")
    for mark in marks:
        i = (mark - 1) // batch
        place = i * batch % shard_size
        means = shard_mean(wall, i, per_shard), shard_mean(cpu, i, per_shard)
        print(f"  {mark:>13,}  {place:>6,}-{place + batch:<7,} {wall[i]:>10.1f}"
              f"  {means[0]:>16.1f} {means[1]:>6.1f}")
    for text, last, first in ratios(marks, batch, per_shard):
        print(f"ratio {text:<62} {wall[last] / wall[first]:.2f}")
    last = (marks[-1] - 1) // batch
    for name, costs in (("wall", wall), ("cpu", cpu)):
        whole = shard_mean(costs, last, per_shard) / shard_mean(costs, 0, per_shard)
        print(f"ratio {f'last/first whole shard, {name} (mean of its batches)':<62} "
              f"{whole:.2f}")


def ratios(marks: list[int], batch: int, per_shard: int) -> list[tuple[str, int, int]]:
    """(label, batch index, batch index) pairs: last vs first, like with like."""
    last = (marks[-1] - 1) // batch
    start_of_last, end_of_first = last - last % per_shard, min(last, per_shard - 1)
    pairs = [(f"record {marks[-1]:,} vs 1 (single batches: full vs empty shard)",
              last, 0),
             (f"record {marks[-1]:,} vs {end_of_first * batch + batch:,} "
              "(both fill a shard)", last, end_of_first)]
    if start_of_last > per_shard:  # shard 1 opens without closing one: not alike
        pairs.append((f"record {start_of_last * batch + 1:,} vs "
                      f"{per_shard * batch + 1:,} (both close a shard, open one)",
                      start_of_last, per_shard))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--dir", help="where to make the temp dir (default: $TMPDIR)")
    args = parser.parse_args(argv)
    size = len(orjson.dumps({**record(0), "id": 1}))
    print(f"command: python {' '.join(sys.argv)}   (record: {size} bytes of JSON)")
    wall, cpu = run(args.records, args.batch, args.shard_size, args.dir)
    report(wall, cpu, args.records, args.batch, args.shard_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
