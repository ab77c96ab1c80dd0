"""Peak RSS of the hourly incremental bookings job over a large stored table (issue 10).

    .venv/bin/python benchmarks/incremental_rss.py [--scale large] [--runs 2]

Starts the sandbox in its own process (no latency), stores every booking with `dagster asset
materialize --select bookings`, then runs the `incremental_bookings` job `--runs` times, each
in its own process, and prints each run's wall time, CPU and peak RSS (from `wait4`, so one
process's own peak, not the largest child's so far) with the load average. To compare code
versions, set PYTHONPATH to the version under test; the stored table is written by this
repository's code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import sandbox_process  # this script's folder is on sys.path
from pipeline import sandbox_run_env

BIN = Path(sys.executable).parent


def measured(command: list[str], env: dict[str, str], cwd: str, label: str) -> None:
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True,
                             stderr=subprocess.STDOUT)  # fmt: skip
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{label} failed:\n{output[-4000:]}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{label}: {wall:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} s CPU, peak RSS "
        f"{usage.ru_maxrss / 1024:.0f} MB; load {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with (
        sandbox_process(args.scale, 0, None) as server,
        tempfile.TemporaryDirectory() as work,
    ):
        env = sandbox_run_env(server.base_url, Path(work) / "data", Path(work))
        module = ["-m", "calira_pipeline.definitions"]
        store = [str(BIN / "dagster"), "asset", "materialize", *module, "--select", "bookings"]
        measured(store, env, work, "full bookings load")
        hourly = [str(BIN / "dagster"), "job", "execute", *module, "-j", "incremental_bookings"]
        for run in range(args.runs):
            measured(hourly, env, work, f"incremental run {run + 1}")


if __name__ == "__main__":
    main()
