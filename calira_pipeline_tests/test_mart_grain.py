"""duplicate_grains: the bitmap path (integer/DATE keys) and the hash path agree with grouping."""

from __future__ import annotations

import duckdb
import pytest

from calira_pipeline.marts.grain import duplicate_grains


def _by_grouping(con: duckdb.DuckDBPyConnection, keys: str) -> int:
    row = con.execute(
        f"SELECT count(*) FROM (SELECT {keys} FROM t GROUP BY {keys} HAVING count(*) > 1)"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # 300 instruments x 40 days (bitmap path) with a text column for the hash path.
    con.execute(
        "CREATE TABLE t AS SELECT e AS equipment_id, DATE '2024-03-20' + CAST(d AS INTEGER) "
        "AS day, 'k' || (e % 3) AS kind, CAST(e % 7 AS SMALLINT) AS small "
        "FROM range(-5, 295) r(e), range(40) s(d)"
    )
    return con


@pytest.mark.parametrize(
    "grain", [("equipment_id", "day"), ("kind", "equipment_id", "day"), ("day", "equipment_id")]
)
def test_unique_keys_have_no_duplicates(
    con: duckdb.DuckDBPyConnection, grain: tuple[str, ...]
) -> None:
    assert duplicate_grains(con, "t", grain) == 0


@pytest.mark.parametrize("grain", [("equipment_id", "day"), ("kind", "equipment_id", "day")])
def test_repeated_keys_are_counted_once_each(
    con: duckdb.DuckDBPyConnection, grain: tuple[str, ...]
) -> None:
    # Two keys repeated (one of them three times): 2 repeated keys, whatever the path.
    con.execute(
        "INSERT INTO t SELECT * FROM t WHERE equipment_id IN (7, 290) AND day = '2024-03-21'"
    )
    con.execute(
        "INSERT INTO t SELECT * FROM t WHERE equipment_id = 7 AND day = '2024-03-21' LIMIT 1"
    )
    assert duplicate_grains(con, "t", grain) == 2 == _by_grouping(con, ", ".join(grain))


def test_non_unique_small_key_and_null_keys(con: duckdb.DuckDBPyConnection) -> None:
    # Many rows per (small, day): every one of the 7 x 40 keys repeats.
    assert duplicate_grains(con, "t", ("small", "day")) == 280
    # NULL keys: two rows with a NULL equipment_id and the same day repeat one key.
    con.execute(
        "INSERT INTO t VALUES (NULL, DATE '2024-03-20', 'x', 1), (NULL, DATE '2024-03-20', 'y', 2)"
    )
    assert duplicate_grains(con, "t", ("equipment_id", "day")) == 1
    assert duplicate_grains(con, "t", ("equipment_id", "day", "kind")) == 0


def test_wide_key_ranges_fall_back_to_hashing(con: duckdb.DuckDBPyConnection) -> None:
    # Ids spread over ~2^40 values: far too many bits for a bitmap, still counted exactly.
    con.execute("CREATE TABLE w AS SELECT equipment_id * 4000000000 AS id, day FROM t")
    con.execute("INSERT INTO w SELECT * FROM w WHERE id = 40000000000 AND day = '2024-04-01'")
    assert duplicate_grains(con, "w", ("id", "day")) == 1


def test_empty_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DELETE FROM t")
    assert duplicate_grains(con, "t", ("equipment_id", "day")) == 0
