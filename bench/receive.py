"""Receive benchmark: `dicomtui serve` against a bare, stock pynetdicom Storage SCP.

What is measured: the wall time from launching dcmtk `storescu` until every sender has
exited, i.e. association setup, each C-STORE with its response, and the receiver's
durable write (both targets fsync before answering unless --no-fsync). From it come
images/s and MB/s (10^6 bytes of DICOM files sent per second). Every run gets a fresh
server process on a free loopback port with an empty directory, and a run counts only if
every storescu exited 0 and the receiver holds exactly as many files as were sent.

Senders: "nodelay" is storescu with TCP_NODELAY=1 in its environment (dcmtk then
disables Nagle); "stock" is storescu as shipped, which leaves Nagle on and so stalls on
the receiver's delayed ACKs unless the receiver re-arms them. Stock runs send at most
--stock-limit images, as a slow receiver takes ~50 ms per image there.

Reading the ratio: dicomtui images/s divided by bare images/s (medians over --runs),
measured alternately in one invocation. Above 1, dicomtui receives faster than stock
pynetdicom doing nothing but the write; below 1, that is what its extra work (checks,
layout, bookkeeping) costs.

    python bench/receive.py --quick                 # smoke test, a minute
    python bench/receive.py --runs 3                # the full comparison
    python bench/receive.py --targets bare --quick  # the baseline alone

A target "dicomtui@TREE" runs the dicomtui of another checkout (TREE/src), side by
side with this one, e.g. the code before a change:

    git worktree add /tmp/before <commit>
    python bench/receive.py --targets dicomtui,dicomtui@/tmp/before,bare --runs 5
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"
BARE_SCP = Path(__file__).with_name("bare_scp.py")
# dicomtui-anon: dicomtui with anonymize on (the slow path: full decode and re-encode)
# dicomtui-10k: dicomtui whose index already holds 10,000 studies (~1M instances' worth)
AE_TITLES = {"dicomtui": "DICOMTUI", "dicomtui-anon": "DICOMTUI", "dicomtui-10k": "DICOMTUI",
             "bare": "BARE"}
_INDEX_TEMPLATE: list[Path] = []  # built once per invocation, copied into each run
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
SEED = 1


class BenchError(Exception):
    """A target or sender failed in a way that makes the measurement meaningless."""


@dataclass(frozen=True)
class Case:
    size: str
    sender: str
    concurrency: int
    files: tuple[Path, ...]
    total_bytes: int


@dataclass
class Measurement:
    target: str
    case: Case
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return len(self.case.files) / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.case.total_bytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Server:
    target: str
    port: int
    ae_title: str
    storage: Path
    workdir: Path
    pid: int = 0


# --- instances ----------------------------------------------------------------------------

def generate(folder: Path, small: int, large: int) -> dict[str, list[Path]]:
    """Write the synthetic instances once; sorted so series stay together."""
    from dicomtui.dicom import synthetic

    started = time.perf_counter()
    files = {
        "small": synthetic.write_instances(synthetic.small_instances(small, seed=SEED),
                                           folder / "small"),
        "large": synthetic.write_instances(synthetic.synthetic_instances(large, seed=SEED),
                                           folder / "large"),
    }
    print(f"generated {small} small + {large} large instances in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return {size: paths for size, paths in files.items() if paths}


def average_kb(paths: list[Path] | tuple[Path, ...]) -> float:
    return sum(path.stat().st_size for path in paths) / len(paths) / 1000


# --- servers ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_command(target: str, port: int, workdir: Path,
                   fsync: bool) -> tuple[list[str], Path]:
    """The command line that starts `target`, and where it stores received files."""
    target = target.partition("@")[0]  # dicomtui@TREE: that tree's code, same command
    if target.startswith("dicomtui"):
        data = workdir / "data"
        command = [sys.executable, "-m", "dicomtui", "serve", "--data-dir", str(data),
                   "--host", HOST, "--port", str(port), "--ae-title", AE_TITLES[target]]
        if target == "dicomtui-anon":
            command += ["--set", "anonymize=true"]
        return command + ([] if fsync else ["--set", "fsync=false"]), data / "storage"
    out = workdir / "out"
    command = [sys.executable, str(BARE_SCP), "--port", str(port), "--out", str(out),
               "--ae", AE_TITLES[target]]
    return command + ([] if fsync else ["--no-fsync"]), out


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without settings that would change what is measured."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DICOMTUI_") and key != "TCP_NODELAY"}
    return env | extra


@contextmanager
def running_server(target: str, fsync: bool) -> Iterator[Server]:
    """A fresh server process in a fresh temp dir, stopped and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{target.partition('@')[0]}-"))
    port = free_port()
    command, storage = server_command(target, port, workdir, fsync)
    if target == "dicomtui-10k":
        shutil.copytree(index_template(), workdir / "data" / "index")
    log_path = workdir / "server.log"
    tree = target.partition("@")[2]
    env = child_env(PYTHONPATH=str(Path(tree) / "src")) if tree else child_env()
    ae_title = AE_TITLES[target.partition("@")[0]]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_ready(proc, port, ae_title, log_path)
        yield Server(target, port, ae_title, storage, workdir, proc.pid)
        stop(proc, log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def index_template() -> Path:
    """An index of 10,000 synthetic studies (bench/archive_scale.py), built once."""
    if not _INDEX_TEMPLATE:
        from archive_scale import build_index
        folder = Path(tempfile.mkdtemp(prefix="bench-index-")) / "index"
        build_index(folder, 10_000)
        _INDEX_TEMPLATE.append(folder)
    return _INDEX_TEMPLATE[0]


def wait_until_ready(proc: subprocess.Popen, port: int, ae_title: str,
                     log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
        if echo(port, ae_title):
            return
        time.sleep(0.1)
    raise BenchError(f"server not answering C-ECHO after {READY_TIMEOUT:.0f} s:\n"
                     f"{tail(log_path)}")


def echo(port: int, ae_title: str) -> bool:
    """True if a C-ECHO to the port succeeds."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(Verification)
    ae.connection_timeout = ae.acse_timeout = ae.network_timeout = 2
    assoc = ae.associate(HOST, port, ae_title=ae_title)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0x0000


def stop(proc: subprocess.Popen, log_path: Path) -> None:
    """SIGTERM and wait; a server that needs SIGKILL or exits non-zero is an error."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"server ignored SIGTERM for {STOP_TIMEOUT:.0f} s") from None
    if code != 0:
        raise BenchError(f"server exited with {code} on SIGTERM:\n{tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


# --- senders ------------------------------------------------------------------------------

def find_storescu() -> str:
    """dcmtk's storescu: pynetdicom installs a Python `storescu` that may shadow it."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "storescu"
        if os.access(candidate, os.X_OK) and "dcmtk" in version(str(candidate)):
            return str(candidate)
    raise BenchError("dcmtk's storescu not found on PATH (apt install dcmtk)")


def version(executable: str) -> str:
    result = subprocess.run([executable, "--version"], capture_output=True, text=True,
                            timeout=10)
    return (result.stdout + result.stderr).strip()


def split(files: tuple[Path, ...], parts: int) -> list[tuple[Path, ...]]:
    """Contiguous, nearly equal parts, so each sender gets whole series."""
    size, extra = divmod(len(files), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [files[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


def send(storescu: str, case: Case, server: Server) -> tuple[float, list[str]]:
    """Run one storescu per part at once; the time until all exit, and any failures."""
    env = child_env(TCP_NODELAY="1") if case.sender == "nodelay" else child_env()
    logs = [server.workdir / f"storescu-{i}.log" for i in range(case.concurrency)]
    started = time.perf_counter()
    procs = [start_storescu(storescu, part, server, env, log)
             for part, log in zip(split(case.files, case.concurrency), logs)]
    codes = [wait_sender(proc, len(case.files)) for proc in procs]
    elapsed = time.perf_counter() - started
    return elapsed, [f"storescu #{i} exited {code}:\n{tail(logs[i])}"
                     for i, code in enumerate(codes) if code != 0]


def start_storescu(storescu: str, files: tuple[Path, ...], server: Server,
                   env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """-R: propose only the contexts the files need (each file's own transfer syntax)."""
    command = [storescu, "-R", "-aec", server.ae_title, HOST, str(server.port),
               *map(str, files)]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_sender(proc: subprocess.Popen, images: int) -> int:
    try:
        return proc.wait(timeout=60 + images)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def stored_count(storage: Path) -> int:
    return sum(1 for _ in storage.rglob("*.dcm")) if storage.exists() else 0


# --- runs ---------------------------------------------------------------------------------

def measure(target: str, case: Case, storescu: str, fsync: bool) -> Measurement:
    result = Measurement(target, case)
    try:
        with running_server(target, fsync) as server:
            result.seconds, result.errors = send(storescu, case, server)
            found = stored_count(server.storage)
            if found != len(case.files):
                result.errors.append(f"sent {len(case.files)} files, "
                                     f"receiver stored {found}")
    except BenchError as error:
        result.errors.append(str(error))
    return result


def build_cases(files: dict[str, list[Path]], args: argparse.Namespace) -> list[Case]:
    cases = []
    for size, paths in files.items():
        for sender in args.senders:
            chosen = tuple(paths[:args.stock_limit] if sender == "stock" else paths)
            total = sum(path.stat().st_size for path in chosen)
            cases += [Case(size, sender, n, chosen, total) for n in args.concurrency]
    return cases


def run_all(cases: list[Case], args: argparse.Namespace,
            storescu: str) -> list[Measurement]:
    """Each case runs targets alternately (a, b, a, b ...), so drift hits both alike."""
    results = []
    for case in cases:
        for run in range(1, args.runs + 1):
            for target in args.targets:
                result = measure(target, case, storescu, not args.no_fsync)
                report_progress(result, run)
                results.append(result)
    return results


def report_progress(result: Measurement, run: int) -> None:
    case = result.case
    label = (f"{result.target:8} {case.size:5} {case.sender:7} x{case.concurrency} "
             f"run {run}: {len(case.files)} images")
    if result.errors:
        print(f"\n!!! ERROR {label}\n!!! " + "\n!!! ".join(result.errors) + "\n",
              file=sys.stderr, flush=True)
        return
    print(f"  {label} in {result.seconds:.2f} s = {result.images_per_s:.0f} images/s",
          flush=True)


# --- report -------------------------------------------------------------------------------

def median_rate(results: list[Measurement], target: str,
                case: Case) -> tuple[float, float] | None:
    runs = [r for r in results if r.target == target and r.case == case]
    if not runs or any(r.errors for r in runs):
        return None
    return (statistics.median(r.images_per_s for r in runs),
            statistics.median(r.mb_per_s for r in runs))


def table(results: list[Measurement], cases: list[Case], targets: list[str]) -> str:
    """Images/s and MB/s per target, then each target's ratio to the last one."""
    letters = "abcdefgh"[:len(targets)]
    header = f"{'size':6}{'sender':8}{'conc':>5}{'images':>7}"
    header += "".join(f"{letter + ' img/s':>12}{'MB/s':>8}" for letter in letters)
    header += "".join(f"{letter + '/' + letters[-1]:>8}" for letter in letters[:-1])
    lines = [header, "-" * len(header)]
    for case in cases:
        rates = [median_rate(results, target, case) for target in targets]
        line = f"{case.size:6}{case.sender:8}{case.concurrency:>5}{len(case.files):>7}"
        line += "".join(f"{r[0]:>12.1f}{r[1]:>8.1f}" if r else f"{'ERROR':>12}{'':>8}"
                        for r in rates)
        for rate in rates[:-1]:
            line += f"{rate[0] / rates[-1][0]:>8.2f}" if rate and rates[-1] else f"{'-':>8}"
        lines.append(line)
    return "\n".join(lines)


def preamble(args: argparse.Namespace, storescu: str) -> str:
    import pynetdicom

    command = shlex.join([sys.executable, *sys.argv])
    return "\n".join([
        f"command: {command}",
        "targets: " + ", ".join(f"{letter} = {target}" for letter, target
                                in zip("abcdefgh", args.targets, strict=False)),
        f"python {sys.version.split()[0]}, pynetdicom {pynetdicom.__version__}, "
        f"{version(storescu).splitlines()[0]} ({storescu}), {os.cpu_count()} CPUs",
        f"fsync {'off' if args.no_fsync else 'on'}, runs {args.runs}, "
        f"stock sender capped at {args.stock_limit} images",
    ])


# --- command line -------------------------------------------------------------------------

def comma_list(kind):
    return lambda text: [kind(item) for item in text.split(",") if item]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="~40 KB instances")
    parser.add_argument("--large", type=int, default=500, help="512x512 ~530 KB instances")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--concurrency", type=comma_list(int), default=[1, 4])
    parser.add_argument("--senders", type=comma_list(str), default=["nodelay", "stock"])
    parser.add_argument("--targets", type=comma_list(str), default=["dicomtui", "bare"])
    parser.add_argument("--stock-limit", type=int, default=200)
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100 small + 50 large, 1 run")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large, args.runs = 100, 50, 1
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not set(args.senders) <= {"nodelay", "stock"} or not args.senders:
        parser.error("--senders takes nodelay and/or stock")
    names = {target.partition("@")[0] for target in args.targets}
    if not names <= set(AE_TITLES) or not 1 <= len(args.targets) <= 8:
        parser.error("--targets takes up to 8 of dicomtui, dicomtui-anon, dicomtui-10k "
                     "and bare (a dicomtui target may name a tree: dicomtui@TREE)")
    for target in args.targets:
        tree = target.partition("@")[2]
        if tree and not (Path(tree) / "src" / "dicomtui").is_dir():
            parser.error(f"{target}: {tree} holds no src/dicomtui")
    if min(args.concurrency, default=0) < 1 or args.runs < 1:
        parser.error("--concurrency and --runs need values >= 1")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        storescu = find_storescu()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(preamble(args, storescu), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-instances-") as folder:
        files = generate(Path(folder), args.small, args.large)
        for size, paths in files.items():
            print(f"{size}: {len(paths)} files, {average_kb(paths):.0f} KB each")
        cases = build_cases(files, args)
        results = run_all(cases, args, storescu)
    print("\n" + preamble(args, storescu) + "\n\n" + table(results, cases, args.targets))
    failed = sum(1 for r in results if r.errors)
    if failed:
        print(f"\n!!! {failed} run(s) FAILED: see the ERROR lines above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
