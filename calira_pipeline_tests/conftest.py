from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

_CALIRA_VARS = [k for k in os.environ if k.startswith("CALIRA_")]
# Runs that fail on purpose (fault cells, hostile servers) fail at once instead of after the step
# retries' backoff; set before the code location is imported, which builds the RetryPolicy.
os.environ["CALIRA_INGEST_RETRIES"] = "0"


@pytest.fixture(autouse=True)
def _no_ambient_calira_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never pick up a developer's real CALIRA_* settings by accident."""
    for key in _CALIRA_VARS:
        monkeypatch.delenv(key, raising=False)
    yield


def materialize_everything(data_dir: Path, scale: str = "tiny") -> dg.ExecuteInProcessResult:
    """Every asset and check, in process, against the in-process sandbox."""
    from calira_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
    from calira_pipeline.wiring.sandbox_source import sandbox_resources

    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources=sandbox_resources(str(data_dir), scale, operating_hours="Mon-Fri 09:00-17:00"),
    )


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    data_dir = tmp_path_factory.mktemp("full_run")
    return data_dir, materialize_everything(data_dir)
