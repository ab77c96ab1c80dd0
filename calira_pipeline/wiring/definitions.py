"""Every asset, check, resource, job, schedule and sensor, from explicit lists (the code location's
content; `calira_pipeline.definitions` is the module Dagster loads).

Nothing is read from the environment on import: `defs` is built lazily (`@dg.definitions`), when
Dagster loads the code location, so the settings that shape the definitions (real API or sandbox,
the variables bound as `dg.EnvVar`, the schedules' hour and zone, the raw step's retries) are read
then, and a bad one fails the load, naming the variable.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

import calira_pipeline.defs
from calira_pipeline.config import (
    API_VARIABLES,
    DATA_DIR_VARIABLE,
    INT_VARIABLES,
    MART_INT_VARIABLES,
    MART_VARIABLES,
    SANDBOX_INT_VARIABLES,
    SANDBOX_VARIABLES,
    calira_environment,
    schedule_settings,
    set_variables,
    store_root,
    tenants_file,
)
from calira_pipeline.wiring.mart_checks import MART_CHECKS, run_mart_checks
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.marts import MART_ASSETS
from calira_pipeline.wiring.raw import RAW_ASSETS, build_fetch_calira
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.wiring.retry import ingest_retry_policy
from calira_pipeline.wiring.sandbox_source import SandboxApiResource, api_resource_class
from calira_pipeline.wiring.schedules import JOBS, build_schedules
from calira_pipeline.wiring.warehouse_reader import WarehouseDuckDBResource

# The raw step here has no step retries (tests and benchmarks run it once); `configured_assets()`
# is what the code location and the demo run.
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


def env_bound_fields(
    variables: Mapping[str, str], ints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Bind each resource field to its variable when the variable is set (and non-empty).

    Unset variables keep the field's default, so one code path serves the sandbox and the real API.
    """
    bound: dict[str, Any] = {f: dg.EnvVar(var) for f, var in set_variables(variables).items()}
    bound.update({f: dg.EnvVar.int(var) for f, var in set_variables(ints or {}).items()})
    return bound


def _api_resource() -> CaliraApiResource:
    # The sandbox is plugged in here, never chosen inside the production resource.
    if api_resource_class() is SandboxApiResource:
        return SandboxApiResource(
            **env_bound_fields(
                {**API_VARIABLES, **SANDBOX_VARIABLES}, {**INT_VARIABLES, **SANDBOX_INT_VARIABLES}
            )
        )
    return CaliraApiResource(**env_bound_fields(API_VARIABLES, INT_VARIABLES))


def _user_defs() -> dg.Definitions:
    # A source checkout (dg's project layout, pyproject.toml above the package) autoloads
    # components too; an installed wheel has no project root, so plain Python defs are loaded.
    root = Path(__file__).resolve().parents[1]
    if (root.parent / "pyproject.toml").exists():
        return dg.load_from_defs_folder(path_within_project=root)
    return dg.load_definitions_from_package_module(calira_pipeline.defs)


def configured_assets() -> list[dg.AssetsDefinition]:
    """Every asset, the raw step retrying as CALIRA_INGEST_RETRIES says (read now)."""
    return [build_fetch_calira(ingest_retry_policy()), *MART_ASSETS]


def _core_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=configured_assets(),
        asset_checks=ALL_CHECKS,
        jobs=[*JOBS, run_mart_checks],
        schedules=build_schedules(schedule_settings()),
        sensors=[automation_sensor],
        # One process per run: steps are I/O-bound API walks with their own internal concurrency,
        # and a process per step (the multiprocess default) costs seconds of imports per step.
        executor=dg.in_process_executor,
        resources={
            "calira": _api_resource(),
            "warehouse": WarehouseResource(**env_bound_fields({"data_dir": DATA_DIR_VARIABLE})),
            "mart_config": MartConfigResource(
                **env_bound_fields(MART_VARIABLES, MART_INT_VARIABLES)
            ),
            # For your own assets (calira_pipeline/defs/): Dagster's DuckDBResource, read-only.
            "duckdb": WarehouseDuckDBResource(**env_bound_fields({"data_dir": DATA_DIR_VARIABLE})),
        },
    )


def _tenant_defs(registry_file: Path) -> dg.Definitions:
    # With CALIRA_TENANTS_FILE: the same assets partitioned by tenant (README "Scale-out").
    from calira_pipeline.api.tenants import load_registry
    from calira_pipeline.storage import data_dir_from_env
    from calira_pipeline.wiring.tenant_defs import tenant_definitions
    from calira_pipeline.wiring.tenant_resources import (
        TenantApiResource,
        TenantWarehouseResource,
    )

    data_dir = env_bound_fields({"data_dir": DATA_DIR_VARIABLE})
    root = store_root() or str(data_dir_from_env() / "shared")
    limits = env_bound_fields(
        {"max_rps": API_VARIABLES["max_rps"], "pii": API_VARIABLES["pii"]}, INT_VARIABLES
    )
    return tenant_definitions(
        load_registry(registry_file),
        configured_assets(),
        ALL_CHECKS,
        resources={
            "calira": TenantApiResource(tenants_file=str(registry_file), **data_dir, **limits),
            "warehouse": TenantWarehouseResource(store_root=root, **data_dir),
            "mart_config": MartConfigResource(
                **env_bound_fields(MART_VARIABLES, MART_INT_VARIABLES)
            ),
            # Kept so your own definitions (defs/) still load; it reads a single-organisation
            # data directory, not the tenants' store (use calira_pipeline.connect(tenant=...)).
            "duckdb": WarehouseDuckDBResource(**data_dir),
        },
        sensors=[automation_sensor],
    )


def load_defs() -> dg.Definitions:
    """The code location's definitions, built from the environment as it is now: with
    CALIRA_TENANTS_FILE, the tenant-partitioned location (README "Scale-out").

    Whatever `dg scaffold defs` puts in calira_pipeline/defs/ joins the same code location.
    """
    registry_file = tenants_file()
    core = _core_defs() if registry_file is None else _tenant_defs(registry_file)
    return dg.Definitions.merge(core, _user_defs())


def _environment_key() -> tuple[tuple[str, str], ...]:
    """What the definitions are built from: the CALIRA_* settings and the tenant registry file's
    content (it shapes the partitions). The content, not the modification time: coarse
    filesystem timestamps, or two writes within one clock tick, leave the time unchanged."""
    registry = tenants_file()
    try:
        stamp = hashlib.sha256(registry.expanduser().read_bytes()).hexdigest() if registry else ""
    except OSError:
        stamp = ""  # load_defs reports the unreadable file, naming the variable
    return (*sorted(calira_environment().items()), ("tenants_file_sha256", stamp))


@functools.lru_cache(maxsize=4)
def _defs_for(key: tuple[tuple[str, str], ...]) -> dg.Definitions:
    return load_defs()


@dg.definitions
def defs() -> dg.Definitions:
    """What Dagster loads (`-m calira_pipeline.definitions`, `dg`, workspace.yaml), lazily.

    Built once per process for the same settings: one `dagster asset materialize` reconstructs
    the code location seven times (~0.35 s each, mostly the defs folder's component scan).
    """
    return _defs_for(_environment_key())
