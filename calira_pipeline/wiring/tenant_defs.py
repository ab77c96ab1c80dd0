"""The code location with a tenant registry: raw, staging, mart and report assets partitioned
by tenant (one run per tenant), consortium rollups over all of them, per-tenant schedules.

Built from the same asset definitions as the single-organisation location: only their
partitioning and the resources differ (README "Scale-out").
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from calira_pipeline.api.tenants import TenantRegistry
from calira_pipeline.config import ScheduleSettings, schedule_settings
from calira_pipeline.wiring.consortium import CONSORTIUM_ASSETS
from calira_pipeline.wiring.schedules import (
    FULL_REFRESH_MAX_RUNTIME_S,
    INCREMENTAL_MAX_RUNTIME_S,
    INCREMENTAL_MINUTE,
    MAX_RUNTIME_TAG,
)

TENANT_ASSETS_GROUPS = ("raw", "staging", "marts", "reports")


def tenant_partitions(registry: TenantRegistry) -> dg.StaticPartitionsDefinition:
    # Static: a new tenant is a new entry in the file plus a reload of the code location.
    return dg.StaticPartitionsDefinition(registry.keys)


def partitioned(
    assets: Sequence[dg.AssetsDefinition], partitions: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """The same asset definitions, each partitioned by tenant."""
    return [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions))
        for asset in assets
    ]


def tenant_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    # Partitioned by tenant because their assets are (Dagster infers it from the selection).
    tenant_assets = dg.AssetSelection.groups(*TENANT_ASSETS_GROUPS)
    return [
        dg.define_asset_job(
            "tenant_refresh",
            selection=tenant_assets,
            description="One tenant's collections re-read in full, then its staging tables, "
            "marts and report (backfill every partition for one run per tenant).",
            tags={MAX_RUNTIME_TAG: str(FULL_REFRESH_MAX_RUNTIME_S)},
        ),
        dg.define_asset_job(
            "tenant_incremental_bookings",
            selection=dg.AssetSelection.assets("bookings"),
            description="One tenant's new and changed bookings only.",
            config={"ops": {"fetch_calira": {"config": {"mode": "incremental"}}}},
            tags={MAX_RUNTIME_TAG: str(INCREMENTAL_MAX_RUNTIME_S)},
        ),
        dg.define_asset_job(
            "consortium_rollups",
            selection=dg.AssetSelection.groups("consortium"),
            description="The consortium rollups over every tenant's published marts.",
        ),
    ]


def _every_tenant(
    name: str, job: dg.UnresolvedAssetJobDefinition, cron: str, keys: list[str], zone: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=zone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"One {job.name} run per tenant ({len(keys)}); the instance's tag "
        "concurrency limit keeps one run per tenant at a time.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time
        stamp = tick.isoformat() if tick else ""
        return [dg.RunRequest(run_key=f"{key}-{stamp}", partition_key=key) for key in keys]

    return _schedule


def tenant_schedules(
    jobs: list[dg.UnresolvedAssetJobDefinition], keys: list[str], settings: ScheduleSettings
) -> list[dg.ScheduleDefinition]:
    by_name = {job.name: job for job in jobs}
    daily = f"0 {settings.daily_refresh_hour} * * *"
    hourly = f"{INCREMENTAL_MINUTE} * * * *"
    return [
        _every_tenant(
            "daily_tenant_refresh", by_name["tenant_refresh"], daily, keys, settings.timezone
        ),
        _every_tenant(
            "hourly_tenant_bookings",
            by_name["tenant_incremental_bookings"],
            hourly,
            keys,
            settings.timezone,
        ),
    ]


def tenant_definitions(
    registry: TenantRegistry,
    assets: Sequence[dg.AssetsDefinition],
    checks: Sequence[dg.AssetChecksDefinition],
    resources: dict[str, object],
    sensors: Sequence[dg.SensorDefinition],
) -> dg.Definitions:
    partitions = tenant_partitions(registry)
    jobs = tenant_jobs()
    return dg.Definitions(
        assets=[*partitioned(assets, partitions), *CONSORTIUM_ASSETS],
        asset_checks=list(checks),
        jobs=jobs,
        schedules=tenant_schedules(jobs, registry.keys, schedule_settings()),
        sensors=list(sensors),
        executor=dg.in_process_executor,
        resources=resources,
    )
