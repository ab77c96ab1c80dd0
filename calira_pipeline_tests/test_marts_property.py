"""Property test: the SQL daily table equals a small zoneinfo reference on random bookings."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calira_pipeline.marts import MartSettings, build_mart, register_parquet_views
from calira_pipeline_tests.test_marts import Row, write_raw

# Lord Howe moves its clocks by 30 minutes; Kolkata is +05:30 all year.
ZONES = {
    1: "Europe/London",
    2: "America/New_York",
    3: "Australia/Sydney",
    4: "Australia/Lord_Howe",
    5: "Asia/Kolkata",
}
# Days just before DST changes in 2024, so random bookings cross them often.
BASES = [
    datetime(2024, 3, 8, tzinfo=UTC),
    datetime(2024, 3, 29, tzinfo=UTC),
    datetime(2024, 4, 5, tzinfo=UTC),
    datetime(2024, 10, 4, tzinfo=UTC),
    datetime(2024, 10, 25, tzinfo=UTC),
    datetime(2024, 11, 1, tzinfo=UTC),
]
KINDS = {
    "counted": ("internal", "Completed"),
    "tentative": ("internal", "requested"),
    "cancelled": ("internal", "Cancelled"),
    "maintenance": ("maintenance", "Booked"),
}
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Booking:
    equipment_id: int
    start: datetime
    end: datetime
    kind: str


@st.composite
def booking_sets(draw: st.DrawFn) -> list[Booking]:
    base = draw(st.sampled_from(BASES))
    count = draw(st.integers(1, 12))
    bookings = []
    for _ in range(count):
        start = base + timedelta(minutes=5 * draw(st.integers(0, 4 * 288)))
        minutes = 5 * draw(st.one_of(st.integers(-3, 36), st.integers(0, 3 * 288)))
        bookings.append(
            Booking(
                draw(st.sampled_from(sorted(ZONES))),
                start,
                start + timedelta(minutes=minutes),
                draw(st.sampled_from(sorted(KINDS))),
            )
        )
    return bookings


def union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def overlap_hours(interval: Interval, day: Interval) -> float:
    seconds = (min(interval[1], day[1]) - max(interval[0], day[0])).total_seconds()
    return max(seconds, 0.0) / 3600


def reference_daily(bookings: list[Booking]) -> pd.DataFrame:
    instants = [b.start for b in bookings] + [b.end for b in bookings]
    first, last = min(instants), max(instants)
    rows = []
    for equipment_id, zone_name in ZONES.items():
        zone = ZoneInfo(zone_name)
        mine = [b for b in bookings if b.equipment_id == equipment_id and b.end > b.start]
        by_kind = {kind: [(b.start, b.end) for b in mine if b.kind == kind] for kind in KINDS}
        day = first.astimezone(zone).date()
        last_day = (last - timedelta(microseconds=1)).astimezone(zone).date()
        while day <= last_day:
            bounds = (
                datetime.combine(day, time(0), zone).astimezone(UTC),
                datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC),
            )
            counted = [overlap_hours(i, bounds) for i in by_kind["counted"]]
            rows.append(
                {
                    "equipment_id": equipment_id,
                    "day": day,
                    "available_hours": (bounds[1] - bounds[0]).total_seconds() / 3600,
                    "booked_hours": sum(
                        overlap_hours(i, bounds) for i in union(by_kind["counted"])
                    ),
                    "booked_hours_sum": sum(counted),
                    "booking_count": sum(1 for hours in counted if hours > 0),
                    "tentative_hours": sum(overlap_hours(i, bounds) for i in by_kind["tentative"]),
                    "maintenance_hours": sum(
                        overlap_hours(i, bounds) for i in union(by_kind["maintenance"])
                    ),
                }
            )
            day += timedelta(days=1)
    return pd.DataFrame(rows)


def sql_daily(bookings: list[Booking]) -> pd.DataFrame:
    rows: list[Row] = [
        {
            "id": n,
            "equipment_id": b.equipment_id,
            "start_time": b.start,
            "end_time": b.end,
            "booking_type": KINDS[b.kind][0],
            "status": KINDS[b.kind][1],
            "provider_lab_id": b.equipment_id,
        }
        for n, b in enumerate(bookings, start=1)
    ]
    equipment = [{"id": i, "lab_id": i} for i in ZONES]
    accounts = [{"id": i, "account_type": "lab", "timezone": z} for i, z in ZONES.items()]
    with tempfile.TemporaryDirectory() as tmp:
        raw = write_raw(Path(tmp), rows, equipment, accounts)
        con = duckdb.connect()
        register_parquet_views(con, raw)
        for name in ("booking_facts", "equipment_interval_days"):
            con.register(name, build_mart(con, name, MartSettings()))
        table = build_mart(con, "equipment_utilisation_daily", MartSettings())
        con.close()
    return table.to_pandas()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(booking_sets())
def test_daily_table_matches_reference(bookings: list[Booking]) -> None:
    keys = ["equipment_id", "day"]
    expected = reference_daily(bookings).sort_values(keys).reset_index(drop=True)
    actual = sql_daily(bookings).sort_values(keys).reset_index(drop=True)
    assert list(zip(actual.equipment_id, actual.day, strict=True)) == list(
        zip(expected.equipment_id, expected.day, strict=True)
    )
    pd.testing.assert_frame_equal(
        actual[expected.columns], expected, check_dtype=False, atol=1e-9, rtol=0
    )


def test_reference_knows_dst() -> None:
    # Guards the reference itself: 31 Mar 2024 in London lasts 23 hours.
    one = [
        Booking(
            1, datetime(2024, 3, 31, 0, tzinfo=UTC), datetime(2024, 3, 31, 1, tzinfo=UTC), "counted"
        )
    ]
    frame = reference_daily(one).set_index(["equipment_id", "day"])
    assert frame.loc[(1, date(2024, 3, 31)), "available_hours"] == 23.0
