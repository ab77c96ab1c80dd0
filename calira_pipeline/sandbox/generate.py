"""Vectorised booking generator: realistic timing, deliberate edge cases, integer columns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from calira_pipeline.sandbox import names
from calira_pipeline.sandbox.booking_calendar import book_calendar, cancel_clashes, settle_utc
from calira_pipeline.sandbox.config import Scale
from calira_pipeline.sandbox.world import World
from calira_pipeline.sandbox.zones import I64, ZoneTable

DAY, HOUR = 86_400, 3_600
BOOKING_ID0 = 100_001
WINDOW_DAYS, FUTURE_DAYS = 730, 60
STATUSES = ("Requested", "Booked", "Completed", "Confirmed", "Approved", "Ordered", "Declined",
            "Cancelled", "Canceled")
KINDS = ("internal", "external", "maintenance")
COLUMNS = ("id", "equipment", "start", "end", "requested_ms", "kind", "status", "case",
           "cost_cents", "cost_fmt", "duration_delta", "requester", "creator", "group_null",
           "add_on", "note", "local_form")
Columns = dict[str, I64]

_WEEKDAY_P = np.array([0.24, 0.24, 0.22, 0.2, 0.09, 0.005, 0.005])
_HOUR_W = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 4, 14, 16, 12, 8, 6, 9, 9, 7, 5, 3, 2,
                    1.5, 1, 0.7, 0.5, 0.3])
_PAST_STATUS_P = np.array([0.02, 0.08, 0.58, 0.1, 0.04, 0.01, 0.03, 0.1, 0.04])
_FUTURE_STATUS_P = np.array([0.3, 0.3, 0.0, 0.12, 0.12, 0.04, 0.02, 0.07, 0.03])
# Special rows cycle through these so every status (and mixed case) is present at any scale.
_SPECIAL_STATUS = [(s, 0) for s in range(len(STATUSES))] + [(2, 1), (3, 2)]


@dataclass(frozen=True)
class Window:
    reference_ts: int
    start_ts: int
    end_ts: int

    @classmethod
    def around(cls, reference_time: datetime) -> Window:
        ref = int(reference_time.timestamp())
        return cls(ref, ref - WINDOW_DAYS * DAY, ref + FUTURE_DAYS * DAY)


def zone_tables(world: World, window: Window) -> dict[str, ZoneTable]:
    ordered = list(dict.fromkeys(lab.zone for lab in world.labs))
    return {z: ZoneTable.build(z, window.start_ts - 2 * DAY, window.end_ts + 20 * DAY)
            for z in ordered}


def _timing(rng: np.random.Generator, n: int, kind: I64, window: Window) -> tuple[I64, I64]:
    """Local wall-clock starts (seconds, as if UTC) and durations in minutes."""
    monday0 = (window.start_ts // DAY + 4) // 7 * 7 - 3  # epoch day 0 was a Thursday
    n_weeks = (window.end_ts // DAY - monday0) // 7
    day = monday0 + rng.integers(0, n_weeks, n) * 7 + rng.choice(7, n, p=_WEEKDAY_P)
    hour = rng.choice(24, n, p=_HOUR_W / _HOUR_W.sum())
    minute = rng.choice(np.array([0, 30, 15, 45]), n, p=[0.52, 0.32, 0.08, 0.08])
    local = (day * DAY + hour * HOUR + minute * 60).astype(np.int64)
    # Lognormal with median 2 h and sigma 1.12 gives p90 ~ 8-9 h and p99 ~ 26 h.
    use = np.clip(np.round(rng.lognormal(np.log(120), 1.12, n) / 15) * 15, 15, 72 * 60)
    upkeep = np.clip(np.round(rng.lognormal(np.log(180), 0.8, n) / 15) * 15, 30, 24 * 60)
    blocks = rng.integers(2, 16, n) * 1440
    long_block = rng.random(n) < 0.04
    maint = np.where(long_block, blocks, upkeep)
    duration = np.where(kind == 2, maint, use).astype(np.int64)
    return local, duration


def _lead_ms(rng: np.random.Generator, n: int) -> I64:
    lead = rng.lognormal(np.log(8 * DAY), 1.1, n)
    u = rng.random(n)
    lead = np.where(u < 0.08, rng.uniform(0, 6 * HOUR, n), lead)
    lead = np.where(u > 0.95, -rng.uniform(HOUR, 3 * DAY, n), lead)  # retro-logged
    return (lead * 1000).astype(np.int64)


def _specials(world: World, tables: dict[str, ZoneTable], window: Window) -> list[dict[str, int]]:
    """Bookings that must exist: over every DST switch, past midnight, nested, long blocks."""
    first_equipment: dict[str, int] = {}
    for idx, lab_idx in enumerate(world.equipment_lab):
        first_equipment.setdefault(world.labs[lab_idx].zone, idx)
    rows: list[dict[str, int]] = []
    for zname, table in tables.items():
        if zname not in first_equipment:
            continue
        eq = first_equipment[zname]
        for t in table.transitions:
            if window.start_ts <= t <= window.end_ts:
                rows.append({"equipment": eq, "start": t - 3 * HOUR, "end": t + 5 * HOUR})
        # 20:00 -> 08:00 local, crossing local midnight, a week before the reference time.
        eve = int(table.local_to_utc(np.array([window.reference_ts // DAY * DAY - 7 * DAY
                                               + 20 * HOUR]))[0])
        rows.append({"equipment": eq, "start": eve, "end": eve + 12 * HOUR})
    if world.equipment:
        base = window.reference_ts // DAY * DAY - 30 * DAY + 9 * HOUR
        rows += [
            {"equipment": 0, "start": base, "end": base + 6 * HOUR},  # outer
            {"equipment": 0, "start": base + HOUR, "end": base + 2 * HOUR},  # nested in outer
            {"equipment": 0, "start": base + 5 * HOUR, "end": base + 8 * HOUR},  # overlaps end
            {"equipment": 0, "start": base + 2 * DAY, "end": base + 5 * DAY},  # multi-day
            {"equipment": 0, "start": base - 20 * DAY, "end": base - 10 * DAY, "kind": 2},
            {"equipment": 0, "start": base + 9 * DAY, "end": base + 9 * DAY + 2 * HOUR,
             "kind": 1, "lead_ms": -DAY * 1000},
        ]
    for i, row in enumerate(rows):
        row["status"], row["case"] = _SPECIAL_STATUS[i % len(_SPECIAL_STATUS)]
        row["local_form"] = i % 2
        row.setdefault("kind", 0)
        row.setdefault("lead_ms", (3 + i % 10) * DAY * 1000)
    return rows


def _people(rng: np.random.Generator, world: World, scale: Scale, cols: Columns) -> None:
    """Requester and creator user indexes; users are stored contiguously per lab."""
    n = len(cols["kind"])
    upl = scale.users_per_lab
    lab = np.asarray(world.equipment_lab, dtype=np.int64)[cols["equipment"]]
    active = sorted({i for i in world.equipment_lab}, key=lambda i: (world.labs[i].peer_key, i))
    flat = np.asarray(active, dtype=np.int64)
    peer = np.array([world.labs[i].peer_key for i in active])
    start = np.zeros(len(world.labs), dtype=np.int64)
    count = np.ones(len(world.labs), dtype=np.int64)
    for pos, lab_idx in enumerate(active):
        start[lab_idx] = np.searchsorted(peer, peer[pos], side="left")
        count[lab_idx] = np.searchsorted(peer, peer[pos], side="right") - start[lab_idx]
    r = rng.random(n)
    colleague = flat[start[lab] + (r * count[lab]).astype(np.int64)]
    outsiders = len(flat) - count[lab]
    other = flat[(start[lab] + count[lab] + (r * np.maximum(outsiders, 1)).astype(np.int64))
                 % len(flat)]
    req_lab = np.where(rng.random(n) < 0.85, lab, colleague)
    req_lab = np.where(cols["kind"] == 1, np.where(outsiders > 0, other, lab), req_lab)
    req_lab = np.where(cols["kind"] == 2, lab, req_lab)
    member = (rng.random(n) * upl).astype(np.int64)
    cols["requester"] = np.where(cols["kind"] == 2, lab * upl + 1 % upl, req_lab * upl + member)
    cols["creator"] = np.where(rng.random(n) < 0.85, cols["requester"], lab * upl)


def _costs(rng: np.random.Generator, world: World, cols: Columns) -> None:
    n_eq = len(world.equipment)
    hourly = np.round(rng.uniform(20, 60, n_eq) * 2) * 50  # cents, on 0.50 steps
    hourly = np.where(rng.random(n_eq) < 0.05, 0, hourly)  # a few free instruments
    ext_mult = np.round(rng.uniform(1.5, 5, n_eq) * 4) / 4
    per_day = np.array([e["charging_type"] == "Per Day" for e in world.equipment], dtype=bool)
    eq = cols["equipment"]
    minutes = (cols["end"] - cols["start"]) // 60
    cost = np.where(per_day[eq], hourly[eq] * 6 * -(-minutes // 1440), hourly[eq] * minutes / 60)
    cost = np.where(cols["kind"] == 1, cost * ext_mult[eq], cost)
    cols["cost_cents"] = np.where(cols["kind"] == 2, 0, np.round(cost)).astype(np.int64)


def _popularity(rng: np.random.Generator, n_eq: int) -> npt.NDArray[np.float64]:
    """Booking weight per instrument, shaped like a core facility: a few workhorses, a broad
    middle, a long tail and a few idle instruments (domain-notes.md)."""
    tier = rng.random(n_eq)
    weights = np.where(
        tier < 0.08, rng.uniform(10.0, 14.0, n_eq),  # workhorses: 60-90 % of staffed hours
        np.where(tier < 0.55, rng.lognormal(np.log(2.2), 0.45, n_eq),  # the broad middle
                 np.where(tier < 0.93, rng.uniform(0.25, 1.2, n_eq),  # the long tail
                          0.03)))  # idle
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _utc_converter(tables: dict[str, ZoneTable]) -> Callable[[I64, I64], I64]:
    def to_utc(local_ts: I64, zones: I64) -> I64:
        utc = np.zeros(len(local_ts), dtype=np.int64)
        for z, table in enumerate(tables.values()):
            mask = zones == z
            utc[mask] = table.local_to_utc(local_ts[mask])
        return utc

    return to_utc


def _schedule(rng: np.random.Generator, cols: Columns, local: I64, duration: I64,
              fixed: npt.NDArray[np.bool_], zone_of: I64, to_utc: Callable[[I64, I64], I64],
              window: Window) -> None:
    """Statuses, and starts from the booking calendar (wall clock, then settled in UTC)."""
    n = len(local)
    # Statuses follow the wished time; cancelled and declined bookings free their slot, so they
    # stay where they were asked for and the calendar books around the others.
    wished_future = cols["start"] > window.reference_ts
    status = np.where(wished_future, rng.choice(9, n, p=_FUTURE_STATUS_P),
                      rng.choice(9, n, p=_PAST_STATUS_P))
    freed = np.isin(status, [STATUSES.index(s) for s in ("Declined", "Cancelled", "Canceled")])
    freed &= cols["kind"] != 2
    # The calendar is kept in each lab's wall-clock time (mornings, weekends), then converted.
    booked, overlapping = book_calendar(rng, cols["equipment"], local, duration * 60,
                                        cols["kind"], fixed | freed)
    moved = np.flatnonzero(~fixed & (booked != local))
    cols["start"][moved] = to_utc(booked[moved], zone_of[moved])
    cols["end"][moved] = cols["start"][moved] + duration[moved] * 60
    settle_utc(cols["equipment"], cols["start"], cols["end"], ~(fixed | freed | overlapping))
    future = cols["start"] > window.reference_ts
    # A booking the queue pushed past the reference time has not happened yet (and vice versa).
    crossed = (future != wished_future) & ~freed
    status = np.where(crossed, np.where(future, 1, 2), status)
    cols["status"] = np.where(cols["kind"] == 2, np.where(future, 1, 2), status)


def generate_bookings(world: World, scale: Scale, seed: int, window: Window,
                      tables: dict[str, ZoneTable]) -> Columns:
    n = scale.bookings if world.equipment else 0
    rng = np.random.default_rng([seed, 0xCA11A])
    weights = _popularity(rng, len(world.equipment))
    cols: Columns = {"equipment": rng.choice(len(world.equipment), n, p=weights)
                     if n else np.zeros(0, dtype=np.int64)}
    u = rng.random(n)
    cols["kind"] = np.where(u < 0.08, 2, np.where(u < 0.18, 1, 0)).astype(np.int64)
    local, duration = _timing(rng, n, cols["kind"], window)
    lab_zone = np.array([list(tables).index(lab.zone) for lab in world.labs], dtype=np.int64)
    zone_of = lab_zone[np.asarray(world.equipment_lab, dtype=np.int64)[cols["equipment"]]]
    to_utc = _utc_converter(tables)
    cols["start"] = to_utc(local, zone_of)
    cols["end"] = cols["start"] + duration * 60
    lead = _lead_ms(rng, n)
    specials = _specials(world, tables, window)[:n]
    for i, row in enumerate(specials):
        for key in ("equipment", "start", "end", "kind"):
            cols[key][i] = row[key]
        lead[i] = row["lead_ms"]
    fixed = np.arange(n) < len(specials)
    _schedule(rng, cols, local, duration, fixed, zone_of, to_utc, window)
    cols["case"] = rng.choice(3, n, p=[0.9, 0.07, 0.03])
    cols["local_form"] = (rng.random(n) < 0.6).astype(np.int64)
    for i, row in enumerate(specials):
        for key in ("status", "case", "local_form"):
            cols[key][i] = row[key]
    cancel_clashes(cols["equipment"], cols["start"], cols["end"], cols["status"], fixed,
                   STATUSES.index("Cancelled"))
    return _finish(rng, world, scale, window, cols, lead)


def _finish(rng: np.random.Generator, world: World, scale: Scale, window: Window,
            cols: Columns, lead: I64) -> Columns:
    """Request times, people, costs and API quirks; rows ordered and numbered by creation."""
    n = len(lead)
    jitter = rng.integers(0, 1000, n) + rng.integers(0, 60, n) * 1000
    requested = cols["start"] * 1000 - lead + jitter
    cap = window.reference_ts * 1000 - rng.integers(60_000, DAY * 1000, n)
    cols["requested_ms"] = np.minimum(requested, cap)
    _people(rng, world, scale, cols)
    _costs(rng, world, cols)
    cols["cost_fmt"] = rng.integers(0, 2, n)
    odd = rng.random(n) < 0.03  # the API's duration occasionally disagrees with end - start
    cols["duration_delta"] = np.where(odd, rng.choice(np.array([-60, -30, -15, 15, 30, 60]), n), 0)
    cols["group_null"] = (rng.random(n) < 0.04).astype(np.int64)
    cols["add_on"] = rng.integers(0, len(names.ADD_ONS), n)
    cols["note"] = np.where(rng.random(n) < 0.3, rng.integers(0, len(names.NOTES), n), -1)
    order = np.argsort(cols["requested_ms"], kind="stable")  # ids follow creation order
    out = {k: np.ascontiguousarray(v[order], dtype=np.int64) for k, v in cols.items()}
    gaps = 1 + (rng.random(n) < 0.1) * rng.integers(1, 5, n)
    out["id"] = BOOKING_ID0 + np.cumsum(gaps) - gaps[0] if n else np.zeros(0, dtype=np.int64)
    return {k: out[k].astype(np.int64) for k in COLUMNS}
