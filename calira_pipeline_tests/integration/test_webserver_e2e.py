"""End to end through the real `dagster-webserver`: launch "materialise all" over GraphQL."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import BIN, ROOT, pipeline_env

pytestmark = pytest.mark.integration

DAGSTER_YAML = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
ASSETS = """
{ workspaceOrError { ... on Workspace { locationEntries { name } } }
  assetNodes { assetKey { path } } }
"""
STATUS = """
query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)  # polling a condition with a deadline, not a fixed wait
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[tuple[httpx.Client, Sandbox, Path]]:
    sandbox = Sandbox(SandboxConfig(seed=0, scale="tiny"))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir)
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(DAGSTER_YAML)
        port = _free_port()
        proc = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

                def ready() -> bool:
                    try:
                        return client.get("/server_info").status_code == 200
                    except httpx.TransportError:
                        return False

                _wait_until(ready, 120, "the webserver to answer")
                yield client, sandbox, data_dir
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def test_materialize_all_through_the_webserver(webserver: Any) -> None:
    client, sandbox, data_dir = webserver
    data = _wait_until(
        lambda: (d := _graphql(client, ASSETS))["workspaceOrError"]["locationEntries"] and d,
        120,
        "the code location to load",
    )
    location = data["workspaceOrError"]["locationEntries"][0]["name"]
    keys = [node["assetKey"] for node in data["assetNodes"]]
    assert {"path": ["bookings"]} in keys
    launched = _graphql(
        client,
        LAUNCH,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": keys,
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = _wait_until(
        lambda: (
            (s := _graphql(client, STATUS, {"id": run_id})["runOrError"]["status"]) in FINISHED
            and s
        ),
        600,
        "the run to finish",
    )
    assert status == "SUCCESS"
    with duckdb.connect(str(data_dir / "calira.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from bookings").fetchone() == (
            len(sandbox.dataset.bookings),
        )
