"""Run a mart's SQL in DuckDB: settings become temp tables, shared preludes run first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import MART_SPECS, PRELUDE_ORDER

_SCRATCH_PREFIX = "mart__"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def load_sql(file_name: str) -> str:
    return (SQL_DIR / file_name).read_text(encoding="utf-8")


def register_parquet_views(con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path]) -> None:
    """A view named after each table over its Parquet file (replacing any earlier one)."""
    for name, path in paths.items():
        con.read_parquet(str(path)).create_view(name, replace=True)


def _write_settings(con: duckdb.DuckDBPyConnection, settings: MartSettings) -> None:
    known = con.execute(
        "SELECT count(*) FROM pg_timezone_names() WHERE lower(name) = lower(trim(?))",
        [settings.default_timezone],
    ).fetchone()
    if known is None or known[0] == 0:
        raise ValueError(f"default_timezone {settings.default_timezone!r} is not an IANA zone")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE mart__settings AS SELECT "
        "(SELECT min(name) FROM pg_timezone_names() WHERE lower(name) = lower(trim($tz))) "
        "AS default_timezone, "
        "CAST($maint AS BOOLEAN) AS maintenance_includes_tentative, "
        "CAST($long AS DOUBLE) AS long_booking_hours, "
        "CAST($tolerance AS DOUBLE) AS duration_tolerance_minutes, "
        "CAST($hours_tolerance AS DOUBLE) AS hours_tolerance",
        {
            "tz": settings.default_timezone,
            "maint": settings.maintenance_includes_tentative,
            "long": settings.long_booking_hours,
            "tolerance": settings.duration_tolerance_minutes,
            "hours_tolerance": settings.hours_tolerance,
        },
    )
    _temp_table(
        con, "mart__status_map", "status VARCHAR, category VARCHAR", settings.status_categories()
    )
    _temp_table(
        con,
        "mart__maintenance_types",
        "booking_type VARCHAR",
        [(t.strip().lower(),) for t in settings.maintenance_booking_types],
    )
    profiles = settings.operating_profiles()
    _temp_table(
        con,
        "mart__operating_profiles",
        "profile VARCHAR, lab_id BIGINT",
        [(key, lab_id) for key, (lab_id, _) in profiles.items()],
    )
    _temp_table(
        con,
        "mart__operating_windows",
        "profile VARCHAR, weekday INTEGER, start_minute INTEGER, end_minute INTEGER",
        [
            (key, w.weekday, w.start_minute, w.end_minute)
            for key, (_, hours) in profiles.items()
            for w in hours.windows
        ],
    )


def _temp_table(
    con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: Sequence[tuple[object, ...]]
) -> None:
    # `name` and `columns` are constants of this module; only the rows carry settings values.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")
    if rows:
        placeholders = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO {name} VALUES ({placeholders})", rows)


def prepare_session(
    con: duckdb.DuckDBPyConnection, settings: MartSettings, preludes: tuple[str, ...]
) -> None:
    """Settings tables plus the shared prelude temp tables a mart or check needs."""
    _write_settings(con, settings)
    for prelude in PRELUDE_ORDER:
        if prelude in preludes:
            con.execute(load_sql(f"_prelude_{prelude}.sql"))


def drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this module's temp views and tables so a shared connection stays clean."""
    for kind, catalog in (("VIEW", "duckdb_views()"), ("TABLE", "duckdb_tables()")):
        rows = con.execute(
            f"SELECT {kind.lower()}_name FROM {catalog} "
            "WHERE temporary AND starts_with(" + kind.lower() + "_name, ?)",
            [_SCRATCH_PREFIX],
        ).fetchall()
        for (name,) in rows:
            con.execute(f'DROP {kind} IF EXISTS temp."{name}"')


def _utc_timestamps(table: pa.Table) -> pa.Table:
    # The SQL emits naive UTC timestamps (see _prelude_bookings.sql); label them UTC, and
    # relabel any session-zoned TIMESTAMPTZ too (same instants).
    fields = [
        pa.field(f.name, pa.timestamp("us", tz="UTC"), f.nullable)
        if pa.types.is_timestamp(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def build_mart(con: duckdb.DuckDBPyConnection, name: str, settings: MartSettings) -> pa.Table:
    """Run mart `name` over the raw (and upstream mart) views registered on `con`."""
    spec = MART_SPECS[name]
    try:
        prepare_session(con, settings, spec.preludes)
        table = con.execute(load_sql(spec.sql_file)).to_arrow_table()
    finally:
        drop_scratch(con)
    return _utc_timestamps(table)


def build_order() -> list[str]:
    """Mart names with every upstream mart before its dependants."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"mart dependency cycle: {' -> '.join((*path, name))}")
        for upstream in MART_SPECS[name].depends_on_marts:
            visit(upstream, (*path, name))
        ordered.append(name)

    for mart_name in MART_SPECS:
        visit(mart_name, ())
    return ordered


def build_all(
    raw_paths: Mapping[str, Path],
    out_dir: Path,
    settings: MartSettings,
    memory_limit: str = "1GB",
) -> dict[str, Path]:
    """Build every mart in dependency order into `<out_dir>/<name>.parquet`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    # A bounded buffer pool: DuckDB spills to disk instead of holding most of the machine's RAM.
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        register_parquet_views(con, raw_paths)
        for name in build_order():
            path = out_dir / f"{name}.parquet"
            pq.write_table(build_mart(con, name, settings), path)
            register_parquet_views(con, {name: path})
            written[name] = path
    finally:
        con.close()
    return written
