from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from calira_pipeline.sandbox import SCALES, Sandbox, SandboxConfig

COUNTED = {"booked", "confirmed", "approved", "ordered", "completed"}


@pytest.fixture(scope="module")
def demo() -> Sandbox:
    return Sandbox(SandboxConfig(seed=0, scale="demo"))


@pytest.fixture(scope="module")
def demo_bookings(demo: Sandbox) -> pd.DataFrame:
    rows = [
        {
            "equipment": b["equipment"]["id"],
            "start": datetime.fromisoformat(b["start_time"].replace("Z", "+00:00")),
            "end": datetime.fromisoformat(b["end_time"].replace("Z", "+00:00")),
            "status": b["status"].lower(),
            "type": b["booking_type"],
        }
        for b in demo.dataset.bookings
    ]
    frame = pd.DataFrame(rows)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    frame["counted"] = frame["status"].isin(COUNTED)
    return frame


def test_demo_scale_books_instruments_like_a_busy_core_facility(demo: Sandbox) -> None:
    data = demo.dataset
    assert len(data.bookings) == SCALES["demo"].bookings == 30_000
    assert len(data.equipment) == SCALES["demo"].instruments == 40
    booked = {b["equipment"]["id"] for b in data.bookings[:5_000]}
    # Hundreds of bookings per instrument a year (domain notes), not a handful.
    assert len(data.bookings) / len(booked) / 2 >= 300


def _overlapping(frame: pd.DataFrame) -> pd.Series:
    """Rows overlapping another row of the same instrument (sorted by start, as the marts do)."""
    frame = frame.sort_values(["equipment", "start", "end"])
    latest_end = frame.groupby("equipment")["end"].transform(lambda s: s.cummax().shift())
    next_start = frame.groupby("equipment")["start"].shift(-1)
    return (latest_end > frame["start"]) | (next_start < frame["end"])


def test_counted_use_bookings_rarely_overlap(demo_bookings: pd.DataFrame) -> None:
    use = demo_bookings[demo_bookings["counted"] & (demo_bookings["type"] != "maintenance")]
    share = _overlapping(use).mean()
    # Real facilities see 1-3 % double bookings; the generator aims at about 2 %.
    assert 0.005 < share <= 0.03


def test_maintenance_and_use_almost_never_collide(demo_bookings: pd.DataFrame) -> None:
    counted = demo_bookings[demo_bookings["counted"]].copy()
    counted["kind"] = counted["type"] == "maintenance"
    # A collision is a maintenance row overlapping a row of the other kind.
    counted = counted.sort_values(["equipment", "start"])
    clashes = 0
    for _, rows in counted.groupby("equipment"):
        maint = rows[rows["kind"]]
        use = rows[~rows["kind"]]
        for start, end in zip(maint["start"], maint["end"], strict=True):
            clashes += int(((use["start"] < end) & (use["end"] > start)).sum())
    # Not even across a spring-forward night (the calendar runs on wall clocks, then settles).
    assert clashes == 0


def test_utilisation_spreads_like_a_core_facility(demo_bookings: pd.DataFrame) -> None:
    use = demo_bookings[demo_bookings["counted"] & (demo_bookings["type"] != "maintenance")]
    first, last = pd.Timestamp("2025-10-01", tz="UTC"), pd.Timestamp("2026-10-01", tz="UTC")
    year = use[(use["start"] >= first) & (use["start"] < last)]
    hours = (year["end"] - year["start"]).dt.total_seconds().groupby(year["equipment"]).sum()
    calendar = hours.reindex(range(5001, 5041), fill_value=0) / 3600 / (365 * 24)
    # Calendar utilisation: a few workhorses around half the week (most of their staffed hours),
    # a long tail under 10 %, and never more than the hours there are.
    assert (calendar > 0.35).sum() >= 2
    assert (calendar < 0.10).sum() >= 15
    assert calendar.max() < 0.8
