"""The WARN checks that catch impossible calendars in real data."""

from __future__ import annotations

from pathlib import Path

import duckdb

from calira_pipeline.marts import MartSettings, build_all, mart_check_failures
from calira_pipeline.marts import register_parquet_views as register
from calira_pipeline.marts.checks import OVERLAP_SHARE_WARN, check_descriptions
from calira_pipeline_tests.test_marts import ACCOUNT_ROWS, booking, write_raw


def _built(tmp_path: Path, rows: list[dict[str, object]]) -> duckdb.DuckDBPyConnection:
    raw = write_raw(tmp_path / "raw", rows, [{"id": 10, "lab_id": 1}], ACCOUNT_ROWS)
    built = build_all(raw, tmp_path / "marts", MartSettings())
    con = duckdb.connect()
    register(con, {**raw, **built})
    return con


def _results(con: duckdb.DuckDBPyConnection, mart: str) -> dict[str, object]:
    return {c.check_name: c for c in mart_check_failures(con, mart, MartSettings())}


def test_booked_plus_maintenance_above_available_warns(tmp_path: Path) -> None:
    # 11 Jan 2024 in London (UTC+0): 20 h of use and 10 h of maintenance in a 24 h day.
    con = _built(
        tmp_path,
        [
            booking(1, 10, "2024-01-11 00:00", "2024-01-11 20:00"),
            booking(2, 10, "2024-01-11 14:00", "2024-01-12 00:00", booking_type="maintenance",
                    status="Booked", cost="0.00"),
        ],
    )
    check = _results(con, "equipment_utilisation_daily")["booked_plus_maintenance_within_available"]
    assert (check.passed, check.failing_rows, check.severity) == (False, 1, "warning")
    # The month has 744 h: the same collision fits there, so only the day is flagged.
    assert _results(con, "equipment_utilisation_monthly")[
        "booked_plus_maintenance_within_available"
    ].passed


def test_use_beside_maintenance_within_the_day_passes(tmp_path: Path) -> None:
    con = _built(
        tmp_path,
        [
            booking(1, 10, "2024-01-11 00:00", "2024-01-11 14:00"),
            booking(2, 10, "2024-01-11 14:00", "2024-01-12 00:00", booking_type="maintenance",
                    status="Booked", cost="0.00"),
        ],
    )
    assert _results(con, "equipment_utilisation_daily")[
        "booked_plus_maintenance_within_available"
    ].passed


def test_overlap_share_above_threshold_warns_with_the_share(tmp_path: Path) -> None:
    # 40 back-to-back bookings (touching is not overlapping), then one double booking.
    rows = [
        booking(i, 10, f"2024-02-{1 + i // 8:02d} {8 + i % 8:02d}:00",
                f"2024-02-{1 + i // 8:02d} {9 + i % 8:02d}:00")
        for i in range(40)
    ]
    clean = _results(_built(tmp_path / "a", rows), "booking_quality_issues")
    check = clean["overlap_share_within_threshold"]
    assert check.passed and check.metadata["overlap_share"] == 0.0
    rows += [booking(100 + i, 10, f"2024-02-0{1 + i} 08:30", f"2024-02-0{1 + i} 09:30")
             for i in range(2)]
    # 2 extra bookings each overlap two: 6 of 42 counted use bookings (14 %) overlap.
    check = _results(_built(tmp_path / "b", rows), "booking_quality_issues")[
        "overlap_share_within_threshold"
    ]
    assert not check.passed and check.severity == "warning"
    assert check.metadata["overlapping_bookings"] == check.failing_rows == 6
    assert check.metadata["overlap_share"] == round(6 / 42, 4) > OVERLAP_SHARE_WARN


def test_every_mart_check_has_a_description() -> None:
    from calira_pipeline.marts import MART_SPECS

    for name in MART_SPECS:
        for check, description in check_descriptions(name).items():
            assert len(description) > 20, (name, check)
