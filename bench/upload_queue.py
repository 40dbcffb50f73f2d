"""Upload-queue bench: does one state change cost the same after many uploads?

Measures the median time of one state change (queued -> uploading -> done, each saved
atomically with fsync before it takes effect) on a queue that has already finished
--small and then --large uploads (each with a 300-file list), side by side in one run,
and prints the ratio large/small. Flat means the cost does not grow with history.

    python bench/upload_queue.py                 # 10 vs 10,000 finished uploads
    python bench/upload_queue.py --large 1000    # quicker
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dicomtui.service.shipping.upload_queue import UploadQueue  # noqa: E402

FILES = {f"P1/1.2.3/1.2.3.4/{n}.dcm": [40_000, 1, n] for n in range(300)}


def finished_queue(folder: Path, count: int) -> UploadQueue:
    """A queue whose `count` uploads have all finished (done)."""
    queue = UploadQueue(folder / "uploads.json")
    for n in range(count):
        item = queue.add(folder / f"{n}.zip", 1_000_000, f"1.2.{n}", "auto", 1, FILES)
        queue.update(item.id, state="done", finished="2026-11-29T00:00:00+00:00")
    return queue


def change_cost(queue: UploadQueue, changes: int) -> float:
    """Median seconds of one saved state change on an item in play."""
    item = queue.add(Path("/tmp/x.zip"), 1, "9.9", "auto", 1, FILES)
    times = []
    for n in range(changes):
        started = time.perf_counter()
        queue.update(item.id, attempts=n, last_error=f"try {n}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        small = finished_queue(Path(a), args.small)
        large = finished_queue(Path(b), args.large)
        costs = {"small": [], "large": []}
        for _ in range(3):  # alternately, so drift hits both alike
            costs["small"].append(change_cost(small, args.changes))
            costs["large"].append(change_cost(large, args.changes))
    s, g = statistics.median(costs["small"]), statistics.median(costs["large"])
    print(f"command: {' '.join(sys.argv)}")
    print(f"one state change after {args.small:>6} finished uploads: {s * 1000:.3f} ms")
    print(f"one state change after {args.large:>6} finished uploads: {g * 1000:.3f} ms")
    print(f"ratio large/small: {g / s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
