"""Benchmark the marts as runs build them, and the daily table against pandas.

    .venv/bin/python benchmarks/marts.py                        # 1M synthetic bookings
    .venv/bin/python benchmarks/marts.py --bookings 100000
    .venv/bin/python benchmarks/marts.py --data-dir DIR         # raw tables a run already loaded

Asset path: everything downstream of the raw group (staging, marts, their checks, the report),
built by the assets' own code over raw tables published in a data directory, two ways:
- CLI: `dagster asset materialize -m calira_pipeline.definitions --select 'not group:raw'` in a
  subprocess (process start and code-location load included), --repeats times (default 3) on one
  DAGSTER_HOME as a user's instance (the first run creates it); median, best and worst printed,
  with the machine's speed (a fixed Python loop and DuckDB query) before and after: this shared
  machine's throughput drifts by a third over minutes;
- in process: `dg.materialize` of the same selection in a fresh Python process.
For each: wall time, peak RSS of the process tree and bytes it wrote to disk (/proc polled, see
benchmarks/pipeline.py). With --data-dir the tables are those a real run loaded (e.g. from the
sandbox at scale large through `--select group:raw`); otherwise synthetic bookings are generated
and published first. The data directory gets new staging/mart snapshots (raw is untouched).

Daily table: build_tables (the assets' build) of equipment_utilisation_daily and the two staging
tables it reads, in one session, over the first 1M raw bookings against pandas_daily, a
straightforward pandas version of the same rows and hour, count and ratio columns. The rows both
have are compared (largest difference printed); grid rows only one side has are counted apart:
the two start a zone's idle-day grid differently when the data begins just before a local
midnight in a zone ahead of UTC (854 idle rows on the first Tokyo day of the sandbox data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.marts import MartSettings, build_tables, register_parquet_views
from calira_pipeline.storage import Warehouse, write_parquet
from calira_pipeline.storage.schema import ACCOUNTS, BOOKINGS, EQUIPMENT, TableSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import BIN, children_cpu, run_polled  # noqa: E402

NOT_RAW = "not group:raw"
SETTINGS = MartSettings()

ZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/Los_Angeles",
)
CURRENCIES = ("GBP", "USD", "AUD", "INR", "EUR", "USD")
STATUSES = np.array(
    [
        "Completed",
        "completed",
        "Booked",
        "Confirmed",
        "Approved",
        "Cancelled",
        "Requested",
        "Declined",
    ]
)
STATUS_WEIGHTS = np.array([0.35, 0.1, 0.2, 0.08, 0.05, 0.12, 0.07, 0.03])
BASE = np.datetime64("2023-01-01T00:00:00", "us")
PANDAS_SUBSET = 1_000_000
COUNTED = ["booked", "confirmed", "approved", "ordered", "completed"]


def _table(spec: TableSpec, columns: dict[str, pa.Array]) -> pa.Table:
    n = len(next(iter(columns.values())))
    arrays = [columns.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in spec.arrow_schema]
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema)


def generate(n_bookings: int, out: Path, seed: int = 7) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    n_labs, n_equipment = 100, 5_000
    lab_ids = np.arange(1, n_labs + 1)
    accounts = _table(
        ACCOUNTS,
        {
            "id": pa.array(lab_ids),
            "account_type": pa.array(["lab"] * n_labs),
            "timezone": pa.array([ZONES[i % len(ZONES)] for i in range(n_labs)]),
            "organisation_id": pa.array([1000 + i % 7 if i % 10 else None for i in range(n_labs)]),
            "department_id": pa.array([2000 + i % 20 if i % 3 else None for i in range(n_labs)]),
        },
    )
    equipment_ids = np.arange(1, n_equipment + 1)
    equipment_lab = lab_ids[(equipment_ids - 1) % n_labs]
    # Every 10th instrument is a child of the one before it in the same lab.
    parent = np.where(equipment_ids % 10 == 0, equipment_ids - n_labs, 0)
    equipment = _table(
        EQUIPMENT,
        {
            "id": pa.array(equipment_ids),
            "lab_id": pa.array(equipment_lab),
            "parent_id": pa.array(parent, mask=parent <= 0),
        },
    )
    # Busy and idle instruments: weights from a gamma, a few instruments never booked.
    popularity = rng.gamma(1.5, 1.0, n_equipment) * (rng.random(n_equipment) > 0.02)
    eq = rng.choice(equipment_ids, n_bookings, p=popularity / popularity.sum())
    lab = equipment_lab[eq - 1]
    zone_offset_h = np.array([0, -5, 10, 5.5, 1, -8])[(lab - 1) % len(ZONES)]
    day = rng.integers(0, 730, n_bookings)
    local_hour = np.clip(rng.normal(10, 3, n_bookings), 0, 23.5)
    start_min = day * 1440 + (np.round(local_hour * 4) * 15 - zone_offset_h * 60).astype(np.int64)
    hours = np.clip(rng.lognormal(np.log(2), 1.1, n_bookings), 0.25, 24 * 15)
    duration_min = (np.round(hours * 4) * 15).astype(np.int64)
    start = BASE + start_min.astype("timedelta64[m]")
    end = start + duration_min.astype("timedelta64[m]")
    booking_type = rng.choice(
        np.array(["internal", "external", "maintenance"]), n_bookings, p=[0.75, 0.12, 0.13]
    )
    rate = np.where(booking_type == "external", 120.0, 40.0) * (booking_type != "maintenance")
    cents = np.round(rate * duration_min / 60 * 100).astype(np.int64)
    cost = pa.array(cents / 100).cast(pa.decimal128(18, 2))
    bookings = _table(
        BOOKINGS,
        {
            "id": pa.array(np.arange(1, n_bookings + 1)),
            "equipment_id": pa.array(eq),
            "start_time": pa.array(start),
            "end_time": pa.array(end),
            "status": pa.array(rng.choice(STATUSES, n_bookings, p=STATUS_WEIGHTS)),
            "booking_type": pa.array(booking_type),
            "cost": cost,
            "currency": pa.array(np.array(CURRENCIES)[(lab - 1) % len(CURRENCIES)]),
            "duration_minutes": pa.array(duration_min),
            "provider_lab_id": pa.array(lab),
            "requester_lab_id": pa.array(rng.choice(lab_ids, n_bookings)),
            "requester_group_name": pa.array(
                np.char.add("group-", rng.integers(0, 300, n_bookings).astype(str))
            ),
        },
    )
    paths = {}
    for name, table in (("accounts", accounts), ("equipment", equipment), ("bookings", bookings)):
        paths[name] = out / f"{name}.parquet"
        write_parquet(table, paths[name])  # laid out exactly as the pipeline writes raw tables
    return paths


def _local_day_pieces(b: pd.DataFrame, zone: str) -> pd.DataFrame:
    """Each booking cut at the zone's local midnights: one row per (booking, local day)."""
    first = b.start_time.dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
    last = (b.end_time - pd.Timedelta(microseconds=1)).dt.tz_convert(zone)
    last = last.dt.tz_localize(None).dt.normalize()
    g = pd.DataFrame(
        {
            "equipment_id": b.equipment_id,
            "role": b.role,
            "start": b.start_time,
            "end": b.end_time,
            "first": first,
            "n": (last - first).dt.days + 1,
        }
    )
    g = g.loc[g.index.repeat(g.n)].copy()
    g["day"] = g["first"] + pd.to_timedelta(g.groupby(level=0).cumcount(), "D")
    day_start = g.day.dt.tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
    day_end = (g.day + pd.Timedelta(days=1)).dt.tz_localize(
        zone, ambiguous=False, nonexistent="shift_forward"
    )
    g["piece_start"] = np.maximum(g.start, day_start.dt.tz_convert("UTC"))
    g["piece_end"] = np.minimum(g.end, day_end.dt.tz_convert("UTC"))
    return g[["equipment_id", "role", "day", "piece_start", "piece_end"]]


def _union_hours(p: pd.DataFrame) -> pd.Series:
    """Hours of the union of the pieces per (equipment, role, day): sort, running max of end."""
    p = p.sort_values(["equipment_id", "role", "day", "piece_start"])
    keys = [p.equipment_id, p.role, p.day]
    previous_end = p.groupby(keys).piece_end.cummax().groupby(keys).shift()
    p = p.assign(island=(previous_end.isna() | (p.piece_start > previous_end)).cumsum())
    islands = p.groupby(["equipment_id", "role", "day", "island"]).agg(
        s=("piece_start", "min"), e=("piece_end", "max")
    )
    hours = (islands.e - islands.s).dt.total_seconds() / 3600
    return hours.groupby(level=["equipment_id", "role", "day"]).sum()


def pandas_daily(paths: dict[str, Path], limit: int) -> tuple[pd.DataFrame, float]:
    """A straightforward pandas equipment_utilisation_daily (all hour, count and ratio columns).

    Classify bookings (case-folded status, maintenance type), cut each into local days of its
    instrument's lab zone with pandas' tz support, merge overlaps per instrument-day for occupancy
    and maintenance, sum bookings and tentative hours, and join onto every instrument x local day
    of the window with the day's real (DST-aware) length.
    """
    started = time.perf_counter()
    b = pd.read_parquet(paths["bookings"]).head(limit)
    eq = pd.read_parquet(paths["equipment"], columns=["id", "lab_id"])
    acc = pd.read_parquet(paths["accounts"], columns=["id", "timezone"])
    zones = eq.merge(acc, left_on="lab_id", right_on="id", suffixes=("", "_lab"))
    status = b.status.str.strip().str.lower()
    maintenance = b.booking_type.str.strip().str.lower() == "maintenance"
    b["role"] = np.select(
        [maintenance & status.isin(COUNTED), status.isin(COUNTED), status == "requested"],
        ["maintenance", "use", "tentative"],
        default="",
    )
    b = b[(b.role != "") & ~(maintenance & (b.role == "tentative")) & (b.end_time > b.start_time)]
    b = b.merge(zones[["id", "timezone"]], left_on="equipment_id", right_on="id").reset_index()
    p = pd.concat(
        [_local_day_pieces(group, zone) for zone, group in b.groupby("timezone")],
        ignore_index=True,
    )
    p["hours"] = (p.piece_end - p.piece_start).dt.total_seconds() / 3600
    sums = p.groupby(["equipment_id", "day", "role"]).hours.agg(["sum", "size"]).unstack("role")
    union = _union_hours(p[p.role != "tentative"]).unstack("role")
    hours = pd.DataFrame(
        {
            "booked_hours": union.get("use"),
            "booked_hours_sum": sums[("sum", "use")],
            "booking_count": sums[("size", "use")],
            "tentative_hours": sums.get(("sum", "tentative")),
            "maintenance_hours": union.get("maintenance"),
        }
    )
    # Every instrument x local day of the window, with the day's real length.
    first, last = b.start_time.min(), b.end_time.max()
    grids = []
    for zone, group in zones.groupby("timezone"):
        days = pd.date_range(
            first.tz_convert(zone).normalize().tz_localize(None),
            (last - pd.Timedelta(microseconds=1)).tz_convert(zone).normalize().tz_localize(None),
            freq="D",
        )
        starts = days.tz_localize(zone, nonexistent="shift_forward", ambiguous=False)
        ends = (days + pd.Timedelta(days=1)).tz_localize(
            zone, nonexistent="shift_forward", ambiguous=False
        )
        calendar = pd.DataFrame(
            {"day": days, "available_hours": (ends - starts).total_seconds() / 3600}
        )
        grids.append(
            group[["id", "lab_id", "timezone"]]
            .rename(columns={"id": "equipment_id"})
            .merge(calendar, how="cross")
        )
    daily = pd.concat(grids).merge(hours.reset_index(), on=["equipment_id", "day"], how="left")
    daily = daily.fillna(
        {
            "booked_hours": 0.0,
            "booked_hours_sum": 0.0,
            "booking_count": 0,
            "tentative_hours": 0.0,
            "maintenance_hours": 0.0,
        }
    )
    daily["utilisation"] = daily.booked_hours / daily.available_hours
    return daily, time.perf_counter() - started


def sql_daily(paths: dict[str, Path], limit: int, scratch: Path) -> tuple[pa.Table, float]:
    subset = scratch / "subset_bookings.parquet"
    pq.write_table(pq.read_table(paths["bookings"]).slice(0, limit), subset)
    con = duckdb.connect()
    register_parquet_views(con, {**paths, "bookings": subset})
    # The daily table's whole path from raw Parquet as the assets run it: its two staging tables
    # and the mart in one session, each file written by DuckDB (read back untimed to compare).
    names = ["booking_facts", "equipment_interval_days", "equipment_utilisation_daily"]
    started = time.perf_counter()
    built = {name: path for name, path, _ in build_tables(con, names, scratch / "daily", SETTINGS)}
    seconds = time.perf_counter() - started
    con.close()
    return pq.read_table(built["equipment_utilisation_daily"]), seconds


DAILY_COLUMNS = ["booked_hours", "booked_hours_sum", "booking_count", "tentative_hours"]
DAILY_COLUMNS += ["maintenance_hours", "available_hours", "utilisation"]
HOUR_COLUMNS = ["booked_hours", "booked_hours_sum", "tentative_hours", "maintenance_hours"]


def compare_daily(sql_table: pa.Table, pandas_frame: pd.DataFrame) -> str:
    """The two daily tables compared: the largest absolute difference of the hour, count and
    ratio columns over the (instrument, day) rows both have, and apart from it the grid rows
    only one side has (where each starts its idle-day grid), with whether any of them is busy."""
    sql_frame = sql_table.select(["equipment_id", "day", *DAILY_COLUMNS]).to_pandas()
    sql_frame["day"] = pd.to_datetime(sql_frame.day)
    pandas_frame = pandas_frame.assign(day=pd.to_datetime(pandas_frame.day))
    both = sql_frame.merge(
        pandas_frame[["equipment_id", "day", *DAILY_COLUMNS]],
        on=["equipment_id", "day"],
        how="outer",
        indicator=True,
    )
    shared = both[both["_merge"] == "both"]
    largest = max(
        (float((shared[f"{c}_x"] - shared[f"{c}_y"]).abs().max()) for c in DAILY_COLUMNS),
        default=0.0,
    )
    parts = [f"{len(shared):,} shared rows, max difference {largest:.2e}"]
    for side, suffix, label in (("left_only", "_x", "DuckDB"), ("right_only", "_y", "pandas")):
        extra = both[both["_merge"] == side]
        if extra.empty:
            parts.append(f"no rows only in {label}")
            continue
        busy = int((extra[[f"{c}{suffix}" for c in HOUR_COLUMNS]].fillna(0) != 0).any(axis=1).sum())
        days = ", ".join(
            f"{day:%Y-%m-%d} ({count:,})"
            for day, count in extra.groupby("day").size().head(5).items()
        )
        parts.append(f"{len(extra):,} grid rows only in {label} ({busy:,} with hours), on {days}")
    return "; ".join(parts)


def measure(command: list[str], data_dir: Path, dagster_home: Path) -> dict[str, float]:
    """Run `command` with CALIRA_DATA_DIR=data_dir; wall time, peak RSS and bytes written of its
    process tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env.update(CALIRA_DATA_DIR=str(data_dir), DAGSTER_HOME=str(dagster_home))
    cpu_before = children_cpu()
    wall, stats = run_polled(command, env, data_dir.parent, dagster_home / "run.log")
    written = sum(stats.written.values()) - sum(stats.cancelled.values())
    cpu = children_cpu() - cpu_before
    return {"wall": wall, "cpu": cpu, "peak_rss": stats.peak_rss, "written": written}



def in_process_asset_path(data_dir: Path) -> None:
    """The child of `--in-process`: dg.materialize of everything downstream of raw."""
    import dagster as dg

    from calira_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    started = time.perf_counter()
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("raw"),
        resources=sandbox_resources(str(data_dir), "tiny"),
    )
    steps = {
        e.step_key: e.event_specific_data.duration_ms / 1000  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }
    print(json.dumps({"materialize_s": time.perf_counter() - started, "steps": steps}))


def machine_speed() -> str:
    """Seconds a fixed pure-Python loop and a fixed DuckDB query take now: this shared machine's
    throughput drifts by a third over minutes, so each figure is printed beside these two."""
    started = time.perf_counter()
    sum(i * i for i in range(5_000_000))
    python_s = time.perf_counter() - started
    with duckdb.connect() as con:
        started = time.perf_counter()
        con.execute("SELECT sum(hash(i)) FROM range(50000000) t(i)").fetchall()
        duckdb_s = time.perf_counter() - started
    return f"machine speed: python loop {python_s:.2f} s, duckdb hash {duckdb_s:.2f} s"


def cli_runs(data_dir: Path, home: Path, repeats: int) -> list[dict[str, float]]:
    """`repeats` CLI runs on one DAGSTER_HOME, as a user's instance ($DAGSTER_HOME in the README):
    the first creates the instance's SQLite files, the others reuse them."""
    cli = [str(BIN / "dagster"), "asset", "materialize", "-m", "calira_pipeline.definitions"]
    mb = 1e6
    runs = []
    for number in range(1, repeats + 1):
        figures = measure([*cli, "--select", NOT_RAW], data_dir, home)
        first = " (creates the instance)" if number == 1 else ""
        print(
            f"  run {number}{first}: {figures['wall']:.1f} s wall, {figures['cpu']:.1f} s CPU, "
            f"peak RSS {figures['peak_rss'] / mb:,.0f} MB, written {figures['written'] / mb:,.0f} "
            f"MB, load {os.getloadavg()[0]:.2f}"
        )
        runs.append(figures)
    return runs


def asset_path(data_dir: Path, repeats: int) -> None:
    mb = 1e6
    print(machine_speed())
    with tempfile.TemporaryDirectory() as home:
        print(
            f"asset path, CLI `dagster asset materialize --select '{NOT_RAW}'` (process start "
            f"included), {repeats} runs on one DAGSTER_HOME:"
        )
        runs = cli_runs(data_dir, Path(home), repeats)
    walls = [r["wall"] for r in runs]
    cpu = statistics.median(r["cpu"] for r in runs)
    print(
        f"  CLI wall: median {statistics.median(walls):.1f} s, best {min(walls):.1f} s, worst "
        f"{max(walls):.1f} s; CPU median {cpu:.1f} s; peak RSS "
        f"{max(r['peak_rss'] for r in runs) / mb:,.0f} MB"
    )
    print(machine_speed())
    with tempfile.TemporaryDirectory() as home:
        child = [sys.executable, __file__, "--in-process-child", str(data_dir)]
        figures = measure(child, data_dir, Path(home))
        report = json.loads((Path(home) / "run.log").read_text().strip().splitlines()[-1])
        print(
            f"asset path, in process (dg.materialize, same selection): "
            f"{report['materialize_s']:.1f} s in materialize, {figures['wall']:.1f} s wall with "
            f"imports, {figures['cpu']:.1f} s CPU, peak RSS {figures['peak_rss'] / mb:,.0f} MB, "
            f"written {figures['written'] / mb:,.0f} MB"
        )
        for step, seconds in report["steps"].items():
            print(f"  step {step:32s} {seconds:6.2f} s")


def publish_raw(paths: dict[str, Path], data_dir: Path) -> None:
    """Publish generated raw tables as a run would (the harness's cost, not measured)."""
    Warehouse(data_dir).commit({name: pq.read_table(path) for name, path in paths.items()})


def raw_files(data_dir: Path) -> dict[str, Path]:
    files = Warehouse(data_dir).table_files()
    missing = {"bookings", "equipment", "accounts"} - set(files)
    if missing or any(len(files[name]) != 1 for name in ("bookings", "equipment", "accounts")):
        raise SystemExit(f"{data_dir}: raw tables missing or partitioned: {sorted(missing)}")
    return {name: files[name][0] for name in ("bookings", "equipment", "accounts")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, help="a data directory with raw tables loaded")
    parser.add_argument("--daily-only", action="store_true", help="skip the asset path")
    parser.add_argument("--repeats", type=int, default=3, help="CLI runs (median reported)")
    parser.add_argument("--in-process-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process_child:
        in_process_asset_path(args.in_process_child)
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.data_dir:
            data_dir = args.data_dir.resolve()
        else:
            started = time.perf_counter()
            data_dir = scratch / "data"
            publish_raw(generate(args.bookings, scratch), data_dir)
            print(f"generated {args.bookings:,} bookings in {time.perf_counter() - started:.1f} s")
        paths = raw_files(data_dir)
        bookings = pq.read_metadata(paths["bookings"]).num_rows
        print(f"{bookings:,} raw bookings in {data_dir}")
        if not args.daily_only:
            asset_path(data_dir, max(1, args.repeats))
        limit = min(bookings, PANDAS_SUBSET)
        sql_table, sql_seconds = sql_daily(paths, limit, scratch)
        pandas_frame, pandas_seconds = pandas_daily(paths, limit)
        print(
            f"daily table on {limit:,} bookings: DuckDB {sql_seconds:.2f} s "
            f"(build_tables: equipment_utilisation_daily and its staging tables from raw Parquet, "
            f"each written by DuckDB), "
            f"pandas {pandas_seconds:.2f} s (same rows and hour/count/ratio columns); "
            f"{compare_daily(sql_table, pandas_frame)}"
        )
        print(f"ratio pandas / DuckDB at {limit:,}: {pandas_seconds / sql_seconds:.1f}x")


if __name__ == "__main__":
    main()
