"""Fitting the Dagster toolchain: dg scaffolding, the `duckdb` resource, retries, locks, `.env`."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from calira_pipeline.api.errors import ApiError, ConfigError, MissingScopeError
from calira_pipeline.config import ingest_retries, load_dotenv_file
from calira_pipeline.ingest.lock import LOCK_FILE, ingestion_lock
from calira_pipeline.ingest.progress import RunLogProgress, TextProgressBar
from calira_pipeline.storage import StorageError
from calira_pipeline.wiring.retry import ingest_retry_policy, is_permanent
from calira_pipeline.wiring.warehouse_reader import WarehouseDuckDBResource
from calira_pipeline_tests.conftest import materialize_everything

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    env.update(extra)
    return env


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "data", ".dagster_home", "__pycache__", "*.png"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def test_dg_scaffold_defs_adds_an_asset_that_the_code_location_loads(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    env = _env(tmp_path, PYTHONPATH=str(project))
    scaffold = subprocess.run(
        [str(BIN / "dg"), "scaffold", "defs", "dagster.asset", "my_report.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    assert (project / "calira_pipeline" / "defs" / "my_report.py").exists()

    listed = subprocess.run(
        [str(BIN / "dg"), "list", "defs", "--json"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert '"my_report"' in listed.stdout
    assert '"equipment_utilisation_monthly"' in listed.stdout  # merged with, not replacing, ours

    checked = subprocess.run(
        [str(BIN / "dg"), "check", "defs"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_one_code_location_name_everywhere() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = (ROOT / "workspace.yaml").read_text()
    name = pyproject["tool"]["dagster"]["code_location_name"]
    assert name == pyproject["project"]["name"] == "calira_pipeline"
    assert f"location_name: {name}" in workspace


def test_dg_names_the_location_calira_pipeline_in_any_checkout_folder(tmp_path: Path) -> None:
    """`dg dev` (what `tasks.py dev` runs) named it after the clone's folder ("vis-clone"), so
    its UI showed another location than `dagster dev -w workspace.yaml` and the schedule and
    sensor state the README's `--location calira_pipeline` commands set did not show there."""
    from dagster_dg_core.context import DgContext

    checkout = tmp_path / "my-copy-of-the-repo"
    checkout.mkdir()
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    context = DgContext.for_project_environment(checkout, {})
    assert context.code_location_name == "calira_pipeline"


def test_readme_sets_dagster_home_to_absolute_paths() -> None:
    """`DAGSTER_HOME=.dagster_home dagster schedule start ...` (the README's) fails: Dagster
    insists on an absolute path."""
    import re

    readme = (ROOT / "README.md").read_text()
    values = re.findall(r"DAGSTER_HOME=(\S+)", readme)
    assert values
    assert [v for v in values if not v.startswith(("$", "/"))] == []


def test_duckdb_resource_is_dagsters_own_and_read_only(tmp_path: Path) -> None:
    from calira_pipeline.definitions import load_defs

    resource = load_defs().resources["duckdb"]
    assert isinstance(resource, DuckDBResource)
    missing = WarehouseDuckDBResource(data_dir=str(tmp_path))
    with pytest.raises(StorageError, match="does not exist yet"), missing.get_connection():
        pass

    assert materialize_everything(tmp_path).success
    reader = WarehouseDuckDBResource(data_dir=str(tmp_path))
    with reader.get_connection() as con:
        assert con.sql("select current_setting('TimeZone')").fetchone() == ("UTC",)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table mine as select 1")


def test_a_user_asset_reads_the_warehouse_through_the_duckdb_resource(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert materialize_everything(data_dir).success
    out = tmp_path / "mine" / "top_instruments.parquet"

    # The README's example, verbatim in spirit: read with the resource, write your own file.
    @dg.asset(deps=["equipment_utilisation_monthly"])
    def top_instruments(duckdb: DuckDBResource) -> dg.MaterializeResult[Any]:
        out.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.get_connection() as con:
            con.execute(
                f"""
                copy (
                    select equipment_id, sum(booked_hours) as booked_hours
                    from equipment_utilisation_monthly group by all
                    order by booked_hours desc limit 5
                ) to '{out}' (format parquet)
                """
            )
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(out))})

    result = dg.materialize(
        [top_instruments], resources={"duckdb": WarehouseDuckDBResource(data_dir=str(data_dir))}
    )
    assert result.success
    con = duckdb.connect()
    mine = con.sql(f"select * from '{out}'").fetchall()
    truth = con.sql(
        f"""select equipment_id, sum(booked_hours) from
        '{data_dir}/parquet/equipment_utilisation_monthly.parquet' group by all
        order by 2 desc limit 5"""
    ).fetchall()
    assert mine == truth and len(mine) == 5


def test_dg_launch_of_bookings_alone_on_a_fresh_data_directory(tmp_path: Path) -> None:
    env = _env(tmp_path, CALIRA_DATA_DIR=str(tmp_path / "data"), CALIRA_SANDBOX_SCALE="tiny")
    done = subprocess.run(
        [str(BIN / "dg"), "launch", "--assets", "bookings"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert (tmp_path / "data" / "parquet" / "bookings.parquet").exists()
    # equipment_exists needs the equipment table, which this run did not materialise.
    assert "Not evaluated: equipment has not been materialised" in output


def test_step_retries_with_backoff_but_never_for_permanent_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from calira_pipeline.definitions import load_defs

    monkeypatch.delenv("CALIRA_INGEST_RETRIES", raising=False)
    assert ingest_retries() == 2  # the default; the suite itself runs with 0
    monkeypatch.setenv("CALIRA_INGEST_RETRIES", "eleven")
    with pytest.raises(ValueError, match="CALIRA_INGEST_RETRIES='eleven' is not a whole number"):
        ingest_retries()
    monkeypatch.setenv("CALIRA_INGEST_RETRIES", "3")
    policy = ingest_retry_policy()
    assert (policy.max_retries, policy.delay) == (3, 30)
    assert policy.backoff == dg.Backoff.EXPONENTIAL
    # Read when the definitions are built, not when the module was imported.
    fetch = load_defs().resolve_assets_def(dg.AssetKey("bookings"))
    assert fetch.op.retry_policy == policy
    assert is_permanent(ConfigError("bad"))
    assert is_permanent(MissingScopeError("read_bookings", "/bookings", ["bookings"]))
    assert is_permanent(ApiError("not found", status=404))
    assert not is_permanent(ApiError("gave up after retries", status=503))
    assert not is_permanent(ApiError("rate limited", status=429))
    assert not is_permanent(ApiError("connection reset"))


def test_overlapping_ingestions_wait_for_each_other_and_say_so(tmp_path: Path) -> None:
    holder = open(tmp_path / LOCK_FILE, "a+")  # noqa: SIM115 - held across the assertions
    fcntl.flock(holder, fcntl.LOCK_EX)
    said: list[str] = []
    waiting, entered = threading.Event(), threading.Event()

    def log(line: str) -> None:
        said.append(line)
        waiting.set()

    def second_run() -> None:
        with ingestion_lock(tmp_path, log):
            entered.set()

    thread = threading.Thread(target=second_run)
    thread.start()
    assert waiting.wait(30), "the second ingestion never reported that it waits"
    assert not entered.is_set()
    assert "another ingestion" in said[0] and "waiting" in said[0]
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    assert entered.wait(30)
    thread.join(30)


def test_ingestion_lock_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / LOCK_FILE).symlink_to(victim)
    with pytest.raises(OSError), ingestion_lock(data_dir, print):
        pass
    assert victim.read_text() == "keep me"


def test_progress_off_a_terminal_is_short_throttled_lines() -> None:
    stream = io.StringIO()
    now = [0.0]
    bar = TextProgressBar(stream, min_interval_s=5.0, clock=lambda: now[0])
    for page in range(1, 2001):
        now[0] += 0.01  # 2,000 pages in 20 s
        bar("bookings", page, 2000, page * 100)
        bar("equipment", min(page, 20), 20, min(page, 20) * 100)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert max(len(line) for line in lines) < 120
    bookings = [line for line in lines if "bookings" in line]
    assert 4 <= len(bookings) <= 6  # first, about one per 5 s, and the last
    assert bookings[-1].strip() == "bookings: 2000/2000 pages, 200,000 records"
    assert [line.strip() for line in lines if "equipment" in line][-1].startswith(
        "equipment: 20/20 pages"
    )
    assert sum("equipment: 20/20" in line for line in lines) == 1


def test_run_log_progress_throttles_and_finish_logs_the_last_page() -> None:
    """The demo's run log said "bookings: 1/1 pages, 100 records, 22,361,360 records/s" and
    nothing more: the last page of a fetch under 5 s was throttled away."""
    lines: list[str] = []
    now = [0.0]
    log = RunLogProgress(lines.append, min_interval_s=5.0, clock=lambda: now[0])
    for page in range(1, 301):  # 300 pages in 3 s
        now[0] += 0.01
        log("bookings", page, 300, page * 100)
    for page in range(1, 11):  # a collection that fails: its last page is never "finished"
        log("groups", page, 20, page)
    assert lines == [
        "bookings: 30/300 pages, 3,000 records, 10,000 records/s, ETA 3 s",
        "groups: 2/20 pages, 2 records, 1 records/s, ETA 27 s",
    ]
    log.finish(["bookings"])
    assert lines[2:] == ["bookings: 300/300 pages, 30,000 records, 10,000 records/s, ETA 0 s"]
    log.finish(["bookings"])  # already out
    assert len(lines) == 3

    lines.clear()
    for page in range(1, 2001):  # 2,000 pages in 200 s: about one line per tenth, never two
        now[0] += 0.1  # within 5 s, and past the reported total every page is "the last"
        log("equipment", page, max(2000, page), page)
    assert 10 <= len(lines) <= 11
    assert lines[0].startswith("equipment: 200/2,000 pages, 200 records")
    assert lines[-1].startswith("equipment: 2,000/2,000 pages, 2,000 records")


def test_cli_reads_the_project_dotenv_like_dg_dev(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (project / ".env").write_text(
        f"CALIRA_DATA_DIR={tmp_path / 'from-dotenv'}\nCALIRA_SANDBOX_SCALE=tiny\n"
    )
    done = subprocess.run(
        [str(BIN / "calira-pipeline"), "doctor"],
        cwd=project / "notebooks",
        env=_env(tmp_path, CALIRA_PII="keep"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert f"CALIRA_DATA_DIR={tmp_path / 'from-dotenv'}" in done.stdout, done.stdout + done.stderr
    assert "CALIRA_PII=keep" in done.stdout  # a variable already set wins over .env
    assert (tmp_path / "from-dotenv").is_dir()


def test_load_dotenv_file_never_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".env").write_text("CALIRA_PII=drop\nCALIRA_CONCURRENCY=3\n")
    monkeypatch.setenv("CALIRA_PII", "keep")
    monkeypatch.delenv("CALIRA_CONCURRENCY", raising=False)
    assert load_dotenv_file(tmp_path) == tmp_path / ".env"
    assert os.environ["CALIRA_PII"] == "keep"
    assert os.environ["CALIRA_CONCURRENCY"] == "3"
    monkeypatch.delenv("CALIRA_CONCURRENCY")
