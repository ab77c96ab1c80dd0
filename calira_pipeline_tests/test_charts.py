"""Each chart's metadata carries the figures it draws, and they equal the marts' own numbers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from calira_pipeline import connect
from calira_pipeline.cli.main import print_summary
from calira_pipeline.definitions import load_defs

# Built here, as Dagster builds it when it loads the code location (nothing is built on import).
defs = load_defs()


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def _rows(value: Any) -> list[dict[str, Any]]:
    return [record.data for record in value.value.records]


@pytest.fixture(scope="module")
def meta(full_run: Any) -> dict[str, dict[str, Any]]:
    return _metadata(full_run[1])


def _month(text: str) -> date:
    return date.fromisoformat(text)


def test_utilisation_chart_numbers_are_the_marts_and_never_above_100(
    full_run: Any, meta: dict[str, dict[str, Any]]
) -> None:
    chart = meta["equipment_utilisation_monthly"]
    first = _month(chart["chart/window_first_month"].value)
    last = _month(chart["chart/window_last_month"].value)
    rows = _rows(chart["chart/top_instruments"])
    assert rows and "SANDBOX DATA" in chart["chart"].value
    with connect(full_run[0]) as con:
        # The window holds only complete months: it ends before the month of the data's clock.
        newest, oldest = con.execute(
            "select max(requested_at)::date, min(start_time)::date from bookings"
        ).fetchone()
        assert last < newest.replace(day=1)
        # Nor a month the data starts part-way through.
        assert first > oldest
        expected = dict(
            con.execute(
                "select e.name, 100 * sum(u.booked_hours) / sum(u.available_hours) "
                "from equipment_utilisation_monthly u join equipment e on e.id = u.equipment_id "
                "where u.month between ? and ? group by e.name",
                [first, last],
            ).fetchall()
        )
    for row in rows:
        assert row["utilisation_pct"] == pytest.approx(expected[row["instrument"]], abs=0.05)
        assert 0 <= row["utilisation_pct"] <= 100
        assert row["staffed_utilisation_pct"] is None or row["staffed_utilisation_pct"] <= 100
    pcts = [row["utilisation_pct"] for row in rows]
    assert pcts == sorted(pcts, reverse=True)


def test_cost_chart_counts_counted_bookings_only(
    full_run: Any, meta: dict[str, dict[str, Any]]
) -> None:
    chart = meta["booking_cost_monthly"]
    first = _month(chart["chart/window_first_month"].value)
    last = _month(chart["chart/window_last_month"].value)
    totals = {r["currency"]: r for r in _rows(chart["chart/totals_by_currency"])}
    with connect(full_run[0]) as con:
        by_category = con.execute(
            "select currency, status_category, coalesce(sum(total_cost), 0) "
            "from booking_cost_monthly where month between ? and ? and currency is not null "
            "group by all",
            [first, last],
        ).fetchall()
    counted = {c: v for c, cat, v in by_category if cat == "counted"}
    excluded = sum((v for _, cat, v in by_category if cat == "excluded"), Decimal(0))
    assert excluded > 0  # cancelled/declined money exists in the window, and is left out:
    assert {c: Decimal(r["counted_cost"]) for c, r in totals.items()} == counted
    for currency, row in totals.items():
        everything = sum((v for c, _, v in by_category if c == currency), Decimal(0))
        assert Decimal(row["counted_cost"]) < everything


def test_heatmap_numbers_are_the_marts_and_the_scale_fits_them(
    full_run: Any, meta: dict[str, dict[str, Any]]
) -> None:
    chart = meta["equipment_hour_of_week"]
    labs = _rows(chart["chart/labs"])
    scale = chart["chart/colour_scale_max_pct"].value
    with connect(full_run[0]) as con:
        peaks = dict(
            con.execute(
                "select a.name, 100 * max(o) from (select lab_id, weekday, hour, "
                "avg(coalesce(occupancy, 0)) o from equipment_hour_of_week group by all) h "
                "join accounts a on a.id = h.lab_id group by a.name"
            ).fetchall()
        )
    for lab in labs:
        assert lab["peak_occupancy_pct"] == pytest.approx(peaks[lab["lab"]], abs=0.05)
        assert lab["peak_occupancy_pct"] <= scale <= 100
    # Fitted, not 0-100: the busiest cell sits in the top fifth of the colour bar.
    assert max(lab["peak_occupancy_pct"] for lab in labs) > 0.5 * scale


def test_report_has_header_tables_and_a_clickable_link(
    full_run: Any, meta: dict[str, dict[str, Any]]
) -> None:
    report = meta["facility_report"]
    assert report["report"].value.startswith("file://")
    path = Path(report["path"].value)
    text = path.read_text()
    assert "SANDBOX DATA" in text and "Definitions" in text and "Source: <b>sandbox</b>" in text
    top = _rows(meta["equipment_utilisation_monthly"]["chart/top_instruments"])[0]
    assert f"<td>{top['instrument']}</td>" in text
    assert f"<td class=n>{top['utilisation_pct']}</td>" in text
    window = meta["booking_cost_monthly"]["chart/window"].value
    assert window in text


def test_mart_previews_show_names_and_newest_rows_first(
    full_run: Any, meta: dict[str, dict[str, Any]]
) -> None:
    preview = meta["equipment_utilisation_monthly"]["preview"].value
    header, _, first = preview.splitlines()[:3]
    assert header.startswith("| equipment_name | lab_name |")
    with connect(full_run[0]) as con:
        newest = con.execute("select max(month) from equipment_utilisation_monthly").fetchone()[0]
    # Cells are Markdown-escaped (API text renders as text), so compare the unescaped row.
    assert f"| {newest} |" in first.replace("\\", "")
    lines = meta["bookings"]["preview"].value.splitlines()
    column = [c.strip() for c in lines[0].split("|")].index("start_time")
    starts = [[c.strip() for c in line.split("|")][column] for line in lines[2:]]
    assert len(starts) == 5 and starts == sorted(starts, reverse=True)


def test_every_check_definition_has_a_description() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        assert graph.get(key).description, key


def test_cli_summary_prints_the_charts_numbers(
    full_run: Any, meta: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    print_summary(str(full_run[0]), "run-1")
    out = capsys.readouterr().out
    top = _rows(meta["equipment_utilisation_monthly"]["chart/top_instruments"])[0]
    assert meta["equipment_utilisation_monthly"]["chart/window"].value in out
    assert f"{top['utilisation_pct']:.1f}% of calendar hours" in out
    for row in _rows(meta["booking_cost_monthly"]["chart/totals_by_currency"]):
        assert f"{Decimal(row['counted_cost']):,}" in out
    assert "SANDBOX DATA" in out


def test_charts_render_when_the_window_holds_no_data(tmp_path: Path) -> None:
    """Golden marts from 2024 with no request times: the window (as of now) is empty."""
    import duckdb

    from calira_pipeline.marts import MartSettings, build_all, register_parquet_views
    from calira_pipeline.reporting import charts, reports
    from calira_pipeline.wiring.marts import CHARTS, chart_metadata
    from calira_pipeline_tests.test_marts import (
        ACCOUNT_ROWS,
        BOOKING_ROWS,
        EQUIPMENT_ROWS,
        write_raw,
    )

    raw = write_raw(tmp_path / "raw", BOOKING_ROWS, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    built = build_all(raw, tmp_path / "marts", MartSettings())
    con = duckdb.connect()
    register_parquet_views(con, {**raw, **built})
    rendered = [render(con, "api.example.org") for render in CHARTS.values()]
    for chart in rendered:
        assert chart.png.startswith(b"\x89PNG") and not chart.is_sandbox
        assert _edges_are_blank(chart.png), chart.title
        metadata = chart_metadata(chart)
        assert "SANDBOX DATA" not in metadata["chart"].value
    assert rendered[0].tables["top_instruments"] == []
    assert "no rows" in chart_metadata(rendered[0])["chart/top_instruments"].value
    page = reports.html_report(rendered, "api.example.org")
    assert charts.SANDBOX_LABEL not in page and "<em>no rows</em>" in page


def test_chart_source_falls_back_to_the_configured_api(full_run: Any, tmp_path: Path) -> None:
    """A fresh instance that never loaded bookings labels charts by the configured API."""
    import shutil

    from calira_pipeline.wiring.marts import build_marts
    from calira_pipeline.wiring.resources import CaliraApiResource
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    shutil.copytree(full_run[0], tmp_path / "data")
    real = CaliraApiResource(base_url="https://api.example.org/v1", data_dir=str(tmp_path / "data"))
    for api, sandbox in ((None, True), (real, False)):
        resources = sandbox_resources(str(tmp_path / "data"), "tiny")
        resources["calira"] = api or resources["calira"]
        result = dg.materialize(
            [build_marts], selection=["equipment_utilisation_monthly"], resources=resources
        )
        chart = _metadata(result)["equipment_utilisation_monthly"]
        assert ("SANDBOX DATA" in chart["chart"].value) is sandbox
        assert chart["data_source"].value == ("sandbox" if sandbox else "api.example.org")


def test_the_report_reuses_the_charts_its_marts_drew_from_the_same_publication(
    full_run: Any, meta: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Drawn once per run: the report takes the marts step's charts; after another publication
    (or for another source) it draws them afresh, and the page is the same either way."""
    import shutil

    from calira_pipeline.reporting import charts
    from calira_pipeline.storage import Warehouse
    from calira_pipeline.wiring.marts import CHARTS, build_marts, facility_report
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    assert meta["facility_report"]["charts_reused"].value == len(CHARTS)
    reused_page = Path(meta["facility_report"]["path"].value).read_bytes()
    data_dir = tmp_path / "data"
    shutil.copytree(full_run[0], data_dir)
    store = Warehouse(data_dir)
    kept = store.rendered_for_current()
    assert kept is not None and set(charts.charts_from_json(kept)) == set(CHARTS)
    resources = sandbox_resources(str(data_dir), "tiny", operating_hours="Mon-Fri 09:00-17:00")
    # A publication whose marts step drew no chart: nothing is kept for it, the report draws.
    assert dg.materialize(
        [build_marts], selection=["lab_utilisation_monthly"], resources=resources
    ).success
    assert store.rendered_for_current() is None
    result = dg.materialize([facility_report], resources=resources)
    report = _metadata(result)["facility_report"]
    assert report["charts_reused"].value == 0 and report["charts"].value == len(CHARTS)
    # The same figures and periods either way (only the generation time differs).
    drawn_page = Path(report["path"].value).read_bytes()
    assert _without_generated(drawn_page) == _without_generated(reused_page)


def _without_generated(page: bytes) -> bytes:
    import re

    text = re.sub(rb"Generated [^.<]+", b"", page)
    return re.sub(rb'src="data:image/png;base64,[^"]+"', b"", text)


def test_charts_survive_their_json_round_trip(full_run: Any) -> None:
    from calira_pipeline.reporting import charts
    from calira_pipeline.wiring.marts import CHARTS

    with connect(full_run[0]) as con:
        drawn = {name: render(con, "sandbox") for name, render in CHARTS.items()}
    assert charts.charts_from_json(charts.charts_to_json(drawn)) == drawn


def _edges_are_blank(png: bytes) -> bool:
    """No text or panel reaches the PNG's outermost pixels: nothing is cut off at an edge."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    edges = [pixels[:2], pixels[-2:], pixels[:, :2], pixels[:, -2:]]
    return all(bool((edge == 255).all()) for edge in edges)


def test_charts_fit_their_text_inside_the_figure(full_run: Any) -> None:
    """Margins come from the labels' own sizes: no label, title or legend is clipped (the
    SANDBOX DATA watermark stays clear of the edges too)."""
    from calira_pipeline.wiring.marts import CHARTS

    with connect(full_run[0]) as con:
        for render in CHARTS.values():
            chart = render(con, "sandbox")
            assert _edges_are_blank(chart.png), chart.title


def test_a_title_too_wide_for_its_figure_wraps_to_fit() -> None:
    """As the ranking's did at 1M bookings (a 9-inch figure): it was cut at both sides."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from calira_pipeline.reporting.chart_layout import PAD, Layout

    fig = Figure(figsize=(4, 3), dpi=100)
    FigureCanvasAgg(fig)
    layout = Layout(fig)
    parts = ["Top 25 instruments by utilisation", "Jul 2026 – Sep 2026 (3 complete local "
             "months; data as of 2026-10-31 23:58 UTC)"]
    height = layout.suptitle(parts, 10)
    title = fig.get_suptitle()
    assert title.split("\n")[0] == parts[0]  # a part per line, the window wrapped too
    assert len(title.split("\n")) >= 3
    assert all(layout.size(line, 10)[0] <= 4 - 2 * PAD for line in title.split("\n"))
    assert height >= layout.line(10, 3)
    assert layout.suptitle(["Short", "title"], 10) < layout.line(10, 2)
