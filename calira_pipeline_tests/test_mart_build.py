"""The one build session: DuckDB limits from configuration, COPY-written files, build order."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calira_pipeline.marts import (
    MART_SPECS,
    STAGING,
    DuckDBLimits,
    MartSettings,
    build_mart,
    build_tables,
    mart_check_failures,
)
from calira_pipeline.marts.build import build_all, build_order
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline_tests.test_marts import ACCOUNT_ROWS, BOOKING_ROWS, EQUIPMENT_ROWS, write_raw


def test_limits_come_from_the_mart_configuration(tmp_path: Path) -> None:
    limits = MartConfigResource(duckdb_memory_limit="256MB", duckdb_threads=1).limits()
    with duckdb.connect() as con:
        limits.apply(con, tmp_path / "spill")
        assert con.execute("select current_setting('threads')").fetchone() == (1,)
        memory = con.execute("select current_setting('memory_limit')").fetchone()
        assert memory is not None and memory[0].startswith("244.1 MiB")
        spill = con.execute("select current_setting('temp_directory')").fetchone()
        assert spill == (str(tmp_path / "spill"),)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (DuckDBLimits(memory_limit="lots"), "CALIRA_DUCKDB_MEMORY_LIMIT='lots'"),
        (DuckDBLimits(threads=0), "CALIRA_DUCKDB_THREADS=0 must be a whole number from 1"),
    ],
)
def test_bad_limits_name_the_variable(tmp_path: Path, limits: DuckDBLimits, message: str) -> None:
    with duckdb.connect() as con, pytest.raises(ValueError, match=message):
        limits.apply(con, tmp_path)


def test_staging_comes_first_and_marts_read_it() -> None:
    order = build_order()
    assert order[: len(STAGING)] == list(STAGING)
    for name in order:
        for upstream in MART_SPECS[name].upstream:
            assert order.index(upstream) < order.index(name), (upstream, name)
    assert MART_SPECS["equipment_utilisation_daily"].staging_inputs == STAGING
    assert MART_SPECS["lab_utilisation_monthly"].staging_inputs == ()


def test_a_subset_reads_unselected_tables_from_the_session(tmp_path: Path) -> None:
    """Selecting one mart builds that mart alone, over staging already published."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        staged = list(build_tables(con, STAGING, tmp_path / "staging", MartSettings()))
        assert [name for name, _, _ in staged] == list(STAGING)
        [(name, path, rows)] = build_tables(
            con, ["equipment_hour_of_week"], tmp_path / "marts", MartSettings()
        )
    assert name == "equipment_hour_of_week"
    table = pq.read_table(path)
    assert table.num_rows == rows == 7 * 24 * len(EQUIPMENT_ROWS)
    assert sorted(p.name for p in (tmp_path / "marts").iterdir()) == [
        "equipment_hour_of_week.parquet"
    ]
    facts = pq.read_table(staged[0][1])
    assert facts.schema.field("start_utc").type == pa.timestamp("us", tz="UTC")


def test_unknown_tables_are_refused(tmp_path: Path) -> None:
    with duckdb.connect() as con, pytest.raises(ValueError, match="unknown mart tables"):
        list(build_tables(con, ["no_such_mart"], tmp_path, MartSettings()))


def test_small_tables_are_written_in_grain_order_and_the_session_setting_restored(
    tmp_path: Path,
) -> None:
    """The large tables stream unsorted (MartSpec.sorted_on_write); the small ones stay sorted."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        built = {n: p for n, p, _ in build_tables(con, MART_SPECS, tmp_path, MartSettings())}
        restored = con.execute("select current_setting('preserve_insertion_order')").fetchone()
    assert restored == (True,)
    unsorted = {n for n, spec in MART_SPECS.items() if not spec.sorted_on_write}
    assert unsorted == {
        "booking_facts",
        "equipment_interval_days",
        "equipment_utilisation_daily",
        "parent_equipment_utilisation_daily",
        "equipment_hour_of_week",
    }
    for name, path in built.items():
        spec = MART_SPECS[name]
        if name in unsorted or not spec.grain_columns:
            continue
        table = pq.read_table(path)
        assert table.num_rows > 1, name
        keys = [(c, "ascending") for c in spec.grain_columns]
        assert table.equals(table.sort_by(keys)), name


def test_large_intermediates_are_compressed_and_gone_after_the_session(tmp_path: Path) -> None:
    """The tables the preludes keep for several marts (the occupying bookings while staging, the
    staged local-day pieces while building marts) live in the compressed in-memory catalog, and
    the catalog and the search path leave with the session."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)

    def compact_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
        rows = con.execute(
            "select table_name from duckdb_tables() where database_name = 'mart__compact'"
        ).fetchall()
        return {row[0] for row in rows}

    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        staging = build_tables(con, STAGING, tmp_path / "staging", MartSettings())
        next(staging)  # booking_facts
        next(staging)  # equipment_interval_days: its prelude read the occupying bookings
        assert "mart__occupying_bookings" in compact_tables(con)
        assert list(staging) == []
        marts = build_tables(con, ["equipment_utilisation_daily"], tmp_path, MartSettings())
        next(marts)
        assert {"mart__pieces", "mart__parent_pieces"} <= compact_tables(con)
        kinds = {
            row[0]
            for row in con.execute(
                "select distinct compression from pragma_storage_info('mart__compact.mart__pieces')"
            ).fetchall()
        }
        assert kinds - {"Uncompressed"}, kinds
        assert list(marts) == []  # the session ends
        attached = con.execute("select database_name from duckdb_databases()").fetchall()
        assert "mart__compact" not in {row[0] for row in attached}
        assert con.execute("select current_setting('search_path')").fetchone() == ("",)


def _file_with_marts(tmp_path: Path, file_name: str, marts: bool = True) -> Path:
    """A DuckDB file holding the raw and staging tables and, with `marts`, every mart (as
    tables), like a published one."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    built = build_all(raw, tmp_path / "marts", MartSettings())
    kept = {n: f for n, f in built.items() if marts or n in STAGING}
    path = tmp_path / file_name
    with duckdb.connect(str(path)) as con:
        for name, file in {**raw, **kept}.items():
            con.read_parquet(str(file)).create(name)
    return path


def test_checks_run_on_a_read_only_connection(tmp_path: Path) -> None:
    """A notebook's calira_pipeline.connect() is read-only: the checks need no writable catalog
    (DuckDB refuses to attach an in-memory database to a read-only one)."""
    path = _file_with_marts(tmp_path, "published.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        results = mart_check_failures(con, "booking_cost_monthly", MartSettings())
        assert results and all(r.passed for r in results if r.severity == "error"), results
        databases = {
            row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()
        }
        assert "mart__compact" not in databases


def test_a_session_on_a_file_whose_name_has_a_quote_builds_and_restores_the_search_path(
    tmp_path: Path,
) -> None:
    path = _file_with_marts(tmp_path, "o'brien's.duckdb", marts=False)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA mine; CREATE TABLE mine.own AS SELECT 7 AS answer")
        con.execute("SET search_path = 'mine'")
        table = build_mart(con, "equipment_utilisation_daily", MartSettings())
        assert table.num_rows > 0
        # The caller's own search path is given back, not reset to DuckDB's default.
        assert con.execute("select answer from own").fetchall() == [(7,)]


def test_a_session_that_fails_to_start_leaves_the_connection_as_it_was(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        with pytest.raises(ValueError, match="not an IANA zone"):
            list(build_tables(con, STAGING, tmp_path, MartSettings(default_timezone="Mars/Base")))
        databases = {
            row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()
        }
        assert "mart__compact" not in databases
        assert con.execute("select current_setting('search_path')").fetchone() == ("",)


def test_two_sessions_on_cursors_of_one_database_keep_their_own_pieces(tmp_path: Path) -> None:
    """An attached catalog belongs to the database, not the connection (temp tables did): a
    session on one cursor must not detach or overwrite the pieces of a session on another."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        first, second = con.cursor(), con.cursor()
        paused = build_tables(first, MART_SPECS, tmp_path / "first", MartSettings())
        assert [next(paused)[0], next(paused)[0]] == ["booking_facts", "equipment_interval_days"]
        whole = {
            n: rows
            for n, _, rows in build_tables(second, MART_SPECS, tmp_path / "second", MartSettings())
        }
        rest = {n: rows for n, _, rows in paused}  # the first session's pieces are still there
        assert rest and all(rest[n] == whole[n] for n in rest), (rest, whole)
        attached = {
            row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()
        }
        assert not {d for d in attached if d.startswith("mart__compact")}


def test_a_session_reads_tables_through_the_callers_search_path(tmp_path: Path) -> None:
    """Raw tables kept in a schema of their own, found through the caller's search path, are
    still found while the session's compressed catalog is on the path."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA source")
        for name, path in raw.items():
            con.execute(f"CREATE VIEW source.{name} AS SELECT * FROM read_parquet('{path}')")
        con.execute("SET search_path = 'source,main'")
        built = {n: rows for n, _, rows in build_tables(con, STAGING, tmp_path, MartSettings())}
        assert all(built.values()), built
        assert con.execute("select count(*) from bookings").fetchone() == (len(BOOKING_ROWS),)


def test_a_failed_build_mart_still_ends_its_session(tmp_path: Path) -> None:
    """The mart's name is taken by a table of the caller's: the build fails, and the session's
    catalog and search path go all the same."""
    path = _file_with_marts(tmp_path, "taken.duckdb")
    with duckdb.connect(str(path)) as con:
        with pytest.raises(duckdb.CatalogException, match="equipment_utilisation_daily"):
            build_mart(con, "equipment_utilisation_daily", MartSettings())
        attached = {
            row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()
        }
        assert not {d for d in attached if d.startswith("mart__compact")}
        assert con.execute("select current_setting('search_path')").fetchone() == ("",)
        scratch = con.execute(
            "select count(*) from duckdb_tables() "
            "where temporary and starts_with(table_name, 'mart__')"
        ).fetchone()
        assert scratch == (0,)


def test_a_build_goes_on_while_another_cursor_holds_a_transaction_over_every_catalog(
    tmp_path: Path,
) -> None:
    """A cursor that listed the tables of every catalog in an open transaction makes DuckDB
    refuse to checkpoint the session's catalog: the pieces then stay uncompressed, and the
    build does not fail for it."""
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    with duckdb.connect() as con:
        for name, path in raw.items():
            con.read_parquet(str(path)).create_view(name)
        build = build_tables(con, MART_SPECS, tmp_path / "out", MartSettings())
        assert [next(build)[0], next(build)[0]] == ["booking_facts", "equipment_interval_days"]
        other = con.cursor()
        other.execute("BEGIN")
        other.execute("select count(*) from duckdb_tables()").fetchall()
        rest = [name for name, _, _ in build]
        other.execute("COMMIT")
        assert set(rest) == set(MART_SPECS) - {"booking_facts", "equipment_interval_days"}
