"""The code location: every asset, check, resource and schedule, from explicit lists."""

from __future__ import annotations

import dagster as dg

from calira_pipeline.assets.marts import MART_ASSETS
from calira_pipeline.assets.raw import RAW_ASSETS
from calira_pipeline.assets.raw_checks import RAW_CHECKS
from calira_pipeline.marts_config import MartConfigResource
from calira_pipeline.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.schedules import JOBS, SCHEDULES
from calira_pipeline.settings import (
    API_VARIABLES,
    INT_VARIABLES,
    MART_VARIABLES,
    env_bound_fields,
)

ALL_ASSETS: list[dg.AssetsDefinition] = [*RAW_ASSETS, *MART_ASSETS]
ALL_CHECKS: list[dg.AssetChecksDefinition] = [*RAW_CHECKS]

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

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=[automation_sensor],
    # One process per run: steps are I/O-bound API walks with their own internal concurrency, and a
    # process per step (the multiprocess default) costs seconds of imports for each of ~30 steps.
    executor=dg.in_process_executor,
    resources={
        "calira": CaliraApiResource(**env_bound_fields(API_VARIABLES, INT_VARIABLES)),
        "warehouse": WarehouseResource(**env_bound_fields({"data_dir": "CALIRA_DATA_DIR"})),
        "mart_config": MartConfigResource(**env_bound_fields(MART_VARIABLES)),
    },
)
