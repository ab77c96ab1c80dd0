"""What a person reads beside the data (the UI's row counts, the demo summary) matches the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from calira_pipeline import connect
from calira_pipeline.cli.main import print_summary
from calira_pipeline.wiring.raw_step import NO_API_TOTAL
from calira_pipeline_tests.conftest import materialize_everything


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_every_row_count_the_ui_shows_is_the_tables_count(
    full_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    """The UI showed "Row count 3" on facility_report, an HTML file: its chart count."""
    shown = {
        name: meta["dagster/row_count"].value
        for name, meta in _metadata(full_run[1]).items()
        if "dagster/row_count" in meta
    }
    assert "equipment_utilisation_monthly" in shown and "bookings" in shown
    with connect(full_run[0]) as con:
        tables = {name for (name,) in con.execute("select name from _calira_tables").fetchall()}
        assert set(shown) <= tables, set(shown) - tables
        for name, rows in shown.items():
            assert con.execute(f'select count(*) from "{name}"').fetchone() == (rows,), name


def test_cli_summary_names_the_period_of_every_figure(
    full_run: tuple[Path, dg.ExecuteInProcessResult], capsys: pytest.CaptureFixture[str]
) -> None:
    """The double-booked share was printed without its period (it is over every booking,
    future ones included, like the hour-of-week chart)."""
    print_summary(str(full_run[0]), "run-1")
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("Double-booked:")]
    with connect(full_run[0]) as con:
        first, last = con.execute(
            "select min(start_time)::date, max(end_time)::date from bookings"
        ).fetchone()
    assert line.endswith(f"of counted use bookings, {first} – {last} (all bookings)"), line
    heatmap = _metadata(full_run[1])["equipment_hour_of_week"]["chart/window"].value
    assert heatmap == f"{first} – {last} (all bookings)"


def test_no_api_total_is_shown_as_a_number_where_the_api_sends_none(
    full_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    """current_user's green count check showed "api_total -1" (GET /me has no total), and
    project_funding_codes "api_total 10" beside its 13 rows (10 was the projects' total)."""
    result = full_run[1]
    shown = {name: meta["api_total"].value for name, meta in _metadata(result).items()
             if "api_total" in meta}  # fmt: skip
    checks = {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "loaded_count_matches_api_total"
    }
    assert shown["current_user"] == NO_API_TOTAL
    me = checks["current_user"]
    assert me.passed and me.metadata["api_total"].value == NO_API_TOTAL
    assert "no total" in (me.description or "")
    with connect(full_run[0]) as con:
        for name, total in shown.items():
            if name == "current_user":
                continue
            if name in ("project_funding_codes", "project_users", "group_equipment"):
                parent = "projects" if name.startswith("project") else "groups"
                assert total == f"{shown[parent]:,} {parent} (this table's rows come from them)"
                continue
            rows = con.execute(f'select count(*) from "{name}"').fetchone()
            assert (total,) == rows, name
            assert checks[name].metadata["api_total"].value == total, name


def test_the_report_explains_the_utilisation_bar_colours(
    full_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    """Staffed-hours bars came out amber and orange with nothing saying what that meant."""
    from calira_pipeline.reporting.chart_panels import BANDS

    page = Path(_metadata(full_run[1])["facility_report"]["path"].value).read_text()
    bounds = [f"{upper * 100:.0f} %" for upper, _ in BANDS if upper != float("inf")]
    assert bounds == ["60 %", "80 %"]
    assert "green up to 60 %, amber from 60 to 80 % and orange above 80 %" in page


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scale `small`: its busiest instruments include child modules with long names."""
    data_dir = tmp_path_factory.mktemp("small_run")
    assert materialize_everything(data_dir, "small").success
    return data_dir


def test_cli_summary_marks_a_shortened_instrument_name(
    small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The name "X-ray Diffractometer 11 / Cryo sta" was cut with nothing saying so."""
    from calira_pipeline.reporting import figures

    print_summary(str(small_run), "run-1")
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Busiest instruments"))
    with connect(small_run) as con:
        top = figures.instrument_utilisation(con, figures.recent_window(con), limit=5)
    assert any(len(row.instrument) > 34 for row in top)  # or this test proves nothing
    for row, line in zip(top, lines[start + 1 : start + 6], strict=True):
        shown = line[2:36].rstrip()
        assert shown == row.instrument or (
            shown.endswith("…") and row.instrument.startswith(shown[:-1])
        ), (shown, row.instrument)
