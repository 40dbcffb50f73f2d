"""Console benchmark: key latency under a full-speed flood, and what the console costs.

Target (from the issue): with bench/receive.py flooding at full speed, the console
answers a key within 100 ms and the receive rate drops by no more than 5% versus the
same run with no console attached.

What is measured: every run starts a fresh `dicomtui serve` (fresh data dir, free
loopback port, fsync on) and floods it with --images synthetic ~40 KB instances from
--concurrency dcmtk `storescu` processes with TCP_NODELAY=1, timed as bench/receive.py
does (launch until every sender has exited; the service must hold every file).
Run A floods with no console; run B floods while the real console (make_app on a
RemoteBackend, headless through Textual's run_test, 120x40) is attached to the service
from a separate process. A and B alternate --runs times, so drift hits both alike.

During B the console presses 1 (Status), 2 (Log, live tail), 9 (Settings), 2 in a loop,
staying longer on the Log screen (the heaviest: it reads the transaction log as it
grows). Key latency = from posting the key event (as the terminal driver does) until
`app.screen` is the screen that key shows, every widget on it has handled the messages
queued by then, and it is painted (`pilot.pause(0)`). Only presses made while the flood
ran are counted; a key not answered in 10 s counts as 10 s and as "missed".

Reading it: "ratio" is the median images/s with the console divided by the median
without; the target is >= 0.95. The latency target is p95 <= 100 ms. On a 2-core VM
single runs vary by +-20%, so a ratio within that noise means "no measurable cost".
Exit 0 whether or not the targets are met; 1 if a service, sender or console failed.

    python bench/console.py --quick     # smoke test, under a minute
    python bench/console.py --runs 3    # the measurement
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import receive  # noqa: E402  (bench/receive.py: generate, servers, senders)

KEYS = (("1", 0.2), ("2", 0.4), ("9", 0.2), ("2", 0.4))  # key, seconds to stay after it
KEY_TIMEOUT = 10.0  # a key not answered by then counts with this latency
READY_TIMEOUT = 60.0
CHILD_STOP_TIMEOUT = 20.0
MAX_CONSOLE_SECONDS = 900.0
LATENCY_TARGET_MS = 100.0
RATIO_TARGET = 0.95


# --- the console child (a separate process) -----------------------------------------------

def console_child(data_dir: Path, out: Path, stop_file: Path, max_seconds: float) -> int:
    """Attach the real console to the service, press keys until stop_file appears."""
    import traceback

    result: dict = {"presses": [], "error": None}
    try:
        asyncio.run(drive_console(data_dir, out, stop_file, max_seconds, result))
    except BaseException:  # noqa: BLE001 - reported through the file, not stdout
        result["error"] = traceback.format_exc()
    write_json(out, result)
    return 0 if result["error"] is None else 1


async def drive_console(data_dir: Path, out: Path, stop_file: Path, max_seconds: float,
                        result: dict) -> None:
    from dicomtui.backend.remote import RemoteBackend
    from dicomtui.locations import socket_path
    from dicomtui.tui.app import make_app

    app = make_app(lambda: RemoteBackend(socket_path(data_dir)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_attached(pilot)
        for key, _ in KEYS:  # warm up: each screen mounted once, as in everyday use
            await press(pilot, key)
        ready_file(out).write_text("ready")
        cpu, wall = time.process_time(), time.monotonic()
        deadline = wall + max_seconds
        while not stop_file.exists() and time.monotonic() < deadline:
            for key, stay in KEYS:
                result["presses"].append(await press(pilot, key))
                await pilot.pause(stay)
        result["cpu_share"] = (time.process_time() - cpu) / (time.monotonic() - wall)
        write_json(out, result)  # before teardown, in case leaving run_test hangs


async def wait_attached(pilot) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while pilot.app.backend is None or pilot.app.snapshot is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"console not attached after {READY_TIMEOUT:.0f} s: "
                               f"{pilot.app.problem or 'no poll answered'}")
        await pilot.pause(0.05)


async def press(pilot, key: str) -> dict:
    """One key press, posted as the terminal driver posts it; its latency until the
    screen it shows is current, every widget on it has handled its queued messages and
    it is painted. (pilot.press is not used: it also waits until the whole process is
    idle by CPU time, up to 2 s, which under load is not the key's latency.)"""
    from dicomtui.tui.screens.log import LogScreen
    from dicomtui.tui.screens.settings import SettingsScreen
    from dicomtui.tui.screens.status import StatusScreen
    from textual import events

    expected = {"1": StatusScreen, "2": LogScreen, "9": SettingsScreen}[key]
    wall, started = time.time(), time.perf_counter()
    event = events.Key(key, key)  # what the terminal driver posts for a key stroke
    event.set_sender(pilot.app)
    pilot.app.post_message(event)
    while not isinstance(pilot.app.screen, expected):
        if time.perf_counter() - started > KEY_TIMEOUT:
            break
        await asyncio.sleep(0.002)
    await pilot.pause(0)  # every widget of the screen has handled its messages; painted
    latency = min(time.perf_counter() - started, KEY_TIMEOUT)
    return {"key": key, "at": wall, "ms": latency * 1000,
            "ok": isinstance(pilot.app.screen, expected)}


def ready_file(out: Path) -> Path:
    return out.with_name(out.name + ".ready")


def write_json(path: Path, data: dict) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data))
    temp.replace(path)


# --- the parent: console process control --------------------------------------------------

def start_console(workdir: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, stop_file = workdir / "console.json", workdir / "console.stop"
    command = [sys.executable, str(Path(__file__).resolve()), "--console-child",
               str(workdir / "data"), str(out), str(stop_file)]
    with open(workdir / "console.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env=receive.child_env())
    return proc, out, stop_file


def wait_console_ready(proc: subprocess.Popen, out: Path, workdir: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready_file(out).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise receive.BenchError("console did not attach:\n"
                                     f"{child_failure(out, workdir)}")
        time.sleep(0.05)


def stop_console(proc: subprocess.Popen, out: Path, stop_file: Path,
                 workdir: Path) -> dict:
    """Ask it to stop (stop file), then SIGTERM, then SIGKILL; what it measured."""
    stop_file.touch()
    for action in (None, signal.SIGTERM, signal.SIGKILL):
        if action is not None and proc.poll() is None:
            proc.send_signal(action)
        try:
            proc.wait(timeout=CHILD_STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    data = json.loads(out.read_text()) if out.exists() else {"error": "no result file"}
    if data.get("error"):
        raise receive.BenchError(f"console failed:\n{child_failure(out, workdir)}")
    return data


def child_failure(out: Path, workdir: Path) -> str:
    error = json.loads(out.read_text()).get("error") if out.exists() else None
    return error or receive.tail(workdir / "console.log")


def wait_socket(data_dir: Path) -> None:
    from dicomtui.locations import socket_path

    deadline = time.monotonic() + READY_TIMEOUT
    while not socket_path(data_dir).exists():
        if time.monotonic() > deadline:
            raise receive.BenchError(f"no control socket in {data_dir}")
        time.sleep(0.05)


# --- runs ---------------------------------------------------------------------------------

def flood(storescu: str, case: receive.Case, server: receive.Server) -> float:
    """Send every file; the seconds it took. A failed or short flood is an error."""
    seconds, errors = receive.send(storescu, case, server)
    found = receive.stored_count(server.storage)
    if found != len(case.files):
        errors.append(f"sent {len(case.files)} files, service stored {found}")
    if errors:
        raise receive.BenchError("\n".join(errors))
    return seconds


def run_once(storescu: str, case: receive.Case, console: bool) -> dict:
    """One flood on a fresh service: images/s, the key presses made during it and the
    console's CPU share (of one core) while it pressed keys."""
    with receive.running_server("dicomtui", fsync=True) as server:
        wait_socket(server.workdir / "data")
        if not console:
            return {"rate": len(case.files) / flood(storescu, case, server)}
        proc, out, stop_file = start_console(server.workdir)
        try:
            wait_console_ready(proc, out, server.workdir)
            started = time.time()
            seconds = flood(storescu, case, server)
            ended = time.time()
        finally:
            data = stop_console(proc, out, stop_file, server.workdir)
        during = [p for p in data["presses"] if started <= p["at"] <= ended]
        return {"rate": len(case.files) / seconds, "presses": during,
                "cpu": data.get("cpu_share", 0.0)}


def run_all(storescu: str, case: receive.Case, runs: int) -> dict:
    results: dict = {"without": [], "with": [], "presses": [], "cpu": []}
    for run in range(1, runs + 1):
        for console in (False, True):
            got = run_once(storescu, case, console)
            results["with" if console else "without"].append(got["rate"])
            line = f"  run {run} no console      : {got['rate']:6.1f} images/s"
            if console:
                results["presses"] += got["presses"]
                results["cpu"].append(got["cpu"])
                line = (f"  run {run} console attached: {got['rate']:6.1f} images/s, "
                        f"{len(got['presses'])} key presses, console CPU "
                        f"{got['cpu']:.0%} of a core")
            print(line, flush=True)
    return results


# --- report -------------------------------------------------------------------------------

def percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def report(results: dict, case: receive.Case) -> str:
    without = statistics.median(results["without"])
    with_console = statistics.median(results["with"])
    ratio = with_console / without
    latencies = [p["ms"] for p in results["presses"]]
    lines = [f"{'runs':<28}{len(results['without'])} x (no console, console attached), "
             f"{len(case.files)} images each",
             rate_line("images/s, no console", without, results["without"]),
             rate_line("images/s, console attached", with_console, results["with"]),
             f"{'ratio attached / none':<28}{ratio:.3f}   target >= {RATIO_TARGET}: "
             f"{verdict(ratio >= RATIO_TARGET)}",
             f"{'console CPU':<28}{statistics.median(results['cpu']):.0%} of a core "
             "(median, while pressing keys)"]
    return "\n".join(lines + latency_lines(latencies, results["presses"]))


def rate_line(label: str, median: float, runs: list[float]) -> str:
    return f"{label:<28}{median:.1f} (median of {', '.join(f'{r:.1f}' for r in runs)})"


def latency_lines(latencies: list[float], presses: list[dict]) -> list[str]:
    if not latencies:
        return [f"{'key latency':<28}no key presses during the floods: "
                f"{verdict(False)} (use more --images)"]
    p95 = percentile(latencies, 95)
    missed = sum(1 for p in presses if not p["ok"])
    return [f"{'key latency ms':<28}p50 {percentile(latencies, 50):.1f}  p95 {p95:.1f}  "
            f"max {max(latencies):.1f}  ({len(latencies)} key presses, {missed} missed)",
            f"{'  by key (p50 / max)':<28}" + by_key(presses),
            f"{'key latency target':<28}p95 <= {LATENCY_TARGET_MS:.0f} ms: "
            f"{verdict(p95 <= LATENCY_TARGET_MS and not missed)}"]


def by_key(presses: list[dict]) -> str:
    names = {"1": "Status", "2": "Log", "9": "Settings"}
    parts = []
    for key, name in names.items():
        ms = [p["ms"] for p in presses if p["key"] == key]
        if ms:
            parts.append(f"{key} {name} {percentile(ms, 50):.0f} / {max(ms):.0f}")
    return ",  ".join(parts)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- command line -------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="~40 KB instances")
    parser.add_argument("--concurrency", type=int, default=4, help="storescu processes")
    parser.add_argument("--runs", type=int, default=3, help="A/B pairs")
    parser.add_argument("--quick", action="store_true", help="400 images, 1 run")
    parser.add_argument("--console-child", nargs=3, help=argparse.SUPPRESS,
                        metavar=("DATA_DIR", "OUT", "STOP"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.runs = min(args.images, 400), 1
    if args.images < args.concurrency or args.concurrency < 1 or args.runs < 1:
        parser.error("--images >= --concurrency >= 1 and --runs >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.console_child:
        return console_child(*map(Path, args.console_child), MAX_CONSOLE_SECONDS)
    try:
        storescu = receive.find_storescu()
        with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
            files = tuple(receive.generate(Path(folder), args.images, 0)["small"])
            total = sum(path.stat().st_size for path in files)
            case = receive.Case("small", "nodelay", args.concurrency, files, total)
            print(f"{len(files)} files, {receive.average_kb(files):.0f} KB each; storescu "
                  f"TCP_NODELAY=1 x{args.concurrency}; fsync on; {os.cpu_count()} CPUs",
                  flush=True)
            results = run_all(storescu, case, args.runs)
    except receive.BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n" + report(results, case))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
