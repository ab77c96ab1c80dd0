"""Golden tests for the utilisation and cost marts, with hand-computed expectations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calira_pipeline.marts import (
    MART_SPECS,
    MartSettings,
    OperatingHours,
    build_all,
    build_mart,
    mart_check_failures,
    register_parquet_views,
)
from calira_pipeline.storage.schema import ACCOUNTS, BOOKINGS, EQUIPMENT, TableSpec

Row = dict[str, Any]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def booking(
    booking_id: int,
    equipment_id: int,
    start: str,
    end: str,
    *,
    lab: int = 1,
    status: str = "Completed",
    booking_type: str = "internal",
    cost: str | None = "10.00",
    currency: str | None = "GBP",
    **extra: Any,
) -> Row:
    row: Row = {
        "id": booking_id,
        "equipment_id": equipment_id,
        "start_time": ts(start),
        "end_time": ts(end),
        "status": status,
        "booking_type": booking_type,
        "cost": None if cost is None else Decimal(cost),
        "currency": currency,
        "provider_lab_id": lab,
        "requester_lab_id": 2,
        "duration_minutes": int((ts(end) - ts(start)).total_seconds() // 60),
    }
    row.update(extra)
    return row


def write_raw(
    directory: Path, bookings: Sequence[Row], equipment: Sequence[Row], accounts: Sequence[Row]
) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    tables: tuple[tuple[TableSpec, Sequence[Row]], ...] = (
        (BOOKINGS, bookings),
        (EQUIPMENT, equipment),
        (ACCOUNTS, accounts),
    )
    for spec, rows in tables:
        paths[spec.name] = directory / f"{spec.name}.parquet"
        pq.write_table(pa.Table.from_pylist(list(rows), schema=spec.arrow_schema), paths[spec.name])
    return paths


def build_frames(
    directory: Path,
    bookings: Sequence[Row],
    equipment: Sequence[Row],
    accounts: Sequence[Row],
    settings: MartSettings | None = None,
) -> dict[str, pd.DataFrame]:
    raw = write_raw(directory / "raw", bookings, equipment, accounts)
    built = build_all(raw, directory / "marts", settings or MartSettings())
    return {name: pd.read_parquet(path) for name, path in built.items()}


ACCOUNT_ROWS: list[Row] = [
    {"id": 100, "name": "Uni", "account_type": "organisation", "timezone": "Europe/London"},
    {"id": 200, "name": "Chem", "account_type": "department", "organisation_id": 100},
    {"id": 201, "name": "Bio", "account_type": "department", "organisation_id": 100},
    {
        "id": 1,
        "name": "London lab",
        "account_type": "lab",
        "timezone": "Europe/London",
        "department_id": 200,
        "organisation_id": 100,
    },
    {
        "id": 2,
        "name": "NY lab",
        "account_type": "lab",
        "timezone": "America/New_York",
        "department_id": 201,
        "organisation_id": 100,
    },
    {"id": 3, "name": "Sydney independent", "account_type": "lab", "timezone": "Australia/Sydney"},
    {
        "id": 4,
        "name": "Idle lab",
        "account_type": "lab",
        "timezone": "europe/london",
        "department_id": 200,
        "organisation_id": 100,
    },
]
LAB_OF = {11: 2, 13: 2, 14: 3, 40: 4}
EQUIPMENT_ROWS: list[Row] = [
    {"id": i, "lab_id": LAB_OF.get(i, 1)}
    for i in (10, 11, 12, 13, 14, 30, 31, 32, 33, 34, 35, 40, 50)
] + [{"id": 51, "lab_id": 1, "parent_id": 50}, {"id": 52, "lab_id": 1, "parent_id": 50}]
BOOKING_ROWS: list[Row] = [
    # NY: 22:00-02:00 EST over local midnight (all on 11 Jan if bucketed in UTC).
    booking(1, 11, "2024-01-11 03:00", "2024-01-11 07:00", lab=2, currency="USD"),
    # London: spring forward (31 Mar, 23 h) and fall back (27 Oct, 25 h).
    booking(2, 12, "2024-03-30 23:00", "2024-03-31 03:00"),
    booking(3, 12, "2024-10-26 22:00", "2024-10-27 03:00"),
    # New York: spring forward (10 Mar) and fall back (3 Nov; 05:00-07:00Z is 01:00-01:00 twice).
    booking(4, 13, "2024-03-10 04:00", "2024-03-10 09:00", lab=2, currency="USD"),
    booking(5, 13, "2024-11-03 03:00", "2024-11-03 08:00", lab=2, currency="USD"),
    # Sydney: fall back (7 Apr, 25 h) and spring forward (6 Oct, 23 h).
    booking(6, 14, "2024-04-06 12:00", "2024-04-06 18:00", lab=3, currency="AUD"),
    booking(7, 14, "2024-10-05 13:00", "2024-10-05 18:00", lab=3, currency="AUD"),
    # Overlapping pair and a nested pair (London, BST).
    booking(8, 30, "2024-05-01 09:00", "2024-05-01 12:00"),
    booking(9, 30, "2024-05-01 11:00", "2024-05-01 14:00", status="booked"),
    booking(10, 31, "2024-05-02 08:00", "2024-05-02 16:00", status=" CONFIRMED "),
    booking(11, 31, "2024-05-02 10:00", "2024-05-02 11:00"),
    # Three days: 13:00 BST 10 Jun to 13:00 BST 13 Jun.
    booking(12, 32, "2024-06-10 12:00", "2024-06-13 12:00"),
    # Maintenance overlapping use.
    booking(13, 33, "2024-07-01 09:00", "2024-07-01 12:00"),
    booking(
        14,
        33,
        "2024-07-01 10:00",
        "2024-07-01 15:00",
        booking_type="Maintenance",
        status="Booked",
        cost="0.00",
    ),
    # Cancelled and requested.
    booking(15, 34, "2024-07-02 09:00", "2024-07-02 10:00", status="Cancelled"),
    booking(16, 34, "2024-07-02 10:00", "2024-07-02 12:00", status="Requested"),
    # Two currencies on one lab; 23:30Z on 31 May is 00:30 BST on 1 June.
    booking(17, 35, "2024-05-31 23:30", "2024-06-01 01:30", cost="5.01", currency="GBP"),
    booking(18, 35, "2024-06-02 09:00", "2024-06-02 10:00", cost="99.99", currency="usd"),
    # Parent 50 with children 51 and 52.
    booking(19, 51, "2024-08-01 09:00", "2024-08-01 11:00"),
    booking(20, 52, "2024-08-01 10:00", "2024-08-01 12:00"),
    booking(21, 50, "2024-08-01 13:00", "2024-08-01 14:00"),
]


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return build_frames(
        tmp_path_factory.mktemp("golden"), BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS
    )


def daily(marts: dict[str, pd.DataFrame], equipment_id: int) -> pd.DataFrame:
    frame = marts["equipment_utilisation_daily"]
    rows = frame[frame.equipment_id == equipment_id].set_index("day").sort_index()
    return rows[rows.booked_hours_sum + rows.maintenance_hours + rows.tentative_hours > 0]


def hours_by_day(
    marts: dict[str, pd.DataFrame], equipment_id: int, column: str
) -> dict[date, float]:
    return {day: float(v) for day, v in daily(marts, equipment_id)[column].items()}


def test_booking_over_local_midnight_splits_by_lab_zone(marts: dict[str, pd.DataFrame]) -> None:
    assert hours_by_day(marts, 11, "booked_hours") == {
        date(2024, 1, 10): 2.0,
        date(2024, 1, 11): 2.0,
    }
    assert list(daily(marts, 11).booking_count) == [1, 1]
    assert set(daily(marts, 11).timezone) == {"America/New_York"}


@pytest.mark.parametrize(
    ("equipment_id", "expected_hours", "expected_available"),
    [
        (
            12,
            {
                date(2024, 3, 30): 1.0,
                date(2024, 3, 31): 3.0,
                date(2024, 10, 26): 1.0,
                date(2024, 10, 27): 4.0,
            },
            {date(2024, 3, 31): 23.0, date(2024, 10, 27): 25.0},
        ),
        (
            13,
            {
                date(2024, 3, 9): 1.0,
                date(2024, 3, 10): 4.0,
                date(2024, 11, 2): 1.0,
                date(2024, 11, 3): 4.0,
            },
            {date(2024, 3, 10): 23.0, date(2024, 11, 3): 25.0},
        ),
        (
            14,
            {
                date(2024, 4, 6): 1.0,
                date(2024, 4, 7): 5.0,
                date(2024, 10, 5): 1.0,
                date(2024, 10, 6): 4.0,
            },
            {date(2024, 4, 7): 25.0, date(2024, 10, 6): 23.0},
        ),
    ],
)
def test_dst_nights(
    marts: dict[str, pd.DataFrame],
    equipment_id: int,
    expected_hours: dict[date, float],
    expected_available: dict[date, float],
) -> None:
    assert hours_by_day(marts, equipment_id, "booked_hours") == expected_hours
    rows = marts["equipment_utilisation_daily"]
    rows = rows[rows.equipment_id == equipment_id].set_index("day")
    for day, hours in expected_available.items():
        assert rows.loc[day, "available_hours"] == hours
    assert rows.loc[date(2024, 7, 1), "available_hours"] == 24.0


def test_window_covers_first_to_last_local_day_for_every_instrument(
    marts: dict[str, pd.DataFrame],
) -> None:
    frame = marts["equipment_utilisation_daily"]
    london = frame[frame.equipment_id == 40]  # lab with no bookings at all
    # First instant 03:00Z 11 Jan, last 08:00Z 3 Nov.
    assert (london.day.min(), london.day.max(), len(london)) == (
        date(2024, 1, 11),
        date(2024, 11, 3),
        298,
    )
    assert london.booked_hours.sum() == 0 and london.utilisation.max() == 0
    sydney = frame[frame.equipment_id == 14]
    assert (sydney.day.min(), sydney.day.max()) == (date(2024, 1, 11), date(2024, 11, 3))
    new_york = frame[frame.equipment_id == 11]
    assert (new_york.day.min(), new_york.day.max()) == (date(2024, 1, 10), date(2024, 11, 3))


def test_overlapping_and_nested_bookings_count_once(marts: dict[str, pd.DataFrame]) -> None:
    overlap = daily(marts, 30).loc[date(2024, 5, 1)]
    assert (overlap.booked_hours, overlap.booked_hours_sum, overlap.booking_count) == (5, 6, 2)
    nested = daily(marts, 31).loc[date(2024, 5, 2)]
    assert (nested.booked_hours, nested.booked_hours_sum, nested.booking_count) == (8, 9, 2)
    assert nested.utilisation == pytest.approx(8 / 24)
    issues = marts["booking_quality_issues"]
    assert set(issues[issues.issue == "overlap"].booking_id) == {8, 9, 10, 11}


def test_three_day_booking_touches_every_local_day(marts: dict[str, pd.DataFrame]) -> None:
    assert hours_by_day(marts, 32, "booked_hours") == {
        date(2024, 6, 10): 11.0,
        date(2024, 6, 11): 24.0,
        date(2024, 6, 12): 24.0,
        date(2024, 6, 13): 13.0,
    }
    assert list(daily(marts, 32).booking_count) == [1, 1, 1, 1]
    monthly = marts["equipment_utilisation_monthly"].set_index(["equipment_id", "month"])
    june = monthly.loc[(32, date(2024, 6, 1))]
    assert (june.booked_hours, june.booking_count, june.available_hours) == (72.0, 1, 720.0)
    issues = marts["booking_quality_issues"]
    assert list(issues[issues.booking_id == 12].issue) == ["longer_than_limit"]


def test_maintenance_is_downtime_not_use(marts: dict[str, pd.DataFrame]) -> None:
    day = daily(marts, 33).loc[date(2024, 7, 1)]
    assert (day.booked_hours, day.maintenance_hours, day.booking_count) == (3.0, 5.0, 1)


def test_cancelled_excluded_and_requested_tentative(marts: dict[str, pd.DataFrame]) -> None:
    day = daily(marts, 34).loc[date(2024, 7, 2)]
    assert (day.booked_hours, day.tentative_hours, day.booking_count) == (0.0, 2.0, 0)
    cost = marts["booking_cost_monthly"]
    statuses = cost[(cost.month == date(2024, 7, 1)) & (cost.provider_lab_id == 1)]
    assert set(zip(statuses.status, statuses.status_category, strict=True)) == {
        ("completed", "counted"),
        ("booked", "counted"),
        ("cancelled", "excluded"),
        ("requested", "tentative"),
    }


def test_costs_split_by_currency_and_provider_local_month(marts: dict[str, pd.DataFrame]) -> None:
    cost = marts["booking_cost_monthly"]
    june = cost[(cost.month == date(2024, 6, 1)) & (cost.provider_lab_id == 1)]
    totals = june.groupby("currency").total_cost.sum().to_dict()
    # Booking 17 (5.01 GBP) starts 23:30Z 31 May = June in London; 12 is the 3-day booking.
    assert totals == {"GBP": Decimal("15.01"), "USD": Decimal("99.99")}
    assert pa.types.is_decimal(pa.Table.from_pandas(cost).schema.field("total_cost").type)
    may = cost[(cost.month == date(2024, 5, 1)) & (cost.provider_lab_id == 1)]
    assert may.booking_count.sum() == 4  # bookings 8-11, not 17


def test_parent_is_union_of_family(marts: dict[str, pd.DataFrame]) -> None:
    parents = marts["parent_equipment_utilisation_daily"]
    assert set(parents.equipment_id) == {50}
    day = parents.set_index("day").loc[date(2024, 8, 1)]
    assert (day.booked_hours, day.booked_hours_sum, day.booking_count) == (4.0, 5.0, 3)
    assert day.descendant_count == 2
    assert hours_by_day(marts, 51, "booked_hours") == {date(2024, 8, 1): 2.0}


def test_negative_equipment_ids_keep_their_own_unions(tmp_path: Path) -> None:
    # The union streams are keyed id * 2 + kind bit and decoded with >> 1 and & 1 (see
    # mart__islands): a negative id's maintenance key is odd and negative (-5 * 2 + 1 = -9),
    # which a truncating division would give back to instrument -4.
    maintenance: dict[str, Any] = {
        "booking_type": "Maintenance",
        "status": "Booked",
        "cost": "0.00",
    }
    frames = build_frames(
        tmp_path,
        [
            booking(1, -5, "2024-05-01 09:00", "2024-05-01 12:00"),
            booking(2, -5, "2024-05-01 11:00", "2024-05-01 14:00"),
            booking(3, -5, "2024-05-01 15:00", "2024-05-01 17:00", **maintenance),
            booking(4, -5, "2024-05-01 16:00", "2024-05-01 18:00", **maintenance),
            booking(5, -3, "2024-05-01 13:00", "2024-05-01 16:00"),
            booking(6, -4, "2024-05-01 19:00", "2024-05-01 20:00", **maintenance),
        ],
        [
            {"id": -4, "lab_id": 1},
            {"id": -5, "lab_id": 1, "parent_id": -4},
            {"id": -3, "lab_id": 1, "parent_id": -4},
        ],
        ACCOUNT_ROWS,
    )
    columns = ["booked_hours", "booked_hours_sum", "maintenance_hours"]
    days = frames["equipment_utilisation_daily"].set_index(["equipment_id", "day"])
    may_1 = date(2024, 5, 1)
    assert days.loc[(-5, may_1), columns].tolist() == [5.0, 6.0, 3.0]
    assert days.loc[(-4, may_1), columns].tolist() == [0.0, 0.0, 1.0]
    assert days.loc[(-3, may_1), columns].tolist() == [3.0, 3.0, 0.0]
    # Parent -4: the union of its family's use (09:00-16:00) and maintenance (15-18, 19-20).
    parent = frames["parent_equipment_utilisation_daily"].set_index(["equipment_id", "day"])
    assert parent.loc[(-4, may_1), columns].tolist() == [7.0, 9.0, 4.0]
    assert set(parent.index.get_level_values(0)) == {-4}


def test_monthly_available_hours_are_whole_dst_months(marts: dict[str, pd.DataFrame]) -> None:
    monthly = marts["equipment_utilisation_monthly"].set_index(["equipment_id", "month"])
    expected = {
        (12, date(2024, 1, 1)): 744.0,  # first month of data, still the whole month
        (12, date(2024, 3, 1)): 743.0,
        (12, date(2024, 10, 1)): 745.0,
        (13, date(2024, 3, 1)): 743.0,
        (13, date(2024, 11, 1)): 721.0,  # last month of data, whole month
        (14, date(2024, 4, 1)): 721.0,
        (14, date(2024, 10, 1)): 743.0,  # Sydney springs forward in October
    }
    for key, hours in expected.items():
        assert monthly.loc[key, "available_hours"] == hours, key


def test_rollups_and_independent_lab(marts: dict[str, pd.DataFrame]) -> None:
    labs = marts["lab_utilisation_monthly"].set_index(["lab_id", "month"])
    assert labs.loc[(4, date(2024, 5, 1)), "booked_hours"] == 0.0
    assert labs.loc[(4, date(2024, 5, 1)), "available_hours"] == 744.0
    orgs = marts["organisation_utilisation_monthly"].set_index(["organisation_id", "month"])
    sydney = orgs.loc[(3, date(2024, 4, 1))]
    assert bool(sydney.is_independent_lab) and sydney.booked_hours == 6.0
    uni = orgs.loc[(100, date(2024, 5, 1))]
    assert uni.lab_count == 3 and not uni.is_independent_lab
    departments = marts["department_utilisation_monthly"]
    assert set(departments.department_id) == {200, 201}


def test_hour_of_week_cells_follow_local_wall_clock(marts: dict[str, pd.DataFrame]) -> None:
    frame = marts["equipment_hour_of_week"]
    assert len(frame) == 168 * frame.equipment_id.nunique()
    ny = frame[frame.equipment_id == 13].set_index(["weekday", "hour"])
    # Booking 5 is 23:00 EDT Sat 2 Nov to 03:00 EST Sun 3 Nov; hour 1 happened twice.
    assert ny.loc[(6, 23), "booked_hours"] == 2.0  # 23:00 on 9 Mar and 2 Nov
    assert ny.loc[(7, 1), "booked_hours"] == 2.0 + 1.0  # + booking 4's 01:00 on 10 Mar
    sundays = 43  # 14 Jan .. 3 Nov 2024 in New York
    assert ny.loc[(7, 1), "available_hours"] == sundays + 1
    assert ny.loc[(7, 2), "available_hours"] == sundays - 1
    assert frame.occupancy.max() <= 1.0


def test_hour_of_week_on_a_day_whose_local_date_goes_back(tmp_path: Path) -> None:
    # Antarctica/Casey, 15:00 UTC on 4 March 2010: 02:00 (+11) on Friday 5 March became 23:00
    # (+08) on Thursday 4 March, the one backward date change of 1990-2030 in tzdata. The 27-hour
    # local day 5 March starts at 13:00 UTC; its third hour is 23:00 on Thursday again, before its
    # midnight (an end point at a negative hour). A booking over the whole day fills every Friday
    # cell (00:00 and 01:00 twice); that repeated Thursday hour is in neither booked nor available.
    # Before 06f689b the start point's hour fell outside the 0-23 grid and the running sum lost
    # it: Friday showed 1, 1, then 0 booked hours.
    frames = build_frames(
        tmp_path,
        [booking(1, 7, "2010-03-04 13:00", "2010-03-05 16:00", lab=1, currency="AUD")],
        [{"id": 7, "lab_id": 1}],
        [{"id": 1, "name": "Casey", "account_type": "lab", "timezone": "Antarctica/Casey"}],
    )
    cells = frames["equipment_hour_of_week"].set_index(["weekday", "hour"]).sort_index()
    friday = cells.loc[5]
    assert friday.booked_hours.tolist() == [2.0, 2.0] + [1.0] * 22
    assert friday.available_hours.tolist() == friday.booked_hours.tolist()
    assert cells.drop(index=5, level="weekday").booked_hours.sum() == 0.0
    day = frames["equipment_utilisation_daily"].set_index("day").loc[date(2010, 3, 5)]
    assert (day.booked_hours, day.available_hours) == (27.0, 27.0)


def test_timestamps_and_types(tmp_path: Path) -> None:
    raw = write_raw(tmp_path, BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # results must not depend on the session zone
    register_parquet_views(con, raw)
    con.register("booking_facts", build_mart(con, "booking_facts", MartSettings()))
    intervals = build_mart(con, "equipment_interval_days", MartSettings())
    assert intervals.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    con.register("equipment_interval_days", intervals)
    table = build_mart(con, "equipment_utilisation_daily", MartSettings())
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("booking_count").type == pa.int64()
    frame = table.to_pandas().set_index(["equipment_id", "day"])
    assert frame.loc[(11, date(2024, 1, 10)), "booked_hours"] == 2.0
    assert set(table.column_names) >= set(
        MART_SPECS["equipment_utilisation_daily"].column_descriptions
    )


def test_operating_hours(tmp_path: Path) -> None:
    rows = [
        # Monday 6 May 2024, 08:00-11:00 BST: two of those hours are staffed.
        booking(1, 10, "2024-05-06 07:00", "2024-05-06 10:00"),
        booking(2, 11, "2024-05-11 14:00", "2024-05-11 16:00", lab=2, currency="USD"),
    ]
    settings = MartSettings(
        default_operating_hours=OperatingHours.weekly(time(9), time(17)),
        operating_hours_by_lab={2: OperatingHours.weekly(time(8), time(0), (1, 2, 3, 4, 5, 6))},
    )
    frames = build_frames(tmp_path, rows, EQUIPMENT_ROWS, ACCOUNT_ROWS, settings)
    days = frames["equipment_utilisation_daily"].set_index(["equipment_id", "day"])
    monday = days.loc[(10, date(2024, 5, 6))]
    assert (monday.operating_hours_available, monday.operating_hours_booked) == (8.0, 2.0)
    assert monday.operating_utilisation == 0.25
    saturday_ny = days.loc[(11, date(2024, 5, 11))]  # 10:00-12:00 EDT, open 08:00-24:00
    assert (saturday_ny.operating_hours_available, saturday_ny.operating_hours_booked) == (16, 2)
    month = frames["equipment_utilisation_monthly"].set_index(["equipment_id", "month"])
    assert month.loc[(10, date(2024, 5, 1)), "operating_hours_available"] == 23 * 8
    plain = build_frames(tmp_path / "plain", rows, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    assert plain["equipment_utilisation_daily"].operating_utilisation.isna().all()


def test_default_timezone_fallback_is_reported(tmp_path: Path) -> None:
    accounts = [{"id": 1, "account_type": "lab", "timezone": "Eastern Time (US & Canada)"}]
    rows = [booking(1, 10, "2024-01-11 03:00", "2024-01-11 07:00")]
    frames = build_frames(
        tmp_path,
        rows,
        [{"id": 10, "lab_id": 1}],
        accounts,
        MartSettings(default_timezone="America/New_York"),
    )
    assert hours_by_day(frames, 10, "booked_hours") == {
        date(2024, 1, 10): 2.0,
        date(2024, 1, 11): 2.0,
    }
    issues = frames["booking_quality_issues"]
    assert list(issues.issue) == ["unknown_provider_timezone"]


def test_quality_issues(tmp_path: Path) -> None:
    rows = [
        booking(1, 10, "2024-01-11 10:00", "2024-01-11 10:00"),
        booking(2, 10, "2024-01-11 12:00", "2024-01-11 11:00"),
        booking(3, 10, "2024-01-12 12:00", "2024-01-12 13:00", duration_minutes=90),
        booking(4, 10, "2024-01-13 12:00", "2024-01-13 13:00", status="Pending"),
        booking(5, 10, "2024-01-14 12:00", "2024-01-14 13:00", cost=None),
    ]
    frames = build_frames(tmp_path, rows, [{"id": 10, "lab_id": 1}], ACCOUNT_ROWS)
    issues = frames["booking_quality_issues"]
    assert list(zip(issues.booking_id, issues.issue, strict=True)) == [
        (1, "non_positive_duration"),
        (2, "non_positive_duration"),
        (3, "duration_mismatch"),
        (4, "unknown_status"),
        (5, "null_cost_counted"),
    ]
    day = frames["equipment_utilisation_daily"].set_index("day")
    assert day.loc[date(2024, 1, 13), "booked_hours"] == 0.0  # unknown status is not counted


# ---- checks ---------------------------------------------------------------------------------


def _checks(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, tuple[bool, int]]:
    return {
        c.check_name: (c.passed, c.failing_rows)
        for c in mart_check_failures(con, name, MartSettings())
    }


@pytest.fixture()
def built_con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    built = build_all(raw, tmp_path / "marts", MartSettings())
    con = duckdb.connect()
    register_parquet_views(con, {**raw, **built})
    return con


def test_every_check_passes_on_golden_data(built_con: duckdb.DuckDBPyConnection) -> None:
    for name in MART_SPECS:
        results = mart_check_failures(built_con, name, MartSettings())
        assert results, name
        # The golden data overlaps on purpose (4 of 16 counted use bookings): only that warns.
        failed = [(r.check_name, r.severity) for r in results if not r.passed]
        expected = [("overlap_share_within_threshold", "warning")]
        assert failed == (expected if name == "booking_quality_issues" else []), name


def _replace_view(con: duckdb.DuckDBPyConnection, name: str, select: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE bad AS {select}")
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM bad")


def test_utilisation_range_check_fails(built_con: duckdb.DuckDBPyConnection) -> None:
    _replace_view(
        built_con,
        "equipment_utilisation_daily",
        "SELECT * REPLACE (CASE WHEN booked_hours > 0 THEN 1.5 ELSE utilisation END AS "
        "utilisation) FROM equipment_utilisation_daily",
    )
    checks = _checks(built_con, "equipment_utilisation_daily")
    passed, failing = checks["utilisation_between_0_and_1"]
    assert not passed and failing > 0


def test_hours_reconciliation_check_fails(built_con: duckdb.DuckDBPyConnection) -> None:
    _replace_view(
        built_con,
        "equipment_utilisation_daily",
        "SELECT * REPLACE (booked_hours_sum + CASE WHEN equipment_id = 30 THEN 0.01 ELSE 0 END "
        "AS booked_hours_sum) FROM equipment_utilisation_daily",
    )
    assert _checks(built_con, "equipment_utilisation_daily")[
        "booked_hours_sum_reconciles_with_raw"
    ] == (False, 1)


def test_cost_reconciliation_and_grain_checks_fail(built_con: duckdb.DuckDBPyConnection) -> None:
    _replace_view(
        built_con,
        "booking_cost_monthly",
        "SELECT * FROM booking_cost_monthly UNION ALL "
        "(SELECT * FROM booking_cost_monthly WHERE currency = 'USD' LIMIT 1)",
    )
    results = _checks(built_con, "booking_cost_monthly")
    assert results["cost_reconciles_with_raw"] == (False, 1)
    assert results["grain_is_unique"] == (False, 1)


def test_grain_check_counts_duplicated_keys_exactly(built_con: duckdb.DuckDBPyConnection) -> None:
    # Two (equipment_id, day) keys repeated (one of them three times) plus two rows with a NULL
    # day: the check counts duplicated keys, not extra rows, and NULL keys group together.
    _replace_view(
        built_con,
        "equipment_utilisation_daily",
        "SELECT * FROM equipment_utilisation_daily UNION ALL "
        "(SELECT * FROM equipment_utilisation_daily ORDER BY equipment_id, day LIMIT 2) "
        "UNION ALL (SELECT * FROM equipment_utilisation_daily ORDER BY equipment_id, day LIMIT 1) "
        "UNION ALL (SELECT * REPLACE (CAST(NULL AS DATE) AS day) "
        "FROM equipment_utilisation_daily ORDER BY equipment_id, day LIMIT 2)",
    )
    assert _checks(built_con, "equipment_utilisation_daily")["grain_is_unique"] == (False, 3)


def test_grain_check_passes_on_the_built_mart(built_con: duckdb.DuckDBPyConnection) -> None:
    checks = _checks(built_con, "equipment_utilisation_daily")
    assert checks["grain_is_unique"] == (True, 0)


def test_currency_and_unknown_status_checks_fail(tmp_path: Path) -> None:
    rows = [
        booking(1, 10, "2024-01-11 10:00", "2024-01-11 11:00", currency=None),
        booking(2, 10, "2024-01-11 12:00", "2024-01-11 13:00", status="Pending"),
    ]
    raw = write_raw(tmp_path / "raw", rows, [{"id": 10, "lab_id": 1}], ACCOUNT_ROWS)
    built = build_all(raw, tmp_path / "marts", MartSettings())
    con = duckdb.connect()
    register_parquet_views(con, {**raw, **built})
    results = {
        c.check_name: c for c in mart_check_failures(con, "booking_cost_monthly", MartSettings())
    }
    assert not results["single_known_currency_per_row"].passed
    unknown = results["no_unknown_statuses"]
    assert (unknown.passed, unknown.failing_rows, unknown.severity) == (False, 1, "warning")
    assert results["cost_reconciles_with_raw"].passed


def test_specs_are_consistent() -> None:
    for name, spec in MART_SPECS.items():
        assert spec.name == name
        assert set(spec.depends_on_marts) <= set(MART_SPECS)
        assert set(spec.grain_columns) <= set(spec.column_descriptions), name
        assert spec.grain.startswith("One row per")
    assert "project" in MART_SPECS["booking_cost_monthly"].description


def test_an_equipment_id_too_large_for_the_day_key_is_named_with_the_fix(
    tmp_path: Path,
) -> None:
    # The daily mart's (instrument, day) key is id * 2^22 + day number: 2^61 cannot fit, and
    # before this check the build died on DuckDB's bare "Overflow in multiplication of INT64".
    huge = 2**61
    with pytest.raises(duckdb.Error) as failure:
        build_frames(
            tmp_path,
            [booking(1, huge, "2024-05-01 09:00", "2024-05-01 12:00")],
            [{"id": huge, "lab_id": 1}],
            ACCOUNT_ROWS,
        )
    message = str(failure.value)
    assert f"equipment id {huge}" in message
    assert "SELECT * FROM equipment WHERE id =" in message
    assert "Overflow" not in message
