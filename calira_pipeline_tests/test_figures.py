"""The recent window: complete local months only, as of the data's own clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from calira_pipeline.reporting import figures


def _con(zones: list[str], requested: str, first_start: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create table accounts (id bigint, account_type varchar, timezone varchar)")
    for i, zone in enumerate(zones):
        con.execute("insert into accounts values (?, 'lab', ?)", [i, zone])
    con.execute("create table bookings (requested_at timestamptz, start_time timestamptz)")
    con.execute("insert into bookings values (?::timestamptz, ?::timestamptz)",
                [requested, first_start])
    return con


def test_a_month_is_complete_once_it_ended_in_every_lab_zone() -> None:
    # 03:00 UTC on 1 Nov: November in Tokyo, still 31 Oct in Los Angeles.
    tokyo = _con(["Asia/Tokyo"], "2026-11-01 03:00:00+00", "2024-01-01 00:00:00+09")
    assert figures.recent_window(tokyo).first_month == date(2026, 8, 1)
    both = _con(["Asia/Tokyo", "America/Los_Angeles"], "2026-11-01 03:00:00+00", "2024-01-05")
    window = figures.recent_window(both)
    assert (window.first_month, window.last_month, window.months) == (
        date(2026, 7, 1), date(2026, 9, 1), 3)
    assert window.state(date(2026, 10, 1)) == "partial"
    assert window.state(date(2026, 11, 1)) == "future"
    assert "Jul 2026 – Sep 2026 (3 complete local months" in window.label()


def test_the_clock_is_the_newest_request_never_later_than_now() -> None:
    con = _con(["UTC"], "2026-11-15 12:00:00+00", "2024-01-01")
    assert figures.recent_window(con).end_month == date(2026, 11, 1)
    earlier = datetime(2026, 9, 10, tzinfo=UTC)
    assert figures.recent_window(con, now=earlier).end_month == date(2026, 9, 1)


@pytest.mark.parametrize(
    ("first_start", "first_month", "months"),
    [
        ("2026-06-15 10:00:00+00", date(2026, 7, 1), 2),
        ("2026-06-01 00:00:00+00", date(2026, 6, 1), 3),
    ],
)
def test_a_month_the_data_starts_part_way_through_is_not_in_the_window(
    first_start: str, first_month: date, months: int
) -> None:
    con = _con(["UTC"], "2026-09-02 00:00:00+00", first_start)
    window = figures.recent_window(con)
    assert (window.first_month, window.months) == (first_month, months)


def test_no_complete_month_yet_says_so() -> None:
    con = _con(["UTC"], "2026-09-20 00:00:00+00", "2026-09-03 00:00:00+00")
    window = figures.recent_window(con)
    assert window.months == 0 and "no complete local month" in window.label()
