"""Run a mart's SQL in DuckDB: settings become temp tables, shared preludes run first, and DuckDB
writes each table's Parquet file itself (COPY), so no large table passes through Python."""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import MART_SPECS, PRELUDE_ORDER
from calira_pipeline.storage.warehouse import PARQUET_ROW_GROUP_ROWS

_SCRATCH_PREFIX = "mart__"
# The preludes' large intermediate tables (the local-day pieces, millions of rows at 1M bookings)
# go to this in-memory catalog, which DuckDB compresses at a checkpoint: ~200 MB of plain temp
# tables at 1M bookings take ~45 MB there, and scans of them are no slower.
COMPACT = "mart__compact"
_SESSION = "mart__compact_session"  # temp: the catalog's name, the search path found
SQL_DIR = Path(__file__).resolve().parent / "sql"


def load_sql(file_name: str) -> str:
    return (SQL_DIR / file_name).read_text(encoding="utf-8")


def register_parquet_views(con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path]) -> None:
    """A view named after each table over its Parquet file (replacing any earlier one)."""
    for name, path in paths.items():
        con.read_parquet(str(path)).create_view(name, replace=True)


def _quoted_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_compact(con: duckdb.DuckDBPyConnection) -> str:
    """This connection's compressed catalog, attached on first use and put on the search path
    after the session's own; returns its name.

    Only when a prelude writes there: the checks' preludes do not, and DuckDB refuses to attach
    an in-memory database to a read-only one (a notebook's calira_pipeline.connect()). An
    attached catalog belongs to the database, not the connection, so a session on another
    cursor of the same database gets its own (mart__compact_2, ...). Its name and the caller's
    search path are kept in a temp table for drop_scratch.
    """
    opened = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [_SESSION]
    ).fetchone()
    if opened and opened[0]:
        row = con.execute(f"SELECT catalog FROM temp.{_SESSION}").fetchone()
        return str(row[0]) if row else COMPACT
    taken = {
        row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    for number in itertools.count(1):
        catalog = COMPACT if number == 1 else f"{COMPACT}_{number}"
        if catalog in taken:
            continue
        try:
            con.execute(f"ATTACH ':memory:' AS {catalog} (COMPRESS)")
        except duckdb.BinderException:  # attached by another cursor since the look-up
            continue
        break
    con.execute(
        f"CREATE TEMP TABLE {_SESSION} AS "
        "SELECT ? AS catalog, current_setting('search_path') AS search_path",
        [catalog],
    )
    found = con.execute("SELECT current_setting('search_path')").fetchone()
    # The caller's path first (tables it finds there, and where the session's views go); else
    # the session's own schema, quoted: a file called o'brien.duckdb is a database o'brien.
    own = found[0] if found and found[0] else None
    if own is None:
        database = con.execute("SELECT current_database()").fetchone()
        own = f"{_quoted_identifier(database[0] if database else 'memory')}.main"
    con.execute("SET search_path = ?", [f"{own},{catalog}.main"])
    return catalog


def _compress(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """In-memory tables are compressed when checkpointed, not as they are written. DuckDB
    refuses while another cursor of the database holds a transaction over every catalog (one
    that listed duckdb_tables(), say): the tables then stay uncompressed, which costs memory,
    not correctness."""
    with contextlib.suppress(duckdb.TransactionException):
        con.execute(f"CHECKPOINT {catalog}")


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

    With ``already_run`` (one build session: settings written, preludes kept between tables)
    only the preludes not run yet are run, and they are added to it.
    """
    if already_run is None:
        _write_settings(con, settings)
    for prelude in PRELUDE_ORDER:
        if prelude in preludes and (already_run is None or prelude not in already_run):
            sql = load_sql(f"_prelude_{prelude}.sql")
            compact = f"{COMPACT}." in sql
            if compact:
                catalog = _open_compact(con)
                sql = sql.replace(f"{COMPACT}.", f"{catalog}.")
            con.execute(sql)
            if compact:
                _compress(con, catalog)
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
    """Drop this module's temp views, tables, macros and compressed catalog so a shared
    connection stays clean, and give back the search path the session found."""
    rows = con.execute(
        "SELECT 'VIEW', view_name FROM duckdb_views() "
        "WHERE temporary AND starts_with(view_name, $prefix) "
        "UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() "
        "WHERE temporary AND starts_with(table_name, $prefix)",
        {"prefix": _SCRATCH_PREFIX},
    ).fetchall()
    restore: list[str] = []  # a session that never opened the catalog left the path alone
    if ("TABLE", _SESSION) in rows:
        row = con.execute(f"SELECT catalog, search_path FROM temp.{_SESSION}").fetchone()
        if row:
            found = str(row[1] or "")
            restore = [
                f"DETACH DATABASE IF EXISTS {row[0]};",
                f"SET search_path = {_sql_string(found)};" if found else "RESET search_path;",
            ]
    # One batch: a DROP per object costs a round trip and a commit each.
    statements = [
        f'DROP {kind} IF EXISTS temp."{name}";' for kind, name in [*rows, *_SCRATCH_MACROS]
    ]
    statements += restore
    con.execute("\n".join(statements))


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


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
        f'CASE WHEN isfinite("{c}") THEN make_timestamptz(epoch_us("{c}")) '
        f'ELSE CAST("{c}" AS TIMESTAMPTZ) END AS "{c}"'
        for c in naive
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
            f"COPY (SELECT * FROM mart__result{order}) TO {_sql_string(str(path))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {PARQUET_ROW_GROUP_ROWS})"
        ).fetchone()
    finally:
        con.execute("SET TimeZone = ?", [zone[0] if zone else "UTC"])
    con.execute(
        f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet({_sql_string(str(path))})'
    )
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
        _write_settings(con, settings)
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
            _write_settings(con, settings)
            write_table(con, name, settings, path, set())
            table = pq.read_table(path)
        finally:
            try:  # fails when `name` is the caller's own table: the session ends all the same
                con.execute(f'DROP VIEW IF EXISTS "{name}"')
            finally:
                drop_scratch(con)
    return table
