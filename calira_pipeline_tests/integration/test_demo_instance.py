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
        for asset in ("bookings", "equipment_utilisation_monthly", "facility_report"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.run_id == runs[0].run_id, asset
        chart = instance.get_latest_materialization_event(
            dg.AssetKey("equipment_utilisation_monthly")
        )
        assert "chart/top_instruments" in chart.asset_materialization.metadata
    assert (data / "calira.duckdb").exists()
