"""Two runs at once (the schedule and a manual run) both succeed; readers are never blocked."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import duckdb
import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import (
    BIN,
    DAGSTER_YAML,
    ROOT,
    materialize_all_command,
    pipeline_env,
    run,
)

pytestmark = pytest.mark.integration


def test_two_simultaneous_runs_serialise_writes_and_never_block_readers(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(seed=0, scale="tiny"))
    data_dir = tmp_path / "data"
    reads: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_continuously() -> None:
        # Paced, not synchronising: leave the GIL to the sandbox server in this process.
        while not stop.wait(0.02):
            try:
                if (data_dir / "calira.duckdb").exists():
                    with duckdb.connect(str(data_dir / "calira.duckdb"), read_only=True) as con:
                        con.execute("select count(*) from _calira_tables").fetchone()
                    reads.append(1)
            except duckdb.Error as exc:  # a blocked or half-written file would land here
                errors.append(exc)

    reader = threading.Thread(target=read_continuously, daemon=True)
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir)
        # The instance configuration `python3 tasks.py dev` writes: one ingestion at a time.
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(DAGSTER_YAML)
        # An existing instance, as on any machine with a schedule: two processes creating the
        # sqlite storage of a brand-new DAGSTER_HOME at once is a Dagster race, not ours.
        assert run([str(BIN / "dagster"), "instance", "migrate"], env).returncode == 0
        reader.start()
        runs = [
            subprocess.Popen(
                materialize_all_command(),
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [proc.communicate(timeout=600)[0] for proc in runs]
        stop.set()
        reader.join(timeout=30)
    assert [proc.returncode for proc in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert errors == []
    assert len(reads) > 10
    with duckdb.connect(str(data_dir / "calira.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from bookings").fetchone() == (
            len(sandbox.dataset.bookings),
        )
        assert con.execute("select count(*) from equipment_utilisation_daily").fetchone()[0] > 0
