"""Run a mart's SQL in DuckDB: settings become temp tables, shared preludes run first, and DuckDB
writes each table's Parquet file itself (COPY), so no large table passes through Python."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.marts.session import (
    drop_scratch,
    load_sql,
    prepare_session,
    quoted,
    write_settings,
)
from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import MART_SPECS
from calira_pipeline.storage.snapshots import sql_string, view_sql
from calira_pipeline.storage.warehouse import PARQUET_ROW_GROUP_ROWS


def register_parquet_views(con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path]) -> None:
    """A view named after each table over its Parquet file (replacing any earlier one)."""
    for name, path in paths.items():
        con.read_parquet(str(path)).create_view(name, replace=True)


@dataclass(frozen=True)
class DuckDBLimits:
    """DuckDB's buffer pool and worker threads for a build (CALIRA_DUCKDB_MEMORY_LIMIT/_THREADS).

    A bounded pool makes DuckDB spill to disk instead of holding most of the machine's RAM.
    """

    memory_limit: str = "1GB"
    threads: int | None = None  # None: DuckDB's default, one per core

    def apply(self, con: duckdb.DuckDBPyConnection, spill_dir: Path) -> None:
        try:
            con.execute("SET memory_limit = ?", [self.memory_limit])
        except duckdb.Error as exc:
            raise ValueError(
                f"CALIRA_DUCKDB_MEMORY_LIMIT={self.memory_limit!r} is not a DuckDB memory size "
                f"({exc}); use a size such as 1GB or 512MB"
            ) from exc
        if self.threads is not None:
            if not 1 <= self.threads <= 256:
                raise ValueError(
                    f"CALIRA_DUCKDB_THREADS={self.threads} must be a whole number from 1 to 256"
                )
            con.execute(f"SET threads = {int(self.threads)}")
        con.execute("SET temp_directory = ?", [str(spill_dir)])


def _result_view(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run a table's SQL (leading statements, then its final query) as the view mart__result.

    The SQL emits naive UTC timestamps (see _prelude_facts.sql); they are labelled UTC here so
    the Parquet columns say so: the same instants as TIMESTAMPTZ from their epoch microseconds.
    (A CAST goes through ICU for every value, even under UTC: ~0.13 us each, 0.8 s of CPU over
    the 6M timestamps of booking_facts and equipment_interval_days at 1M bookings.)
    """
    relation = con.sql(sql)
    if relation is None:
        raise ValueError("mart SQL must end with a query")
    relation.create_view("mart__query", replace=True)
    columns = zip(relation.columns, relation.types, strict=True)
    naive = [c for c, t in columns if str(t) == "TIMESTAMP"]
    replaced = ", ".join(
        f"CASE WHEN isfinite({q}) THEN make_timestamptz(epoch_us({q})) "
        f"ELSE CAST({q} AS TIMESTAMPTZ) END AS {q}"
        for q in map(quoted, naive)
    )
    select = f"SELECT * REPLACE ({replaced})" if naive else "SELECT *"
    con.execute(f"CREATE OR REPLACE TEMP VIEW mart__result AS {select} FROM mart__query")


def write_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    settings: MartSettings,
    path: Path,
    already_run: set[str],
) -> int:
    """Build table `name` in `con` and let DuckDB write it to `path`; returns its row count.

    A view `name` over the written file replaces any earlier one, so later tables of the same
    session read what was just built.
    """
    spec = MART_SPECS[name]
    zone = con.execute("SELECT current_setting('TimeZone')").fetchone()
    con.execute("SET TimeZone = 'UTC'")
    try:
        prepare_session(con, settings, spec.preludes, already_run)
        _result_view(con, load_sql(spec.sql_file))
        # Small tables are sorted by their grain (easy to read, row groups prune by key); the
        # large ones are written in whatever order DuckDB's threads produce (see
        # MartSpec.sorted_on_write), so the same rows may land in a different order per run.
        sort = spec.sorted_on_write and spec.grain_columns
        order = f" ORDER BY {', '.join(spec.grain_columns)}" if sort else ""
        row = con.execute(
            f"COPY (SELECT * FROM mart__result{order}) TO {sql_string(str(path))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {PARQUET_ROW_GROUP_ROWS})"
        ).fetchone()
    finally:
        con.execute("SET TimeZone = ?", [zone[0] if zone else "UTC"])
    con.execute(view_sql(name, [path]))
    return int(row[0]) if row else 0


def build_order() -> list[str]:
    """Table names with every upstream table (staging, then marts) before its dependants."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"mart dependency cycle: {' -> '.join((*path, name))}")
        for upstream in MART_SPECS[name].upstream:
            visit(upstream, (*path, name))
        ordered.append(name)

    for mart_name in MART_SPECS:
        visit(mart_name, ())
    return ordered


def build_tables(
    con: duckdb.DuckDBPyConnection,
    names: Iterable[str],
    out_dir: Path,
    settings: MartSettings,
) -> Iterator[tuple[str, Path, int]]:
    """Build `names` in one session, upstream first: yields (name, Parquet path, rows) as each
    is written. Tables not selected are read from the views already on `con`.

    What every build runs (the assets, build_all, the benchmarks): settings and the shared
    preludes are built once per session and reused by every table that needs them.
    """
    selected = set(names)
    unknown = selected - set(MART_SPECS)
    if unknown:
        raise ValueError(f"unknown mart tables: {sorted(unknown)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    already_run: set[str] = set()
    # No query of a build relies on row order (ORDER BY where it matters): without this, DuckDB
    # keeps every intermediate and every unsorted COPY in source order, which serialises work and
    # buffers rows.
    preserved = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    con.execute("SET preserve_insertion_order = false")
    try:
        # Inside the try: a bad setting still leaves the connection as the session found it.
        write_settings(con, settings)
        for name in (n for n in build_order() if n in selected):
            path = out_dir / f"{name}.parquet"
            rows = write_table(con, name, settings, path, already_run)
            yield name, path, rows
    finally:
        drop_scratch(con)
        con.execute("SET preserve_insertion_order = ?", [bool(preserved[0]) if preserved else True])


def build_all(
    raw_paths: Mapping[str, Path],
    out_dir: Path,
    settings: MartSettings,
    limits: DuckDBLimits | None = None,
) -> dict[str, Path]:
    """Every staging table and mart from raw Parquet files into `<out_dir>/<name>.parquet`
    (build_tables over a fresh session: the same build the assets run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con, tempfile.TemporaryDirectory(dir=out_dir) as spill:
        (limits or DuckDBLimits()).apply(con, Path(spill))
        register_parquet_views(con, raw_paths)
        return {n: p for n, p, _ in build_tables(con, MART_SPECS, out_dir, settings)}


def build_mart(con: duckdb.DuckDBPyConnection, name: str, settings: MartSettings) -> pa.Table:
    """Table `name` as Arrow, built by write_table over the views on `con` (staging tables
    included) and read back: for tests and notebooks on small data."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        try:
            write_settings(con, settings)
            write_table(con, name, settings, path, set())
            table = pq.read_table(path)
        finally:
            try:  # fails when `name` is the caller's own table: the session ends all the same
                con.execute(f"DROP VIEW IF EXISTS {quoted(name)}")
            finally:
                drop_scratch(con)
    return table
