"""Benchmark drawing the marts step's three charts over published marts, against a baseline.

    .venv/bin/python benchmarks/charts.py --data-dir DIR                 # baseline: 8dc56a6
    .venv/bin/python benchmarks/charts.py --data-dir DIR --baseline REV --cold 3 --repeat 5
    .venv/bin/python benchmarks/charts.py --data-dir DIR --png-dir /tmp/charts-png

Builds nothing: it opens the data directory's published tables as the marts step's session sees
them (`Warehouse.scratch_connection()`: a view over each table's Parquet files) and draws the three
charts with the functions the assets use, in the step's order, each over its own cursor in UTC
(as `ChartDrawer` does). The baseline is the `calira_pipeline/reporting` package at `--baseline`
(read with `git show` and imported under another name), so both sides run in one interpreter over
the same connection.

Two measures per chart, each reported for both sides:
- cold: the first drawing in a fresh process, as the marts step draws each chart once (the
  matplotlib import is timed apart); `--cold` processes per side, alternating sides, medians;
- warm: `--repeat` rounds in this process, alternating sides, medians.
CPU is the process's (`time.process_time()`: DuckDB's threads included), wall is elapsed. `sql`
is the part spent in DuckDB calls (execute and fetch, through a timing proxy), `draw` the rest
(matplotlib and PNG encoding). PNG bytes are printed beside: they should not grow.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import duckdb

from calira_pipeline.storage import Warehouse

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "8dc56a6"  # the last commit before the charts were made cheaper to draw
PACKAGE = "calira_pipeline/reporting"
# The marts step's order (build_order): each chart is drawn once its mart is written.
CHARTS = (
    ("equipment_utilisation_monthly", "utilisation_ranking"),
    ("equipment_hour_of_week", "hour_of_week_heatmaps"),
    ("booking_cost_monthly", "cost_by_requester"),
)
SIDES = ("baseline", "new")


class TimedConnection:
    """A DuckDB connection that adds the CPU and wall time of every call it passes on."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.cpu = 0.0
        self.wall = 0.0

    def _timed(self, call: Callable[..., Any], *args: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return call(*args)
        finally:
            self.cpu += time.process_time() - cpu
            self.wall += time.perf_counter() - wall

    def execute(self, *args: Any) -> TimedConnection:
        self._timed(self._con.execute, *args)
        return self

    def fetchall(self) -> list[Any]:
        return cast(list[Any], self._timed(self._con.fetchall))

    def fetchone(self) -> Any:
        return self._timed(self._con.fetchone)


def baseline_package(rev: str, folder: Path) -> str:
    """The reporting package at `rev`, importable as `calira_charts_baseline`."""
    name = "calira_charts_baseline"
    target = folder / name
    target.mkdir()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:{PACKAGE}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    for file in (f for f in listing if f.endswith(".py")):
        source = subprocess.run(
            ["git", "show", f"{rev}:{PACKAGE}/{file}"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        (target / file).write_text(source.replace("calira_pipeline.reporting", name))
    sys.path.insert(0, str(folder))
    return name


def chart_module(side: str, rev: str, folder: Path) -> ModuleType:
    """The charts module of one side: `rev`'s package (written under `folder`), or this one."""
    if side == "baseline":
        return importlib.import_module(f"{baseline_package(rev, folder)}.charts")
    return importlib.import_module("calira_pipeline.reporting.charts")


def chart_modules(rev: str, folder: Path) -> dict[str, ModuleType]:
    return {side: chart_module(side, rev, folder) for side in ("baseline", "new")}


def draw(con: duckdb.DuckDBPyConnection, module: ModuleType, function: str,
         png_dir: Path | None, side: str) -> dict[str, float]:
    """One chart as the marts step draws it; its CPU and wall, in SQL and in all."""
    cursor = con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    timed = TimedConnection(cursor)
    cpu, wall = time.process_time(), time.perf_counter()
    with cursor:
        chart = getattr(module, function)(timed, "sandbox")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if png_dir is not None:
        (png_dir / f"{side}-{function}.png").write_bytes(chart.png)
    return {"cpu": cpu, "wall": wall, "sql_cpu": timed.cpu, "sql_wall": timed.wall,
            "png_bytes": len(chart.png)}


def cold_child(args: argparse.Namespace) -> None:
    """One fresh process: import pyplot (timed), then each chart once; JSON on stdout."""
    with tempfile.TemporaryDirectory() as tmp, \
            Warehouse(args.data_dir).scratch_connection() as con:
        module = chart_module(args.child, args.baseline, Path(tmp))  # its side only
        # The marts step's session has run parameterised queries before its first chart, and
        # DuckDB imports pandas (~0.6 s) on the first one: not a cost of drawing.
        con.execute("select $x", {"x": 1})
        cpu, wall = time.process_time(), time.perf_counter()
        module._pyplot()
        result: dict[str, Any] = {"import_pyplot": {"cpu": time.process_time() - cpu,
                                                    "wall": time.perf_counter() - wall}}
        for _, function in CHARTS:
            result[function] = draw(con, module, function, args.png_dir, args.child)
    print(json.dumps(result))


def cold(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    command = [sys.executable, __file__, "--data-dir", str(args.data_dir), "--baseline",
               args.baseline]
    for _ in range(args.cold):
        for side in SIDES:
            extra = ["--png-dir", str(args.png_dir)] if args.png_dir else []
            out = subprocess.run([*command, *extra, "--child", side], check=True,
                                 capture_output=True, text=True, env=os.environ).stdout
            runs[side].append(json.loads(out.splitlines()[-1]))
    return runs


def warm(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp, \
            Warehouse(args.data_dir).scratch_connection() as con:
        modules = chart_modules(args.baseline, Path(tmp))
        for side in SIDES:  # untimed: fonts, caches and DuckDB's first reads
            for _, function in CHARTS:
                draw(con, modules[side], function, None, side)
        for _ in range(args.repeat):
            for side in SIDES:
                runs[side].append({function: draw(con, modules[side], function, None, side)
                                   for _, function in CHARTS})
    return runs


def report(title: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n{title} (medians of {len(runs['new'])} per side)")
    print(f"{'chart':<24}{'side':<10}{'CPU s':>8}{'wall s':>8}{'SQL CPU':>9}{'SQL wall':>9}"
          f"{'draw CPU':>9}{'PNG bytes':>11}")
    totals = {side: 0.0 for side in SIDES}
    for _, function in CHARTS:
        for side in SIDES:
            rows = [run[function] for run in runs[side]]

            def median(key: str, rows: list[dict[str, float]] = rows) -> float:
                return statistics.median(row[key] for row in rows)

            totals[side] += median("cpu")
            print(f"{function:<24}{side:<10}{median('cpu'):>8.3f}{median('wall'):>8.3f}"
                  f"{median('sql_cpu'):>9.3f}{median('sql_wall'):>9.3f}"
                  f"{median('cpu') - median('sql_cpu'):>9.3f}{int(median('png_bytes')):>11,}")
    if "import_pyplot" in runs["new"][0]:
        for side in SIDES:
            cpu = statistics.median(run["import_pyplot"]["cpu"] for run in runs[side])
            print(f"{'import pyplot':<24}{side:<10}{cpu:>8.3f}")
    print(f"three charts, CPU: baseline {totals['baseline']:.3f} s, new {totals['new']:.3f} s "
          f"({totals['new'] / totals['baseline']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="a data directory with staging and marts published")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline")
    parser.add_argument("--cold", type=int, default=3, help="fresh processes per side")
    parser.add_argument("--repeat", type=int, default=5, help="warm rounds per side")
    parser.add_argument("--png-dir", type=Path, help="write each side's PNGs here")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cold_child(args)
        return
    if args.png_dir:
        args.png_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}")
    if args.cold:
        report("cold: first drawing in a fresh process", cold(args))
    if args.repeat:
        report("warm: drawn again in one process", warm(args))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
