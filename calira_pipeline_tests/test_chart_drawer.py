"""Charts drawn on a worker thread while the build goes on (wiring/marts.py's ChartDrawer)."""

from __future__ import annotations

import threading

import duckdb
import pytest

from calira_pipeline.reporting import charts
from calira_pipeline.wiring.marts import ChartDrawer


def _chart(title: str, source: str) -> charts.Chart:
    return charts.Chart(title=title, png=b"png", window="w", source=source)


def test_charts_are_drawn_off_the_build_thread_over_what_the_build_wrote() -> None:
    drawn_on: list[str] = []

    def count_rows(con: duckdb.DuckDBPyConnection, source: str) -> charts.Chart:
        drawn_on.append(threading.current_thread().name)
        row = con.execute("select count(*), current_setting('TimeZone') from built").fetchone()
        assert row is not None
        return _chart(f"{row[0]} rows, {row[1]}", source)

    with duckdb.connect() as con:
        con.execute("create view built as select * from range(3)")
        with ChartDrawer(con, lambda: "sandbox", {"built": count_rows}) as drawer:
            drawer.submit("built")
            drawn = drawer.drawn()
    assert drawn["built"].title == "3 rows, UTC"
    assert drawn["built"].source == "sandbox"
    assert drawn_on and drawn_on[0] != threading.current_thread().name


def test_a_drawing_error_fails_the_build() -> None:
    def broken(con: duckdb.DuckDBPyConnection, source: str) -> charts.Chart:
        con.execute("select * from no_such_mart")
        raise AssertionError("unreachable")

    with duckdb.connect() as con, ChartDrawer(con, lambda: "sandbox", {"m": broken}) as drawer:
        drawer.submit("m")
        with pytest.raises(duckdb.CatalogException, match="no_such_mart"):
            drawer.drawn()
