"""One DuckDB session of the marts: settings as temp tables, the shared preludes run once, their
large intermediate tables in a compressed in-memory catalog, and everything dropped at the end
(`drop_scratch`) so a shared connection stays clean."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb

from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import PRELUDE_ORDER
from calira_pipeline.storage.snapshots import sql_string

_SCRATCH_PREFIX = "mart__"
# The preludes' large intermediate tables (the local-day pieces, millions of rows at 1M bookings)
# go to this in-memory catalog, which DuckDB compresses at a checkpoint: ~200 MB of plain temp
# tables at 1M bookings take ~45 MB there, and scans of them are no slower.
COMPACT = "mart__compact"
_SESSION = "mart__compact_session"  # temp: the catalog's name, the search path found
SQL_DIR = Path(__file__).resolve().parent / "sql"


def load_sql(file_name: str) -> str:
    return (SQL_DIR / file_name).read_text(encoding="utf-8")


def quoted(name: str) -> str:
    """A SQL identifier (a column, table or database name) quoted."""
    return '"' + name.replace('"', '""') + '"'


def count_of(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The first column of a one-row query as an int (0 for no row or NULL)."""
    row = con.execute(sql).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


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
    found = con.execute("SELECT current_setting('search_path')").fetchone()
    own = str(found[0]) if found and found[0] else ""
    con.execute(
        f"CREATE TEMP TABLE {_SESSION} AS SELECT ? AS catalog, ? AS search_path", [catalog, own]
    )
    # The caller's path first (tables it finds there, and where the session's views go); else
    # the session's own schema, quoted: a file called o'brien.duckdb is a database o'brien.
    if not own:
        database = con.execute("SELECT current_database()").fetchone()
        own = f"{quoted(database[0] if database else 'memory')}.main"
    con.execute("SET search_path = ?", [f"{own},{catalog}.main"])
    return catalog


def _compress(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """In-memory tables are compressed when checkpointed, not as they are written. DuckDB
    refuses while another cursor of the database holds a transaction over every catalog (one
    that listed duckdb_tables(), say): the tables then stay uncompressed, which costs memory,
    not correctness."""
    with contextlib.suppress(duckdb.TransactionException):
        con.execute(f"CHECKPOINT {catalog}")


def write_settings(con: duckdb.DuckDBPyConnection, settings: MartSettings) -> None:
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
        write_settings(con, settings)
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
                f"SET search_path = {sql_string(found)};" if found else "RESET search_path;",
            ]
    # One batch: a DROP per object costs a round trip and a commit each.
    statements = [
        f'DROP {kind} IF EXISTS temp."{name}";' for kind, name in [*rows, *_SCRATCH_MACROS]
    ]
    statements += restore
    con.execute("\n".join(statements))
