"""`tasks.py demo` records its run in the Dagster instance `tasks.py dev` opens."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _prepared_venv(tmp_path: Path) -> Path:
    """A venv tasks.py treats as installed: this interpreter's tools, stamped as up to date."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    tools = Path(sys.executable).parent
    for tool in ("python", "calira-pipeline", "dagster"):
        (venv / "bin" / tool).symlink_to(tools / tool)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".calira-installed").write_text(stamp)
    return venv


def test_demo_run_lands_in_the_instance_dev_opens(tmp_path: Path) -> None:
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env.update(
        CALIRA_VENV=str(_prepared_venv(tmp_path)),
        DAGSTER_HOME=str(home),
        CALIRA_DATA_DIR=str(data),
    )
    done = subprocess.run(
        [sys.executable, "tasks.py", "demo", "--scale", "tiny"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SANDBOX DATA" in done.stdout and "complete local months" in done.stdout
    # The instance tasks.py dev opens (same DAGSTER_HOME, with tasks.py's dagster.yaml).
    assert "default_limit: 1" in (home / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        # Listed under the code location's job, which the UI can re-execute.
        assert runs[0].job_name == "full_refresh"
        checked = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("equipment_utilisation_daily"), "grain_is_unique"),
            limit=1,
        )
        assert checked and checked[0].run_id == runs[0].run_id
        for asset in ("bookings", "equipment_utilisation_monthly", "facility_report"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.run_id == runs[0].run_id, asset
        chart = instance.get_latest_materialization_event(
            dg.AssetKey("equipment_utilisation_monthly")
        )
        assert "chart/top_instruments" in chart.asset_materialization.metadata
    assert (data / "calira.duckdb").exists()


def test_demo_scale_data_passes_the_realism_checks(tmp_path: Path) -> None:
    from calira_pipeline import connect
    from calira_pipeline.reporting import figures
    from calira_pipeline_tests.conftest import materialize_everything

    result = materialize_everything(tmp_path, scale="demo")
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("booking_quality_issues", "overlap_share_within_threshold")]
    for mart in ("equipment_utilisation_daily", "equipment_utilisation_monthly"):
        assert checks[(mart, "booked_plus_maintenance_within_available")], mart
    assert [k for k, passed in checks.items() if not passed] == []  # every check is green
    with connect(tmp_path) as con:
        assert figures.overlap_share(con) <= 0.05
        window = figures.recent_window(con)
        staffed = [
            r.staffed_utilisation or 0.0 for r in figures.instrument_utilisation(con, window)
        ]
    # A few workhorses at 60-90 % of staffed hours, a long tail under 20 %.
    assert 2 <= sum(0.6 <= s <= 0.9 for s in staffed) <= 8
    assert sum(s < 0.2 for s in staffed) >= len(staffed) / 3
