"""Run a mart's SQL in DuckDB: settings become temp tables, shared preludes run first."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import MART_SPECS, PRELUDE_ORDER
from calira_pipeline.storage import write_parquet

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
    con: duckdb.DuckDBPyConnection,
    settings: MartSettings,
    preludes: tuple[str, ...],
    already_run: set[str] | None = None,
) -> None:
    """Settings tables plus the shared prelude temp tables a mart or check needs.

    With ``already_run`` (one build_all session: settings written, preludes kept between marts)
    only the preludes not run yet are run, and they are added to it.
    """
    if already_run is None:
        _write_settings(con, settings)
    for prelude in PRELUDE_ORDER:
        if prelude in preludes and (already_run is None or prelude not in already_run):
            con.execute(load_sql(f"_prelude_{prelude}.sql"))
            if already_run is not None:
                already_run.add(prelude)


def _scratch_macros() -> list[tuple[str, str]]:
    """(DROP kind, name) of every temp macro the preludes define (read from the SQL files)."""
    pattern = re.compile(r"CREATE OR REPLACE TEMP MACRO (\w+)\([^)]*\) AS( TABLE)?")
    return [
        ("MACRO TABLE" if is_table else "MACRO", name)
        for path in sorted(SQL_DIR.glob("_prelude_*.sql"))
        for name, is_table in pattern.findall(path.read_text(encoding="utf-8"))
    ]


_SCRATCH_MACROS = _scratch_macros()


def drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this module's temp views, tables and macros so a shared connection stays clean."""
    rows = con.execute(
        "SELECT 'VIEW', view_name FROM duckdb_views() "
        "WHERE temporary AND starts_with(view_name, $prefix) "
        "UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() "
        "WHERE temporary AND starts_with(table_name, $prefix)",
        {"prefix": _SCRATCH_PREFIX},
    ).fetchall()
    # One batch: a DROP per object costs a round trip and a commit each.
    statements = [
        f'DROP {kind} IF EXISTS temp."{name}";' for kind, name in [*rows, *_SCRATCH_MACROS]
    ]
    con.execute("\n".join(statements))


def _utc_timestamps(table: pa.Table) -> pa.Table:
    # The SQL emits naive UTC timestamps (see _prelude_bookings.sql); label them UTC, and
    # relabel any session-zoned TIMESTAMPTZ too (same instants). A table without timestamps (or
    # already labelled UTC) is returned as it is: no cast pass over millions of rows.
    utc = pa.timestamp("us", tz="UTC")
    if not any(pa.types.is_timestamp(f.type) and f.type != utc for f in table.schema):
        return table
    fields = [
        pa.field(f.name, utc, f.nullable) if pa.types.is_timestamp(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def run_mart_sql(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run a mart's SQL (any leading statements, then its final query) into an Arrow table.

    The final query goes through the relation API: DuckDB then collects Arrow batches in its
    (parallel) pipeline instead of materialising a result and converting it afterwards.
    """
    relation = con.sql(sql)
    if relation is None:
        raise ValueError("mart SQL must end with a query")
    return relation.to_arrow_table()


def build_mart(con: duckdb.DuckDBPyConnection, name: str, settings: MartSettings) -> pa.Table:
    """Run mart `name` over the raw (and upstream mart) views registered on `con`."""
    spec = MART_SPECS[name]
    try:
        prepare_session(con, settings, spec.preludes)
        table = run_mart_sql(con, load_sql(spec.sql_file))
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


def iter_build_all(
    raw_paths: Mapping[str, Path],
    out_dir: Path,
    settings: MartSettings,
    memory_limit: str = "1GB",
) -> Iterator[tuple[str, Path]]:
    """build_all one mart at a time: yields (name, parquet path) as each is written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # A bounded buffer pool: DuckDB spills to disk instead of holding most of the machine's RAM.
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        register_parquet_views(con, raw_paths)
        # One session: settings and shared preludes (calendar, day pieces, ...) are built once
        # and reused by every mart that needs them. They derive from the raw views and settings
        # only; booking_facts (staged) holds the same rows as the facts prelude.
        _write_settings(con, settings)
        already_run: set[str] = set()
        # booking_facts first (stable sort keeps dependency order) so the rest can read it back.
        for name in sorted(build_order(), key=lambda mart: mart != "booking_facts"):
            spec = MART_SPECS[name]
            prepare_session(con, settings, spec.preludes, already_run)
            path = out_dir / f"{name}.parquet"
            table = _utc_timestamps(run_mart_sql(con, load_sql(spec.sql_file)))
            write_parquet(table, path)
            del table
            register_parquet_views(con, {name: path})
            if name == "booking_facts":
                # Later marts read the written facts instead of normalising raw bookings again.
                con.execute(load_sql("_prelude_staged.sql"))
                already_run.update({"facts", "staged"})
            yield name, path
    finally:
        con.close()


def build_all(
    raw_paths: Mapping[str, Path],
    out_dir: Path,
    settings: MartSettings,
    memory_limit: str = "1GB",
) -> dict[str, Path]:
    """Build every mart in dependency order into `<out_dir>/<name>.parquet`."""
    return dict(iter_build_all(raw_paths, out_dir, settings, memory_limit))
