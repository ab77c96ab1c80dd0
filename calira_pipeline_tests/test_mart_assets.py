from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

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


def test_mart_checks_execute_alone_on_published_marts(full_run: Any, tmp_path: Path) -> None:
    """`dagster asset check` / "Execute checks": checks run without rebuilding anything."""
    import shutil

    from calira_pipeline.wiring.mart_checks import mart_checks, staging_checks
    from calira_pipeline.wiring.marts import build_marts, build_staging
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    shutil.copytree(full_run[0], tmp_path / "data", symlinks=True)
    result = dg.materialize(
        [build_staging, build_marts, staging_checks, mart_checks],
        selection=dg.AssetSelection.checks_for_assets(
            "booking_facts", "equipment_utilisation_daily"
        ),
        resources=sandbox_resources(str(tmp_path / "data"), "tiny"),
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations == {
        ("booking_facts", "grain_is_unique"): True,
        ("equipment_utilisation_daily", "grain_is_unique"): True,
        ("equipment_utilisation_daily", "utilisation_between_0_and_1"): True,
        ("equipment_utilisation_daily", "booked_hours_sum_reconciles_with_raw"): True,
        ("equipment_utilisation_daily", "booked_plus_maintenance_within_available"): True,
    }


def test_a_check_on_a_table_never_built_fails_and_says_so(tmp_path: Path) -> None:
    from calira_pipeline.wiring.mart_checks import mart_checks
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    result = dg.materialize(
        [mart_checks],
        selection=dg.AssetSelection.checks_for_assets("booking_cost_monthly"),
        resources=sandbox_resources(str(tmp_path / "data"), "tiny"),
        raise_on_error=False,
    )
    # cost_reconciles_with_raw is an ERROR check and blocking: its step fails.
    assert not result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and not any(e.passed for e in evaluations)
    assert all("not been materialised yet" in (e.description or "") for e in evaluations)


def _failure_on_an_empty_directory(step: dg.AssetsDefinition, data_dir: Path) -> str:
    """The message of `step` run over a data directory nothing was ever published to."""
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    result = dg.materialize(
        [step], resources=sandbox_resources(str(data_dir), "tiny"), raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert not (data_dir / "tables").exists()
    return failure.message


def test_building_before_the_raw_tables_are_loaded_names_them_and_the_fix(
    tmp_path: Path,
) -> None:
    from calira_pipeline.wiring.marts import build_staging

    message = _failure_on_an_empty_directory(build_staging, tmp_path / "data")
    # The missing raw tables, the data directory and the command that loads them; not DuckDB's
    # "Table with name accounts does not exist".
    assert "accounts, bookings, equipment" in message
    assert str(tmp_path / "data") in message
    assert "--select 'group:raw'" in message
    assert "does not exist" not in message


def test_building_marts_on_an_empty_directory_names_every_step_of_the_fix(
    tmp_path: Path,
) -> None:
    from calira_pipeline.wiring.marts import build_marts

    message = _failure_on_an_empty_directory(build_marts, tmp_path / "data")
    # Loading the raw tables alone would fail this run again, on the staging tables.
    assert "read(s) accounts, booking_facts, equipment, equipment_interval_days," in message
    assert "--select 'group:raw'), then materialise booking_facts, equipment_interval_days (" in (
        message
    )
    assert "--select 'booking_facts,equipment_interval_days')" in message


def test_error_checks_block_and_warnings_do_not() -> None:
    from calira_pipeline.wiring.mart_checks import MART_CHECKS

    blocking = {
        (spec.asset_key.to_user_string(), spec.name): spec.blocking
        for checks in MART_CHECKS
        for spec in checks.check_specs
    }
    assert blocking[("booking_facts", "grain_is_unique")] is True
    assert blocking[("booking_cost_monthly", "cost_reconciles_with_raw")] is True
    assert blocking[("booking_cost_monthly", "no_unknown_statuses")] is False
    assert blocking[("booking_quality_issues", "overlap_share_within_threshold")] is False


def _publish_golden_raw(data_dir: Path, duplicate_a_booking: bool) -> None:
    import pyarrow.parquet as pq

    from calira_pipeline.storage import Warehouse
    from calira_pipeline_tests.test_marts import (
        ACCOUNT_ROWS,
        BOOKING_ROWS,
        EQUIPMENT_ROWS,
        write_raw,
    )

    bookings = [*BOOKING_ROWS, BOOKING_ROWS[0]] if duplicate_a_booking else BOOKING_ROWS
    raw = write_raw(data_dir.parent / "raw", bookings, EQUIPMENT_ROWS, ACCOUNT_ROWS)
    Warehouse(data_dir).commit({name: pq.read_table(path) for name, path in raw.items()})


def _run_downstream_of_raw(data_dir: Path) -> dg.ExecuteInProcessResult:
    from calira_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("raw"),
        resources=sandbox_resources(str(data_dir), "tiny"),
        raise_on_error=False,
    )


def test_a_failed_error_check_on_staging_blocks_the_marts(tmp_path: Path) -> None:
    from calira_pipeline.storage import Warehouse

    data_dir = tmp_path / "data"
    _publish_golden_raw(data_dir, duplicate_a_booking=True)
    result = _run_downstream_of_raw(data_dir)
    assert not result.success
    failed = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    assert ("booking_facts", "grain_is_unique") in failed
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert built == {"booking_facts", "equipment_interval_days"}
    assert not Warehouse(data_dir).has_table("equipment_utilisation_daily")


def test_staging_and_marts_build_in_one_step_each_and_publish_by_reference(
    tmp_path: Path,
) -> None:
    from calira_pipeline.storage import Warehouse

    data_dir = tmp_path / "data"
    _publish_golden_raw(data_dir, duplicate_a_booking=False)
    result = _run_downstream_of_raw(data_dir)
    assert result.success
    steps = {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
    }
    assert steps == {
        "build_staging",
        "staging_checks",
        "build_marts",
        "mart_checks",
        "facility_report",
    }
    store = Warehouse(data_dir)
    files = store.table_files()
    assert set(MART_SPECS) <= set(files)
    metadata = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for name in MART_SPECS:
        [path] = files[name]
        assert metadata[name]["bytes_written"].value == path.stat().st_size
        assert metadata[name]["dagster/row_count"].value == len(store.read_table(name))
    assert list((data_dir / "incoming").iterdir()) == []
    # Idempotent: a second run publishes the same rows (as a set: the large tables are written
    # unsorted, so rows are compared in grain order).
    grain = [(c, "ascending") for c in MART_SPECS["equipment_utilisation_daily"].grain_columns]
    first = store.read_table("equipment_utilisation_daily").sort_by(grain)
    assert _run_downstream_of_raw(data_dir).success
    second = store.read_table("equipment_utilisation_daily").sort_by(grain)
    assert second.column_names == first.column_names and second.num_rows == first.num_rows
    for name in first.column_names:
        before, after = first.column(name), second.column(name)
        if pa.types.is_floating(before.type):
            # Parallel sums may differ in the last bit; hours are equal to far below a second.
            diff = pc.max(pc.abs(pc.subtract(before, after))).as_py()
            assert diff is None or diff < 1e-9, name
        else:
            assert before.equals(after), name
