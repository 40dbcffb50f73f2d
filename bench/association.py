"""Association benchmark: what one association costs, beside bare pynetdicom.

Many modalities open an association per image or per series, so the cost of an
association (not the C-STORE rate) is their ceiling. Each round runs, against every
target in turn, N associations made by dcmtk's tools: `echoscu` (associate, C-ECHO,
release) and `storescu` with one small file (a stock storescu proposes ~100 presentation
contexts). Per association it reports the client's wall time (median) and the server's
CPU time (its user+system CPU over the round, divided by N), and the ratio of each
target to the last one (the baseline, bare pynetdicom by default):

    python bench/association.py                          # dicomtui vs bare, 3 rounds
    python bench/association.py --targets dicomtui,dicomtui@/tmp/before,bare
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from receive import HOST, child_env, generate, running_server  # noqa: E402

CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (from /proc: no extra dependency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def one_round(server, command: list[str], n: int) -> tuple[list[float], float]:
    """n associations, one after another; their wall times and the server's CPU."""
    walls = []
    before = cpu_seconds(server.pid)
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([*command, "-aec", server.ae_title, HOST, str(server.port)] if
                       command[0].endswith("echoscu") else
                       [command[0], "-aec", server.ae_title, HOST, str(server.port),
                        *command[1:]], check=True, env=child_env(TCP_NODELAY="1"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
    return walls, (cpu_seconds(server.pid) - before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="dicomtui,bare",
                        help="comma-separated; the last one is the baseline")
    parser.add_argument("--associations", type=int, default=50, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    targets = args.targets.split(",")
    folder = Path(tempfile.mkdtemp(prefix="bench-assoc-"))
    small = generate(folder, 1, 0)["small"][0]
    senders = {"echoscu": ["/usr/bin/echoscu"], "storescu 1 file": [
        "/usr/bin/storescu", str(small)]}
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as stack:
        servers = {t: stack.enter_context(running_server(t, fsync=True)) for t in targets}
        for _ in range(args.rounds):
            for sender, command in senders.items():
                for target in targets:  # alternating, so drift hits all alike
                    w, c = one_round(servers[target], command, args.associations)
                    walls.setdefault((target, sender), []).extend(w)
                    cpus.setdefault((target, sender), []).append(c)
    base = targets[-1]
    print(f"{args.rounds} rounds x {args.associations} associations, 2 decimals in ms; "
          f"ratios against {base}")
    print(f"{'sender':16} {'target':28} {'wall ms':>8} {'cpu ms':>8} {'wall x':>7} "
          f"{'cpu x':>7}")
    for sender in senders:
        bw = statistics.median(walls[(base, sender)])
        bc = statistics.median(cpus[(base, sender)])
        for target in targets:
            w = statistics.median(walls[(target, sender)])
            c = statistics.median(cpus[(target, sender)])
            print(f"{sender:16} {target:28} {w * 1000:8.2f} {c * 1000:8.2f} "
                  f"{w / bw:7.2f} {c / bc if bc else float('nan'):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
