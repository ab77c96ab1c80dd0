"""What the consortium rollups must equal, read tenant by tenant (shared by the in-process and
the cluster tests)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from calira_pipeline.storage.tenant_store import TenantStore

CostKey = tuple[str, str | None]


def counted_cost_per_tenant(store: TenantStore, tenants: Iterable[str]) -> dict[CostKey, Decimal]:
    """Counted cost per (tenant, currency), from each tenant's own `booking_cost_monthly`."""
    per_tenant: dict[CostKey, Decimal] = {}
    for tenant in tenants:
        with store.connect(tenant=tenant) as con:
            for currency, cost in con.sql(
                "select currency, sum(total_cost) from booking_cost_monthly "
                "where status_category = 'counted' group by all"
            ).fetchall():
                per_tenant[(tenant, currency)] = cost
    return per_tenant
