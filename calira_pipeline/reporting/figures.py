"""The headline numbers, defined once. The CLI summary, the charts, the HTML report and the
notebook all read them from here, so they cannot disagree.

- **Utilisation** = booked hours (the union of counted use bookings: overlaps count once) /
  available hours. Overbooking (booked_hours_sum - booked_hours) is reported beside it, never in it.
- **Recent window** = the last N *complete* local months as of the data's own clock (the newest
  booking request, never later than now): a month counts once it has ended in every lab's zone.
  The current month is partial and later months are future; neither is in a window.
- **Cost** = counted bookings only (booked, confirmed, approved, ordered, completed); requested
  bookings are shown apart; cancelled and declined never count. Per currency, never summed across.

Every function takes a DuckDB connection holding the marts and raw tables under their own names
(`calira_pipeline.connect()`, or a warehouse scratch connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

RECENT_MONTHS = 3
COST_MONTHS = 12
TOP_INSTRUMENTS = 25
MonthState = Literal["complete", "partial", "future"]


def _add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Window:
    """Local months [first_month, end_month): complete everywhere as of `as_of`."""

    first_month: date
    end_month: date
    as_of: datetime
    months: int

    @property
    def last_month(self) -> date:
        return _add_months(self.end_month, -1)

    def state(self, month: date) -> MonthState:
        if month < self.end_month:
            return "complete"
        return "partial" if month == self.end_month else "future"

    def label(self) -> str:
        if self.months <= 0:
            return f"no complete local month of data yet (as of {self.as_of:%Y-%m-%d %H:%M} UTC)"
        first, last = self.first_month.strftime("%b %Y"), self.last_month.strftime("%b %Y")
        return (
            f"{first} – {last} ({self.months} complete local months; data as of "
            f"{self.as_of:%Y-%m-%d %H:%M} UTC)"
        )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def data_as_of(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> datetime:
    """The data's clock: the newest booking request, never later than `now`."""
    now = now or datetime.now(UTC)
    newest = _scalar(con, "select max(requested_at) from bookings")
    if not isinstance(newest, datetime):
        return now
    newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    return min(newest.astimezone(UTC), now)


def lab_zones(con: duckdb.DuckDBPyConnection) -> list[ZoneInfo]:
    zones = []
    for (name,) in con.execute(
        "select distinct timezone from accounts where account_type = 'lab' and timezone <> ''"
    ).fetchall():
        try:
            zones.append(ZoneInfo(str(name)))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # reported by booking_quality_issues; the default zone is used
    return zones or [ZoneInfo("UTC")]


def recent_window(
    con: duckdb.DuckDBPyConnection, months: int = RECENT_MONTHS, now: datetime | None = None
) -> Window:
    as_of = data_as_of(con, now)
    zones = lab_zones(con)
    # The current month starts earliest in the westernmost zone: before that, it is not over.
    current = min(as_of.astimezone(zone).date().replace(day=1) for zone in zones)
    first = _add_months(current, -months)
    # Nor is a month the data starts part-way through complete: its hours would look idle.
    oldest = _scalar(con, "select min(start_time) from bookings")
    if isinstance(oldest, datetime):
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        starts = max(oldest.astimezone(zone).replace(tzinfo=None) for zone in zones)
        whole = starts.date().replace(day=1)
        first = max(first, whole if starts == datetime(whole.year, whole.month, 1) else
                    _add_months(whole, 1))
    first = min(first, current)
    return Window(first, current, as_of, (current.year - first.year) * 12 + current.month
                  - first.month)


@dataclass(frozen=True)
class InstrumentUse:
    equipment_id: int
    instrument: str
    lab: str
    booked_hours: float
    available_hours: float
    utilisation: float
    overbooked_hours: float
    maintenance_hours: float
    staffed_utilisation: float | None


def instrument_utilisation(
    con: duckdb.DuckDBPyConnection, window: Window, limit: int | None = None
) -> list[InstrumentUse]:
    """Instruments over the window, busiest first (utilisation = sum booked / sum available)."""
    rows = con.execute(
        """
        select u.equipment_id,
               coalesce(any_value(e.name), u.equipment_id::varchar),
               coalesce(any_value(a.name), 'no lab'),
               sum(u.booked_hours), sum(u.available_hours),
               coalesce(sum(u.booked_hours) / nullif(sum(u.available_hours), 0), 0),
               sum(u.booked_hours_sum) - sum(u.booked_hours),
               sum(u.maintenance_hours),
               sum(u.operating_hours_booked) / nullif(sum(u.operating_hours_available), 0)
        from equipment_utilisation_monthly u
        left join equipment e on e.id = u.equipment_id
        left join accounts a on a.id = u.lab_id
        where u.month >= $first and u.month < $end
        group by u.equipment_id
        order by 6 desc, 2, 1
        limit $limit
        """,
        {"first": window.first_month, "end": window.end_month, "limit": limit or 1_000_000},
    ).fetchall()
    return [
        InstrumentUse(
            int(r[0]), str(r[1]), str(r[2]), float(r[3]), float(r[4]), float(r[5]),
            float(r[6]), float(r[7]), None if r[8] is None else float(r[8]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    counted_cost: Decimal
    counted_bookings: int
    requested_cost: Decimal
    excluded_cost: Decimal


def currency_totals(con: duckdb.DuckDBPyConnection, window: Window) -> list[CurrencyTotal]:
    """Per currency over the window: counted cost (what is owed), requested and excluded apart."""
    rows = con.execute(
        """
        select currency,
               coalesce(sum(total_cost) filter (where status_category = 'counted'), 0),
               coalesce(sum(booking_count) filter (where status_category = 'counted'), 0),
               coalesce(sum(total_cost) filter (where status_category = 'tentative'), 0),
               coalesce(sum(total_cost) filter (where status_category = 'excluded'), 0)
        from booking_cost_monthly
        where currency is not null and month >= $first and month < $end
        group by currency order by currency
        """,
        {"first": window.first_month, "end": window.end_month},
    ).fetchall()
    return [CurrencyTotal(str(r[0]), r[1], int(r[2]), r[3], r[4]) for r in rows]


@dataclass(frozen=True)
class MonthlyCost:
    month: date
    currency: str
    requester_lab: str
    counted_cost: Decimal


def monthly_cost_by_requester(
    con: duckdb.DuckDBPyConnection, first_month: date
) -> list[MonthlyCost]:
    """Counted cost per month, currency and requester lab from `first_month` on (later months
    included: the caller marks them partial or future)."""
    rows = con.execute(
        """
        select c.month, c.currency, coalesce(a.name, c.requester_lab_id::varchar, 'unknown'),
               sum(c.total_cost)
        from booking_cost_monthly c left join accounts a on a.id = c.requester_lab_id
        where c.status_category = 'counted' and c.currency is not null and c.month >= $first
          and c.total_cost is not null
        group by all order by 1, 2, 3
        """,
        {"first": first_month},
    ).fetchall()
    return [MonthlyCost(r[0], str(r[1]), str(r[2]), r[3]) for r in rows]


@dataclass(frozen=True)
class LabHours:
    lab_id: int
    lab: str
    occupancy: list[list[float]]  # [weekday 0 = Monday][local hour]: mean over instruments

    @property
    def peak(self) -> tuple[int, int, float]:
        value, weekday, hour = max(
            (v, d, h) for d, row in enumerate(self.occupancy) for h, v in enumerate(row)
        )
        return weekday, hour, value


def hour_of_week_by_lab(con: duckdb.DuckDBPyConnection, labs: int) -> list[LabHours]:
    """Mean instrument occupancy per local weekday and hour for the `labs` busiest labs."""
    # One pass over the table (840k rows at 1M bookings): a query per lab scanned it each time.
    rows = con.execute(
        """
        with cells as (
            select lab_id, weekday, hour, avg(coalesce(occupancy, 0)) as occupancy,
                   sum(booked_hours) as booked
            from equipment_hour_of_week where lab_id is not null group by all
        ), busiest as (
            select lab_id, sum(booked) as booked from cells
            group by lab_id order by booked desc, lab_id limit $labs
        )
        select b.lab_id, coalesce(a.name, b.lab_id::varchar), c.weekday, c.hour, c.occupancy
        from busiest b join cells c on c.lab_id = b.lab_id
        left join (select id, any_value(name) as name from accounts group by id) a
            on a.id = b.lab_id
        order by b.booked desc nulls last, b.lab_id
        """,
        {"labs": labs},
    ).fetchall()
    result: dict[int, LabHours] = {}
    for lab_id, name, weekday, hour, occupancy in rows:
        lab = result.setdefault(int(lab_id), LabHours(int(lab_id), str(name),
                                                      [[0.0] * 24 for _ in range(7)]))
        lab.occupancy[int(weekday) - 1][int(hour)] = float(occupancy)
    return list(result.values())


def overlap_share(con: duckdb.DuckDBPyConnection) -> float:
    """Counted use bookings that overlap another on the same instrument, as a share of them."""
    value = _scalar(
        con,
        "select (select count(distinct booking_id) from booking_quality_issues "
        "where issue = 'overlap')::double / nullif((select count(*) from booking_facts "
        "where usage_role = 'use'), 0)",
    )
    return float(value) if isinstance(value, float) else 0.0


def all_bookings_label(con: duckdb.DuckDBPyConnection) -> str:
    """The period of a figure over every booking, future ones included (the hour-of-week
    occupancy, the double-booked share): first start to last end, in UTC days."""
    span = con.execute("select min(start_time)::date, max(end_time)::date from bookings").fetchone()
    return f"{span[0]} – {span[1]} (all bookings)" if span and span[0] else "no data"
