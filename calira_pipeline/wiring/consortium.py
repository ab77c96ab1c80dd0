"""Consortium rollups: unpartitioned assets over every tenant's marts (only with a registry).

They read the shared store's consortium connection (every tenant's published files, each row
with its `tenant`), never a worker's working copy, and publish beside the tenants' prefixes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from calira_pipeline.marts.session import load_sql
from calira_pipeline.storage.snapshots import sql_string
from calira_pipeline.storage.tenant_store import CONSORTIUM, TenantPublishConflict, TenantStore
from calira_pipeline.wiring.marts import OWNERS
from calira_pipeline.wiring.tenant_resources import TenantWarehouseResource

GROUP = "consortium"
# rollup -> the tenant mart it reads
ROLLUPS: dict[str, str] = {
    "consortium_utilisation_by_organisation": "organisation_utilisation_monthly",
    "consortium_cost_by_tenant_currency": "booking_cost_monthly",
}


def build_rollup(store: TenantStore, name: str, attempts: int = 3) -> dict[str, Any]:
    """Build `name` over every tenant's published mart and publish it; returns its metadata.

    A rollup is a function of the tenants' pointers alone, so when another rollup run published
    first it is simply rebuilt from the newer pointers.
    """
    for attempt in range(attempts):
        try:
            return _build_and_publish(store, name)
        except TenantPublishConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _build_and_publish(store: TenantStore, name: str) -> dict[str, Any]:
    source = ROLLUPS[name]
    expected = store.pointer(CONSORTIUM)
    with store.connect() as con:
        listed = con.sql("select table_name from information_schema.tables").fetchall()
        if source not in {row[0] for row in listed}:
            raise dg.Failure(
                f"{name}: no tenant has published {source} yet in {store.root}; backfill the "
                "tenant partitions first"
            )
        with tempfile.TemporaryDirectory(prefix="calira-rollup-") as folder:
            path = Path(folder) / f"{name}.parquet"
            sql = load_sql(f"{name}.sql")
            con.execute(f"copy ({sql}) to {sql_string(str(path))} (format parquet)")
            row = con.sql(f"select count(*), count(distinct tenant) from ({sql})").fetchone()
            store.publish(CONSORTIUM, {name: [path]}, expected=expected)
    rows, tenants = row if row else (0, 0)
    return {"dagster/row_count": int(rows), "tenants": int(tenants), "store": store.root}


def _rollup_asset(name: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        deps=[ROLLUPS[name]],
        kinds={"sql", "duckdb", "parquet"},
        owners=OWNERS,
        tags={"layer": GROUP},
        description=description,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _asset(warehouse: TenantWarehouseResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
        return dg.MaterializeResult(metadata=build_rollup(warehouse.store(), name))

    return _asset


CONSORTIUM_ASSETS = [
    _rollup_asset(
        "consortium_utilisation_by_organisation",
        "One row per (tenant, organisation, local month): every tenant's organisation "
        "utilisation side by side; keys include the tenant, so ids of two tenants never meet.",
    ),
    _rollup_asset(
        "consortium_cost_by_tenant_currency",
        "One row per (tenant, currency, provider-local month): counted cost, DECIMAL(18,2), "
        "never summed across currencies or tenants.",
    ),
]
