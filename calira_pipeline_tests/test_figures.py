"""The recent window (complete local months only, as of the data's own clock) and the
hour-of-week panels."""

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


def test_hour_of_week_takes_the_busiest_labs_and_means_their_instruments() -> None:
    con = duckdb.connect()
    con.execute("create table accounts (id bigint, name varchar)")
    # Lab 2 is listed twice (still one panel), lab 3 has no account row (named by its id).
    con.execute("insert into accounts values (1, 'Quiet lab'), (2, 'Busy lab'), (2, 'Busy lab')")
    con.execute(
        "create table equipment_hour_of_week (equipment_id bigint, lab_id bigint, "
        "weekday integer, hour integer, booked_hours double, occupancy double)"
    )
    con.execute(
        "insert into equipment_hour_of_week values "
        # Busy lab: two instruments at Monday 09:00 (mean 0.5, one unknown counted as 0).
        "(10, 2, 1, 9, 50, 1.0), (11, 2, 1, 9, 0, null), (10, 2, 7, 23, 40, 0.25), "
        # Lab 3 books as much as lab 1: the lower id comes first.
        "(20, 1, 3, 12, 5, 0.5), (30, 3, 5, 0, 5, 0.75), "
        # No lab: never a panel, however busy.
        "(40, null, 1, 9, 500, 1.0)"
    )
    labs = figures.hour_of_week_by_lab(con, 2)
    assert [(lab.lab_id, lab.lab) for lab in labs] == [(2, "Busy lab"), (1, "Quiet lab")]
    busy = labs[0].occupancy
    assert busy[0][9] == 0.5 and busy[6][23] == 0.25
    assert sum(v for row in busy for v in row) == 0.75  # every other cell is empty: 0
    assert labs[0].peak == (0, 9, 0.5)
    assert [lab.lab for lab in figures.hour_of_week_by_lab(con, 5)] == [
        "Busy lab", "Quiet lab", "3"]
