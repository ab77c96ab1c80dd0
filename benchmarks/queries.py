"""Benchmark: notebook queries on the published layout (views over Parquet) vs native tables.

    .venv/bin/python benchmarks/queries.py                    # 1M bookings (sandbox `large`)
    .venv/bin/python benchmarks/queries.py --bookings 100000

Both sides hold the same rows and are opened read-only in this one process, exactly as a notebook
opens them: `calira_pipeline.connect()` on a data directory published by `Warehouse.commit`
(a DuckDB file of views over the Parquet files), and a DuckDB file of native tables loaded from the
same files. Data: `benchmarks/marts.py`'s synthetic bookings (1M on 5,000 instruments, like the
sandbox at scale `large`) with a ~500-byte `raw_json` per booking as the API gives, the equipment
table, and `equipment_utilisation_daily` built by the pipeline's own SQL.

Each query runs once untimed per side, then `--repeat` times alternating sides (so machine load
hits both); medians are reported with their ratio (views ÷ native).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from marts import generate

from calira_pipeline import connect
from calira_pipeline.marts import MartSettings, build_mart, register_parquet_views
from calira_pipeline.storage import Warehouse

QUERIES = {
    "group-by over bookings": (
        "select status, booking_type, currency, count(*) as bookings, sum(cost) as cost, "
        "sum(epoch(end_time - start_time)) / 3600 as hours from bookings group by all"
    ),
    "join bookings x equipment": (
        "select e.lab_id, count(*) as bookings, sum(b.cost) as cost from bookings b "
        "join equipment e on b.equipment_id = e.id group by all"
    ),
    "scan equipment_utilisation_daily (to Arrow)": "select * from equipment_utilisation_daily",
    "top instruments from the daily mart": (
        "select equipment_id, avg(utilisation) as mean_utilisation "
        "from equipment_utilisation_daily group by all order by 2 desc limit 20"
    ),
    "one booking by id (select *)": "select * from bookings where id = 777777",
    "count(*) from bookings": "select count(*) from bookings",
}


def with_raw_json(table: pa.Table) -> pa.Table:
    """Give each booking a raw_json of realistic size (the API's payload)."""
    ids = table.column("id").to_pylist()
    statuses = table.column("status").to_pylist()
    padding = "x" * 420
    payloads = [
        f'{{"id":{i},"status":"{s}","notes":"{padding}"}}'
        for i, s in zip(ids, statuses, strict=True)
    ]
    index = table.schema.get_field_index("raw_json")
    return table.set_column(
        index,
        "raw_json",
        pa.array(payloads, pa.large_string()).cast(table.schema.field("raw_json").type),
    )


def prepare(n_bookings: int, scratch: Path) -> tuple[Path, Path]:
    """(data dir published by the Warehouse, DuckDB file of native tables) with the same rows."""
    raw = generate(n_bookings, scratch)
    tables = {name: pq.read_table(path) for name, path in raw.items()}
    tables["bookings"] = with_raw_json(tables["bookings"])
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    register_parquet_views(con, raw)
    for staging in ("booking_facts", "equipment_interval_days"):  # what the daily mart reads
        con.register(staging, build_mart(con, staging, MartSettings()))
    tables["equipment_utilisation_daily"] = build_mart(
        con, "equipment_utilisation_daily", MartSettings()
    )
    con.close()
    data_dir = scratch / "data"
    for name, table in tables.items():  # one commit per asset, as a run does
        Warehouse(data_dir).commit({name: table})
    native = scratch / "native.duckdb"
    with duckdb.connect(str(native)) as out:
        for name, table in tables.items():
            out.register("incoming", table)
            out.execute(f'create table "{name}" as select * from incoming')
            out.unregister("incoming")
    return data_dir, native


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, native_path = prepare(args.bookings, Path(tmp))
        sizes = {
            "views (Parquet)": sum(
                p.stat().st_size for p in (data_dir / "tables").rglob("*.parquet")
            ),
            "native DuckDB": native_path.stat().st_size,
        }
        views = connect(data_dir)
        native = duckdb.connect(str(native_path), read_only=True)
        native.execute("set TimeZone = 'UTC'")
        for label, size in sizes.items():
            print(f"data size, {label}: {size / 1e6:,.0f} MB")
        print(f"\n{'query':46} {'views':>9} {'native':>9} {'ratio':>7}")
        for label, sql in QUERIES.items():
            sides = {"views": views, "native": native}
            results = {side: con.sql(sql).to_arrow_table() for side, con in sides.items()}
            assert results["views"].num_rows == results["native"].num_rows, label
            times: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(args.repeat):
                for side, con in sides.items():
                    times[side].append(timed(lambda c=con, q=sql: c.sql(q).to_arrow_table()))
            view_s, native_s = (statistics.median(times[s]) for s in ("views", "native"))
            print(
                f"{label:46} {view_s * 1000:7.1f}ms {native_s * 1000:7.1f}ms "
                f"{view_s / native_s:6.2f}x"
            )
        views.close()
        native.close()


if __name__ == "__main__":
    main()
