from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from calira_pipeline.definitions import defs
from calira_pipeline.schema import RAW_TABLES

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
    from calira_pipeline.resources import CaliraApiResource

    resource = CaliraApiResource(
        base_url="https://api.clustermarket.com/v1",
        client_id="id",
        client_secret="secret",
        data_dir=str(tmp_path),
    )
    assert resource.settings().auth_mode == "client_credentials"
    (tmp_path / ".calira-token.json").write_text("{}")
    assert resource.settings().auth_mode == "refresh_token"
