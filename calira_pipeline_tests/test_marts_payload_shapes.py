"""Marts over older payloads: labs without a usable zone, bookings without a currency, list/detail
disagreements (hand-computed expectations)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from calira_pipeline.marts import MartSettings
from calira_pipeline.storage.schema import ACCOUNTS
from calira_pipeline.wiring.raw_checks import RULE_CHECKS
from calira_pipeline_tests.test_marts import booking, build_frames, hours_by_day

LABS = [
    {"id": 1, "name": "No zone", "account_type": "lab", "timezone": None},
    {
        "id": 2,
        "name": "Rails zone",
        "account_type": "lab",
        "timezone": "Eastern Time (US & Canada)",
    },
    {"id": 3, "name": "Good", "account_type": "lab", "timezone": "Europe/London"},
]
EQUIPMENT = [
    {"id": 10, "lab_id": 1, "currency": "EUR"},
    {"id": 11, "lab_id": 2, "currency": None},
    {"id": 12, "lab_id": 3, "currency": "GBP"},
]


def test_labs_without_a_usable_zone_use_the_default_and_are_reported(tmp_path: Path) -> None:
    rows = [
        booking(1, 10, "2024-01-11 14:00", "2024-01-11 16:00", lab=1),  # 23:00-01:00 in Tokyo
        booking(2, 11, "2024-01-11 01:00", "2024-01-11 02:00", lab=2),
        booking(3, 12, "2024-01-11 09:00", "2024-01-11 10:00", lab=3),
    ]
    frames = build_frames(
        tmp_path, rows, EQUIPMENT, LABS, MartSettings(default_timezone="Asia/Tokyo")
    )
    assert hours_by_day(frames, 10, "booked_hours") == {
        date(2024, 1, 11): 1.0,
        date(2024, 1, 12): 1.0,
    }
    facts = frames["booking_facts"].set_index("booking_id").sort_index()
    assert list(facts.booking_timezone) == ["Asia/Tokyo", "Asia/Tokyo", "Europe/London"]
    assert list(facts.timezone_source) == ["default", "default", "provider_lab"]
    issues = frames["booking_quality_issues"]
    zones = issues[issues.issue == "unknown_provider_timezone"].set_index("booking_id")
    assert list(zones.index) == [1, 2]
    assert zones.loc[1, "detail"] == (
        "provider lab 1 has no time zone; bucketed in Asia/Tokyo (CALIRA_DEFAULT_TIMEZONE)"
    )
    assert "'Eastern Time (US & Canada)', which DuckDB does not recognise" in zones.loc[2, "detail"]


def test_lab_has_timezone_is_a_warning_naming_missing_and_unknown_zones() -> None:
    (check,) = [c for c in RULE_CHECKS if c.name == "lab_has_timezone"]
    assert check.severity == dg.AssetCheckSeverity.WARN  # never blocks the marts
    accounts = pa.Table.from_pylist(
        [*LABS, {"id": 4, "name": "Blank", "account_type": "Lab", "timezone": "  "}],
        schema=ACCOUNTS.arrow_schema,
    )
    with duckdb.connect() as con:
        con.register("accounts", accounts)
        failing = sorted(row[0] for row in con.sql(check.violations_sql).fetchall())
    assert failing == [1, 2, 4]


def test_currency_falls_back_to_the_equipment_and_says_so(tmp_path: Path) -> None:
    rows = [
        booking(1, 10, "2024-01-11 09:00", "2024-01-11 10:00", currency=None, cost="5.00"),
        booking(2, 12, "2024-01-11 09:00", "2024-01-11 10:00", currency=" gbp", cost="7.00"),
        booking(3, 11, "2024-01-11 09:00", "2024-01-11 10:00", currency=None, cost="3.00"),
        booking(4, 10, "2024-01-12 09:00", "2024-01-12 10:00", currency="", cost="2.50"),
    ]
    accounts = [{**LABS[2], "id": 1}]
    frames = build_frames(tmp_path, rows, EQUIPMENT, accounts)
    facts = frames["booking_facts"].set_index("booking_id").sort_index()
    assert list(facts.currency_source) == ["equipment", "booking", "unknown", "equipment"]
    assert list(facts.currency.fillna("-")) == ["EUR", "GBP", "-", "EUR"]
    cost = frames["booking_cost_monthly"]
    totals = {
        (c if isinstance(c, str) else None): t
        for c, t in zip(cost.currency, cost.total_cost, strict=True)
    }
    assert totals == {"EUR": Decimal("7.50"), "GBP": Decimal("7.00"), None: Decimal("3.00")}
    issues = frames["booking_quality_issues"]
    unknown = issues[issues.issue == "unknown_currency"]
    assert list(unknown.booking_id) == [3]


def test_list_detail_disagreements_are_listed(tmp_path: Path) -> None:
    rows = [
        booking(1, 12, "2024-01-11 09:00", "2024-01-11 10:00", list_detail_fields="status"),
        booking(2, 12, "2024-01-11 11:00", "2024-01-11 12:00"),
    ]
    frames = build_frames(tmp_path, rows, EQUIPMENT, [{**LABS[2], "id": 1}])
    issues = frames["booking_quality_issues"]
    listed = issues[issues.issue == "list_detail_disagreement"]
    assert list(listed.booking_id) == [1]
    assert list(listed.severity) == ["info"]
    assert "disagree on status" in listed.detail.iloc[0]
