"""Benchmark: the real run contract against a sandbox in its own process; time, memory, bytes.

    .venv/bin/python benchmarks/pipeline.py --scale medium
    .venv/bin/python benchmarks/pipeline.py --scale large                # 1M bookings: minutes
    .venv/bin/python benchmarks/pipeline.py --scale medium --select 'group:raw'
    .venv/bin/python benchmarks/pipeline.py --scale medium --code /path/to/other/checkout
    .venv/bin/python benchmarks/pipeline.py --scale large --env CALIRA_DUCKDB_MEMORY_LIMIT=512MB

Starts `calira-pipeline sandbox --scale S` in its own process on a free loopback port, waits until
it accepts connections, then runs `dagster asset materialize -m calira_pipeline.definitions
--select '*'` (the run contract) as a separate process into a fresh data directory and reports:

- wall time of the run process (process start included);
- peak RSS of the run process: `getrusage(RUSAGE_CHILDREN).ru_maxrss` read right after the run is
  reaped and before the sandbox is (so it is the run's), and the peak of the sum of RSS over the
  run's process tree polled from /proc every 50 ms (the same unless the run spawns processes);
- bytes written: `write_bytes` from /proc/<pid>/io of every process of the run's tree, polled
  every 50 ms (last value per pid, summed) — what it caused to be written to storage, including
  files it later deleted (`cancelled_write_bytes` is shown too) and Dagster's own run storage;
- final data size: the data directory's regular files, each inode counted once, symlinks not
  followed (DAGSTER_HOME's size, the run's event log, is printed beside it: part of the bytes
  written goes there; `--dagster-home-in-memory` puts it on /dev/shm to leave it out).

`--env NAME=VALUE` (repeatable) sets a `CALIRA_*` variable for the run (the run otherwise gets
none from this shell but the sandbox's URL, credentials and a fresh data directory).
`--code` puts another checkout first on PYTHONPATH (for example the main branch, to measure the
previous storage side by side); by default this checkout's code runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POLL_S = 0.05


@dataclass
class TreeStats:
    peak_rss: int = 0
    written: dict[int, int] = field(default_factory=dict)
    cancelled: dict[int, int] = field(default_factory=dict)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, tree RSS)

    def poll(self, root: int) -> None:
        rss = 0
        for pid in _tree(root):
            try:
                statm = Path(f"/proc/{pid}/statm").read_text().split()
                io = dict(
                    line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()
                )
            except (OSError, ValueError):
                continue  # exited between the listing and the read
            rss += int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
            self.written[pid] = int(io["write_bytes"])
            self.cancelled[pid] = int(io["cancelled_write_bytes"])
        self.peak_rss = max(self.peak_rss, rss)
        self.samples.append((time.time(), rss))


_STEP_EVENT = re.compile(
    # Dagster stamps the lines in the machine's local time with its offset (%z).
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) - dagster - \w+ - .* - "
    r"(\w+) - (STEP_START|STEP_SUCCESS|STEP_FAILURE) - "
)


def step_peaks(log: Path, samples: list[tuple[float, int]]) -> dict[str, int]:
    """Peak tree RSS while each step ran, from the run log's STEP_START/STEP_SUCCESS lines.

    The log's timestamps have whole seconds, so a step's window is widened to whole seconds and
    a sample at a boundary counts for both steps (enough to tell which step holds the peak)."""
    windows: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        found = _STEP_EVENT.match(line)
        if found is None:
            continue
        stamp = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S %z").timestamp()
        if found[3] == "STEP_START":
            windows[found[2]] = [stamp, stamp + 1]
        elif found[2] in windows:
            windows[found[2]][1] = stamp + 1
    return {
        step: max((rss for at, rss in samples if start <= at < end), default=0)
        for step, (start, end) in windows.items()
    }


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the sandbox exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)  # polling a port that is not open yet; not a synchronisation
    raise SystemExit("the sandbox never accepted connections")


def data_size(folder: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen and not os.path.islink(
                os.path.join(dirpath, name)
            ):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def sandbox_run_env(
    base_url: str,
    data_dir: Path,
    dagster_home: Path,
    code: Path = ROOT,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a run against the sandbox at `base_url`: no CALIRA_* from this shell
    but `extra_env`, the sandbox's URL and credentials and `data_dir`; `code` first on
    PYTHONPATH (the benchmarks' scripts share it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env.update(extra_env or {})
    env.update(
        CALIRA_BASE_URL=f"{base_url}/v1",
        CALIRA_CLIENT_ID=SANDBOX_CLIENT_ID,
        CALIRA_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        CALIRA_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(dagster_home),
        PYTHONPATH=os.pathsep.join([str(code), env.get("PYTHONPATH", "")]),
    )
    return env


def run_contract(
    base_url: str,
    work: Path,
    select: str,
    code: Path,
    dagster_home: Path,
    extra_env: dict[str, str] | None = None,
) -> tuple[float, TreeStats]:
    env = sandbox_run_env(base_url, work / "data", dagster_home, code, extra_env)
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "calira_pipeline.definitions"]
    return run_polled([*command, "--select", select], env, work, work / "run.log")


def children_cpu() -> float:
    """User + system CPU of waited-for children: robust to other load on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_polled(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> tuple[float, TreeStats]:
    """Run `command` to its end, polling its process tree; its wall time and TreeStats. Output
    goes to `log`, a file, not a pipe: a full pipe would stall the run's logging."""
    stats = TreeStats()
    started = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=sink)
        while proc.poll() is None:
            stats.poll(proc.pid)
            time.sleep(POLL_S)  # sampling interval of the /proc poll
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"the run failed ({proc.returncode}):\n{tail}")
    return wall, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="medium", choices=["medium", "large", "demo", "small"])
    parser.add_argument("--select", default="*")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs")
    parser.add_argument(
        "--dagster-home-in-memory",
        action="store_true",
        help="keep DAGSTER_HOME (the run's event log) on /dev/shm, so bytes written are the "
        "data directory's alone",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a CALIRA_* setting"
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; code: {args.code}; env {extra_env}")
    port = _free_port()
    sandbox = subprocess.Popen(
        [str(BIN / "calira-pipeline"), "sandbox", "--port", str(port), "--scale", args.scale],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, sandbox)
        home_parent = "/dev/shm" if args.dagster_home_in_memory else None
        with (
            tempfile.TemporaryDirectory() as tmp,
            tempfile.TemporaryDirectory(dir=home_parent) as home,
        ):
            wall, stats = run_contract(
                f"http://127.0.0.1:{port}", Path(tmp), args.select, args.code, Path(home), extra_env
            )
            maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
            size = data_size(Path(tmp) / "data")
            dagster_size = data_size(Path(home))
            written = sum(stats.written.values())
            peaks = step_peaks(Path(tmp) / "run.log", stats.samples)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=60)
    mb = 1e6
    where = "on /dev/shm" if args.dagster_home_in_memory else "on disk"
    print(f"scale {args.scale}, --select {args.select!r}, DAGSTER_HOME {where}")
    print(f"wall time            {wall:8.1f} s")
    print(f"peak RSS (rusage)    {maxrss / mb:8.0f} MB")
    print(f"peak RSS (tree poll) {stats.peak_rss / mb:8.0f} MB")
    cancelled = sum(stats.cancelled.values())
    print(f"bytes written        {written / mb:8.0f} MB  (cancelled {cancelled / mb:,.0f} MB)")
    print(f"final data size      {size / mb:8.0f} MB  (DAGSTER_HOME: {dagster_size / mb:,.0f} MB)")
    print(f"written / data size  {written / size:8.2f} x")
    # Files deleted before the kernel wrote them back (DuckDB's spill files, mostly) never reached
    # the disk: /proc counts them in both figures.
    print(f"  net of cancelled     {(written - cancelled) / size:8.2f} x")
    for step, peak in peaks.items():
        print(f"  peak RSS in {step:22s} {peak / mb:8.0f} MB")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
