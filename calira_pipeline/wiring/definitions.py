"""Every asset, check, resource, job, schedule and sensor, from explicit lists (the code location's
content; `calira_pipeline.definitions` is the module Dagster loads)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

import calira_pipeline.defs
from calira_pipeline.config import (
    API_VARIABLES,
    INT_VARIABLES,
    MART_INT_VARIABLES,
    MART_VARIABLES,
    env_bound_fields,
)
from calira_pipeline.wiring.mart_checks import MART_CHECKS, run_mart_checks
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.marts import MART_ASSETS
from calira_pipeline.wiring.raw import RAW_ASSETS
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.wiring.schedules import JOBS, SCHEDULES
from calira_pipeline.wiring.warehouse_reader import WarehouseDuckDBResource

ALL_ASSETS: list[dg.AssetsDefinition] = [*RAW_ASSETS, *MART_ASSETS]
# The raw checks are part of the raw step (`fetch_calira`), evaluated over its staged files.
ALL_CHECKS: list[dg.AssetChecksDefinition] = [*MART_CHECKS]

# Dagster creates this sensor STOPPED unless it is declared; declared RUNNING, the marts follow
# their inputs (every schedule run, every manual "Materialize") with no toggle in the UI.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Rebuilds each mart and the facility report once their inputs have changed "
    "(declarative automation: AutomationCondition.eager()).",
)


def _user_defs() -> dg.Definitions:
    # A source checkout (dg's project layout, pyproject.toml above the package) autoloads
    # components too; an installed wheel has no project root, so plain Python defs are loaded.
    root = Path(__file__).resolve().parents[1]
    if (root.parent / "pyproject.toml").exists():
        return dg.load_from_defs_folder(path_within_project=root)
    return dg.load_definitions_from_package_module(calira_pipeline.defs)


def _core_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[*JOBS, run_mart_checks],
        schedules=SCHEDULES,
        sensors=[automation_sensor],
        # One process per run: steps are I/O-bound API walks with their own internal concurrency,
        # and a process per step (the multiprocess default) costs seconds of imports per step.
        executor=dg.in_process_executor,
        resources={
            "calira": CaliraApiResource(**env_bound_fields(API_VARIABLES, INT_VARIABLES)),
            "warehouse": WarehouseResource(**env_bound_fields({"data_dir": "CALIRA_DATA_DIR"})),
            "mart_config": MartConfigResource(
                **env_bound_fields(MART_VARIABLES, MART_INT_VARIABLES)
            ),
            # For your own assets (calira_pipeline/defs/): Dagster's DuckDBResource, read-only.
            "duckdb": WarehouseDuckDBResource(**env_bound_fields({"data_dir": "CALIRA_DATA_DIR"})),
        },
    )


# Whatever `dg scaffold defs` puts in calira_pipeline/defs/ joins the same code location.
defs = dg.Definitions.merge(_core_defs(), _user_defs())
