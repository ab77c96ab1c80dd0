from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from calira_pipeline import connect
from calira_pipeline.marts import MART_SPECS


def test_every_mart_is_published_with_its_contract_columns(full_run: Any) -> None:
    data_dir, result = full_run
    assert result.success
    with connect(data_dir) as con:
        for name, spec in MART_SPECS.items():
            columns = {
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_name = ?",
                    [name],
                ).fetchall()
            }
            assert set(spec.column_descriptions) <= columns, name
        daily = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'equipment_utilisation_daily'"
            ).fetchall()
        )
        assert daily["day"] == "DATE"
        cost = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'booking_cost_monthly'"
            ).fetchall()
        )
        assert cost["total_cost"] == "DECIMAL(18,2)"
        # Operating hours were configured, so the second utilisation is filled in.
        assert (
            con.execute(
                "select count(*) from equipment_utilisation_daily "
                "where operating_hours_available > 0"
            ).fetchone()[0]
            > 0
        )


def test_mart_checks_pass_and_charts_are_attached(full_run: Any) -> None:
    _, result = full_run
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == []
    metadata = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for mart in ("equipment_utilisation_monthly", "equipment_hour_of_week", "booking_cost_monthly"):
        chart = metadata[mart]["chart"].value
        assert chart.startswith("**SANDBOX DATA**\n\n![")
        assert "data:image/png;base64," in chart


def test_html_report_is_self_contained(full_run: Any) -> None:
    data_dir, _ = full_run
    report = Path(data_dir) / "reports" / "report.html"
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert "http://" not in text and "https://" not in text
    pngs = sorted(p.name for p in (Path(data_dir) / "reports").glob("*.png"))
    assert len(pngs) == 3
    assert all((Path(data_dir) / "reports" / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
