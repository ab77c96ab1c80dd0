"""Benchmark: build every mart over N synthetic bookings; compare the daily table with pandas.

    .venv/bin/python benchmarks/marts.py                 # 1M bookings
    .venv/bin/python benchmarks/marts.py --bookings 100000

Peak memory is the process's max RSS (resource.getrusage), read right after the DuckDB builds and
before the pandas baseline runs, so it covers data generation plus all marts.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.marts import MartSettings, build_mart, register_parquet_views
from calira_pipeline.marts.build import build_order
from calira_pipeline.schema import ACCOUNTS, BOOKINGS, EQUIPMENT, TableSpec

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
        pq.write_table(table, paths[name])
    return paths


def pandas_daily(paths: dict[str, Path], limit: int) -> tuple[pd.DataFrame, float]:
    """The straightforward pandas version of equipment_utilisation_daily's hour columns."""
    started = time.perf_counter()
    b = pd.read_parquet(paths["bookings"]).head(limit)
    eq = pd.read_parquet(paths["equipment"], columns=["id", "lab_id"])
    acc = pd.read_parquet(paths["accounts"], columns=["id", "timezone"])
    zones = eq.merge(acc, left_on="lab_id", right_on="id", suffixes=("", "_lab"))
    b = b[
        (b.booking_type.str.lower() != "maintenance")
        & b.status.str.strip()
        .str.lower()
        .isin(["booked", "confirmed", "approved", "ordered", "completed"])
        & (b.end_time > b.start_time)
    ]
    b = b.merge(zones[["id", "timezone"]], left_on="equipment_id", right_on="id")
    pieces = []
    for zone, group in b.groupby("timezone"):
        start = group.start_time.dt.tz_convert(zone)
        end = group.end_time.dt.tz_convert(zone)
        first = start.dt.normalize()
        last = (end - pd.Timedelta(microseconds=1)).dt.normalize()
        g = pd.DataFrame(
            {
                "equipment_id": group.equipment_id.to_numpy(),
                "start": start,
                "end": end,
                "first": first,
                "n": (last - first).dt.days + 1,
            }
        )
        g = g.loc[g.index.repeat(g.n)].copy()
        g["k"] = g.groupby(level=0).cumcount()
        day_start = (g["first"].dt.tz_localize(None) + pd.to_timedelta(g.k, "D")).dt.tz_localize(
            zone, ambiguous=False, nonexistent="shift_forward"
        )
        day_end = (day_start.dt.tz_localize(None) + pd.Timedelta(days=1)).dt.tz_localize(
            zone, ambiguous=False, nonexistent="shift_forward"
        )
        g["day"] = day_start.dt.date
        g["piece_start"] = np.maximum(g.start, day_start)
        g["piece_end"] = np.minimum(g.end, day_end)
        pieces.append(g[["equipment_id", "day", "piece_start", "piece_end"]])
    p = pd.concat(pieces, ignore_index=True)
    for column in ("piece_start", "piece_end"):
        p[column] = pd.to_datetime(p[column], utc=True)
    p["hours"] = (p.piece_end - p.piece_start).dt.total_seconds() / 3600
    p = p.sort_values(["equipment_id", "day", "piece_start"])
    # Union per instrument-day: a piece starts a new island when it begins after every earlier end.
    ends = p.groupby(["equipment_id", "day"]).piece_end.cummax()
    prev = ends.groupby([p.equipment_id, p.day]).shift()
    p["island"] = (prev.isna() | (p.piece_start > prev)).cumsum()
    islands = p.groupby(["equipment_id", "day", "island"]).agg(
        s=("piece_start", "min"), e=("piece_end", "max")
    )
    islands["hours"] = (islands.e - islands.s).dt.total_seconds() / 3600
    booked = p.groupby(["equipment_id", "day"]).agg(
        booked_hours_sum=("hours", "sum"), booking_count=("hours", "size")
    )
    booked["booked_hours"] = islands.groupby(["equipment_id", "day"]).hours.sum()
    # Every instrument x local day of the window, with the day's real length.
    first, last = b.start_time.min(), b.end_time.max()
    grids = []
    for zone, group in zones.groupby("timezone"):
        days = pd.date_range(
            first.tz_convert(zone).normalize().tz_localize(None),
            last.tz_convert(zone).normalize().tz_localize(None),
            freq="D",
        )
        starts = days.tz_localize(zone, nonexistent="shift_forward", ambiguous=False)
        ends = (days + pd.Timedelta(days=1)).tz_localize(
            zone, nonexistent="shift_forward", ambiguous=False
        )
        calendar = pd.DataFrame(
            {"day": days.date, "available_hours": (ends - starts).total_seconds() / 3600}
        )
        grids.append(
            group[["id"]].rename(columns={"id": "equipment_id"}).merge(calendar, how="cross")
        )
    daily = pd.concat(grids).merge(booked.reset_index(), on=["equipment_id", "day"], how="left")
    daily = daily.fillna({"booked_hours": 0.0, "booked_hours_sum": 0.0, "booking_count": 0})
    daily["utilisation"] = daily.booked_hours / daily.available_hours
    return daily, time.perf_counter() - started


def sql_daily_seconds(paths: dict[str, Path], limit: int, scratch: Path) -> float:
    subset = scratch / "subset_bookings.parquet"
    pq.write_table(pq.read_table(paths["bookings"]).slice(0, limit), subset)
    con = duckdb.connect()
    register_parquet_views(con, {**paths, "bookings": subset})
    started = time.perf_counter()
    settings = MartSettings()
    con.register("booking_facts", build_mart(con, "booking_facts", settings))
    interval_days = build_mart(con, "equipment_interval_days", settings)
    con.register("equipment_interval_days", interval_days)
    build_mart(con, "equipment_utilisation_daily", settings)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        started = time.perf_counter()
        paths = generate(args.bookings, scratch)
        print(f"generated {args.bookings:,} bookings in {time.perf_counter() - started:.1f} s")
        seconds = build_timed(paths, scratch / "marts")
        total = sum(seconds.values())
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"all marts (DuckDB): {total:.1f} s wall, peak RSS {peak_mb:,.0f} MB")
        full_daily = seconds["equipment_interval_days"] + seconds["equipment_utilisation_daily"]

        limit = min(args.bookings, PANDAS_SUBSET)
        sql_seconds = sql_daily_seconds(paths, limit, scratch)
        _, pandas_seconds = pandas_daily(paths, limit)
        print(
            f"daily table on {limit:,} bookings: DuckDB {sql_seconds:.2f} s (all columns), "
            f"pandas {pandas_seconds:.2f} s (hours, counts, available, utilisation)"
        )
        print(f"ratio pandas / DuckDB at {limit:,}: {pandas_seconds / sql_seconds:.1f}x")
        if limit < args.bookings:
            extrapolated = pandas_seconds * args.bookings / limit
            print(
                f"pandas extrapolated linearly to {args.bookings:,}: {extrapolated:.1f} s "
                f"(not run at full size); DuckDB daily at full size {full_daily:.2f} s; "
                f"ratio {extrapolated / full_daily:.1f}x"
            )


def build_timed(paths: dict[str, Path], out_dir: Path) -> dict[str, float]:
    """build_all, one mart at a time, with a wall time per mart."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": "1GB"})  # as build_all does
    register_parquet_views(con, paths)
    seconds: dict[str, float] = {}
    for name in build_order():
        started = time.perf_counter()
        path = out_dir / f"{name}.parquet"
        pq.write_table(build_mart(con, name, MartSettings()), path)
        register_parquet_views(con, {name: path})
        seconds[name] = time.perf_counter() - started
        print(f"  {name:42s} {pq.read_metadata(path).num_rows:>10,} rows {seconds[name]:6.2f} s")
    con.close()
    return seconds


if __name__ == "__main__":
    main()
