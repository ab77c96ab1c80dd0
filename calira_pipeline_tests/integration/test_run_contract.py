"""The run contract, as users' scripts use it: `dagster asset materialize` against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from calira_pipeline.sandbox import FaultConfig, Sandbox, SandboxConfig
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline_tests.integration.conftest import (
    ROOT,
    materialize_all_command,
    pipeline_env,
    run,
)

pytestmark = pytest.mark.integration

FAULTS = FaultConfig(latency_ms=5, rate_limit_rps=400, rate_limit_burst=20, error_rate=0.05, seed=3)


def _counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in RAW_TABLES}


def test_materialize_everything_over_loopback_with_faults(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(seed=0, scale="tiny", faults=FAULTS, token_lifetime_s=5))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        done = run(materialize_all_command(), pipeline_env(base_url, data_dir))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    counts = _counts(data_dir / "calira.duckdb")
    truth = sandbox.dataset
    assert counts["accounts"] == len(truth.accounts)
    assert counts["equipment"] == len(truth.equipment)
    assert counts["bookings"] == len(truth.bookings)
    assert counts["groups"] == len(truth.groups)
    assert sandbox.stats.count(status=200) > 0
    assert "127.0.0.1" in done.stderr + done.stdout  # the source is named in the run log


def _wait_for_temp_file(data_dir: Path, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline and proc.poll() is None:
        if any(data_dir.glob(".tmp-*")) or any((data_dir / "parquet").glob(".tmp-*")):
            return
        # A step stages its tables in an incoming folder (created when its fetch or build
        # starts) and publishes them from there: the run is then between its two commits.
        if any(data_dir.glob("incoming/*")):
            return
        time.sleep(0.001)


def test_sigkill_mid_run_leaves_previous_tables_intact_and_next_run_repairs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old = Sandbox(SandboxConfig(seed=0, scale="tiny"))
    # 100 ms per request keeps the raw step fetching for seconds, so a loaded machine cannot
    # finish the run between two polls of `_wait_for_temp_file`.
    new = Sandbox(SandboxConfig(seed=1, scale="small", faults=FaultConfig(latency_ms=100)))
    with old.serve_in_thread() as base_url:
        assert run(materialize_all_command(), pipeline_env(base_url, data_dir)).returncode == 0
    before = {t: pq.read_table(data_dir / "parquet" / f"{t}.parquet").num_rows for t in RAW_TABLES}

    with new.serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir)
        proc = subprocess.Popen(
            materialize_all_command(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_temp_file(data_dir, proc, time.monotonic() + 120)
        assert proc.poll() is None, "the run ended before it could be killed mid-write"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

        # Every Parquet file and the DuckDB file are readable and each table is whole: either
        # the previous run's rows or the new run's, never a mix.
        after_kill = _counts(data_dir / "calira.duckdb")
        new_truth = {
            "accounts": len(new.dataset.accounts),
            "bookings": len(new.dataset.bookings),
            "equipment": len(new.dataset.equipment),
        }
        for table, rows in new_truth.items():
            assert after_kill[table] in (before[table], rows), table
            parquet_rows = pq.read_table(data_dir / "parquet" / f"{table}.parquet").num_rows
            assert parquet_rows in (before[table], rows), table

        assert run(materialize_all_command(), env).returncode == 0
    repaired = _counts(data_dir / "calira.duckdb")
    assert {t: repaired[t] for t in new_truth} == new_truth
    assert not list(data_dir.glob(".tmp-*")) and not list((data_dir / "parquet").glob(".tmp-*"))
    assert not list(data_dir.glob("incoming/*"))  # the killed run's staged files are gone too
