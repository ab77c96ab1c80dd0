from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from calira_pipeline.definitions import load_defs
from calira_pipeline.storage.schema import RAW_TABLES

# Built here, as Dagster builds it when it loads the code location (nothing is built on import).
defs = load_defs()

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_and_cover_every_raw_table() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(RAW_TABLES) <= keys


def test_code_location_loads_as_dagster_dev_would(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env["DAGSTER_HOME"] = str(tmp_path)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_code_location_loads_under_dg(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env["DAGSTER_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_every_asset_states_its_grain_and_has_an_owner() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name in ("raw", "marts"):
            assert (node.description or "").startswith("One row"), key
        assert node.description, key
        assert node.owners, key


def test_token_file_written_by_auth_login_switches_runs_to_refresh_tokens(tmp_path: Path) -> None:
    from calira_pipeline.wiring.resources import CaliraApiResource

    resource = CaliraApiResource(
        base_url="https://api.clustermarket.com/v1",
        client_id="id",
        client_secret="secret",
        data_dir=str(tmp_path),
    )
    assert resource.settings().auth_mode == "client_credentials"
    (tmp_path / ".calira-token.json").write_text("{}")
    assert resource.settings().auth_mode == "refresh_token"


def test_lineage_runs_raw_to_staging_to_marts_to_report() -> None:
    graph = defs.resolve_asset_graph()

    def node(key: str) -> Any:
        return graph.get(dg.AssetKey(key))

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in node(key).parent_keys}

    assert {node(k).group_name for k in ("booking_facts", "equipment_interval_days")} == {"staging"}
    assert parents("booking_facts") == {"bookings", "equipment", "accounts"}
    assert "booking_facts" in parents("equipment_interval_days")
    for mart in (
        "equipment_utilisation_daily",
        "parent_equipment_utilisation_daily",
        "equipment_hour_of_week",
    ):
        assert node(mart).group_name == "marts"
        assert {"booking_facts", "equipment_interval_days"} <= parents(mart), mart
        assert "bookings" not in parents(mart), mart  # raw bookings only through staging
    for mart in ("booking_cost_monthly", "booking_quality_issues"):
        assert "booking_facts" in parents(mart) and "bookings" not in parents(mart)
    assert "equipment_utilisation_monthly" in parents("lab_utilisation_monthly")
    assert "booking_cost_monthly" in parents("facility_report")


def test_the_mart_checks_job_runs_checks_only() -> None:
    job = defs.resolve_job_def("run_mart_checks")
    # Only the two check steps: no build step, so running it rebuilds nothing.
    executable = {n.name for n in job.graph.node_defs}
    assert executable == {"staging_checks", "mart_checks"}


def test_the_code_location_is_built_once_per_process_for_the_same_settings(
    monkeypatch: Any,
) -> None:
    # One CLI run reconstructs the code location several times; each rebuild cost ~0.35 s.
    from calira_pipeline.definitions import defs as code_location

    first = code_location()
    assert code_location() is first
    retries = first.resolve_assets_def("bookings").op.retry_policy
    monkeypatch.setenv("CALIRA_INGEST_RETRIES", str((retries.max_retries if retries else 0) + 2))
    changed = code_location()
    assert changed is not first
    policy = changed.resolve_assets_def("bookings").op.retry_policy
    assert policy is not None
    assert policy.max_retries == (retries.max_retries if retries else 0) + 2


def _tenant_file(path: Path, keys: list[str]) -> None:
    entries = "".join(
        f"  - key: {key}\n    base_url: http://127.0.0.1:8123/v1\n    auth: access_token\n"
        f"    secrets: {{access_token: CALIRA_{key.upper()}_TOKEN}}\n"
        for key in keys
    )
    path.write_text(f"tenants:\n{entries}")


@pytest.mark.parametrize("variable", ["{folder}/tenants.yaml", "~/tenants.yaml"])
def test_the_code_location_follows_the_tenant_file_even_when_its_timestamp_does_not_move(
    tmp_path: Path, monkeypatch: Any, variable: str
) -> None:
    # Filesystems with coarse timestamps (1-2 s on FAT, SMB, some container overlays) or two
    # writes within one kernel tick leave the modification time unchanged.
    from calira_pipeline.definitions import defs as code_location

    registry = tmp_path / "tenants.yaml"
    _tenant_file(registry, ["alpha", "beta"])
    stamp = registry.stat().st_mtime_ns
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CALIRA_TENANTS_FILE", variable.format(folder=tmp_path))
    monkeypatch.setenv("CALIRA_DATA_DIR", str(tmp_path / "data"))

    def tenants() -> list[str]:
        partitions = code_location().resolve_assets_def("bookings").partitions_def
        assert partitions is not None
        return sorted(partitions.get_partition_keys())

    assert tenants() == ["alpha", "beta"]
    _tenant_file(registry, ["alpha", "beta", "gamma"])
    os.utime(registry, ns=(stamp, stamp))
    assert tenants() == ["alpha", "beta", "gamma"]
