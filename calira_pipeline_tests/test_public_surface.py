"""What users and scripts rely on stays put: asset and check keys, jobs, schedules, sensors, tables,
the CLI and the run contract, compared against a checked-in snapshot.

A change that alters any of these on purpose regenerates the snapshot and says so in review:
`python -m calira_pipeline_tests.test_public_surface`.
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from calira_pipeline.cli.main import build_parser
from calira_pipeline.definitions import load_defs

# Built here, as Dagster builds it when it loads the code location (nothing is built on import).
defs = load_defs()

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("snapshots") / "public_surface.json"


def _assets() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    out: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "table": (node.metadata.get("dagster/table_name") or key.to_user_string()),
        }
    return out


def _checks() -> list[str]:
    graph = defs.resolve_asset_graph()
    return sorted(k.to_user_string() for k in graph.asset_check_keys)


def _cli(parser: argparse.ArgumentParser, path: str = "calira-pipeline") -> dict[str, Any]:
    """Every command path with its options (and their choices) and positionals."""
    out: dict[str, Any] = {}
    options: list[str] = []
    for action in parser._actions:  # argparse has no public walk of its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in sorted(action.choices.items()):
                out.update(_cli(sub, f"{path} {name}"))
        elif isinstance(action, argparse._HelpAction):
            continue
        elif action.option_strings:
            choices = f" {{{','.join(map(str, action.choices))}}}" if action.choices else ""
            options.append("/".join(sorted(action.option_strings)) + choices)
        else:
            options.append(f"<{action.dest}>")
    out[path] = sorted(options)
    return out


def _documented_variables() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Every variable", 1)[1].split("\n\n", 2)[1]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    return sorted({name for cell in first_cells for name in re.findall(r"CALIRA_[A-Z_]+", cell)})


def _run_contract() -> dict[str, Any]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    module = workspace["load_from"][0]["python_module"]
    return {
        "tool.dagster": pyproject["tool"]["dagster"],
        "tool.dg.project": pyproject["tool"]["dg"]["project"],
        "workspace": {"module_name": module["module_name"], "location": module["location_name"]},
        "scripts": pyproject["project"]["scripts"],
        "defs_attribute": "defs",
        "resources": sorted(defs.resources or {}),
        "variables": _documented_variables(),
    }


def current_surface() -> dict[str, Any]:
    return {
        "assets": _assets(),
        "asset_checks": _checks(),
        "jobs": sorted(job.name for job in defs.jobs or []),
        "schedules": sorted(
            (s.name, s.cron_schedule, s.job_name) for s in defs.schedules or []  # type: ignore[union-attr]
        ),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "cli": _cli(build_parser()),
        "run_contract": _run_contract(),
    }


def _normalised(surface: dict[str, Any]) -> Any:
    return json.loads(json.dumps(surface, sort_keys=True))


def test_public_surface_matches_the_snapshot() -> None:
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    actual = _normalised(current_surface())
    for section in expected:
        assert actual[section] == expected[section], f"{section} changed; see the module docstring"
    assert sorted(actual) == sorted(expected)


def test_snapshot_is_not_empty() -> None:
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert {"bookings", "booking_facts", "equipment_utilisation_daily"} <= set(expected["assets"])
    assert "calira-pipeline sandbox" in expected["cli"]
    assert expected["run_contract"]["tool.dagster"]["module_name"] == "calira_pipeline.definitions"


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(
        json.dumps(_normalised(current_surface()), indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {SNAPSHOT}")
