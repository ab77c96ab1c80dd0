from __future__ import annotations

from calira_pipeline.sandbox import SCALES, Sandbox, SandboxConfig


def test_demo_scale_books_instruments_like_a_busy_core_facility() -> None:
    sandbox = Sandbox(SandboxConfig(seed=0, scale="demo"))
    data = sandbox.dataset
    assert len(data.bookings) == SCALES["demo"].bookings == 30_000
    assert len(data.equipment) == SCALES["demo"].instruments == 40
    booked = {b["equipment"]["id"] for b in data.bookings[:5_000]}
    # Hundreds of bookings per instrument a year (domain notes), not a handful.
    assert len(data.bookings) / len(booked) / 2 >= 300
