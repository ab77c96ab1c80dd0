"""Resources of a tenant-partitioned run: each picks its tenant from the run's partition key.

The asset bodies stay the single-organisation ones: `calira` hands out a client for the
tenant's API and credentials, `warehouse` the tenant's working copy of the shared store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field, PrivateAttr

from calira_pipeline.api import ClientSettings
from calira_pipeline.api.settings import display_url
from calira_pipeline.api.tenants import Tenant, TenantRegistry, TenantRegistryError, load_registry
from calira_pipeline.config import tenant_secret
from calira_pipeline.ingest.pii import SALT_FILE, PiiPolicy
from calira_pipeline.storage.postgres_tokens import PostgresTokenStore
from calira_pipeline.storage.tenant_store import TenantStore
from calira_pipeline.storage.tenant_warehouse import TenantWarehouse
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.wiring.token_stores import TENANTS_FOLDER, tenant_token_store

PARTITION_TAG = "dagster/partition"


def run_tenant(context: dg.InitResourceContext) -> str | None:
    """The tenant a run is for: its partition key (None for an unpartitioned run)."""
    run = context.run
    return run.tags.get(PARTITION_TAG) if run is not None else None


class TenantApiResource(CaliraApiResource):
    """The Calira API of the run's tenant: base URL, auth mode and secrets from its registry
    entry (the secrets from the variables the entry names, read in the run's process)."""

    tenants_file: str = Field(description="The tenant registry (CALIRA_TENANTS_FILE).")
    _tenant: Tenant | None = PrivateAttr(default=None)
    _token_store: PostgresTokenStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        key = run_tenant(context)
        if key is not None:
            registry = load_registry(self.tenants_file)
            self._tenant = registry.get(key)
            if self._tenant.auth == "refresh_token":
                self._token_store = tenant_token_store(registry, key, context.instance)

    def tenant(self) -> Tenant:
        if self._tenant is None:
            raise TenantRegistryError(
                "this run has no tenant: the Calira API is read per tenant, so launch the run "
                "for a partition (one tenant key of CALIRA_TENANTS_FILE)"
            )
        return self._tenant

    @property
    def source(self) -> str:
        if self._tenant is None:
            return super().source
        host = urlsplit(display_url(self._tenant.base_url)).netloc  # never userinfo
        return f"{self._tenant.key}@{host}"

    def settings(self) -> ClientSettings:
        tenant = self.tenant()
        secrets: dict[str, Any] = {}
        for field, variable in tenant.secret_variables.items():
            value = tenant_secret(variable)
            if value is None and field == "refresh_token" and self._token_store is not None:
                continue  # only the first seed: the shared store holds the current token
            if value is None:
                raise TenantRegistryError(
                    f"tenant {tenant.key}: the variable {variable} (its {field}) is not set on "
                    "this worker; set it in every worker's environment"
                )
            secrets[field] = value
        token_file = None
        if tenant.auth == "refresh_token" and self._token_store is None:
            # Rotated refresh tokens in this worker's file (the registry's token_store: file;
            # README "Refresh tokens with several workers" says when that is enough).
            token_file = str(self.token_file_of(tenant.key))
        return ClientSettings(
            base_url=tenant.base_url,
            token_url=tenant.token_url,
            scopes=tenant.scopes,
            token_file=token_file,
            token_store=self._token_store,
            concurrency=self.concurrency,
            max_rps=tenant.max_rps or (float(self.max_rps) if self.max_rps else None),
            timeout_s=self.timeout_s,
            max_retry_wait_s=self.max_retry_wait_s,
            max_runtime_s=self.max_runtime_s,
            **secrets,
        )

    def token_file_of(self, key: str) -> Path:
        return Path(self.data_dir) / TENANTS_FOLDER / key / ".calira-token.json"


class TenantWarehouseResource(WarehouseResource):
    """The run's tenant's working copy under $CALIRA_DATA_DIR/tenants/<key>, brought up to
    date with the shared store (CALIRA_STORE_ROOT) before the step uses it."""

    store_root: str = Field(description="A path or s3://bucket/prefix (CALIRA_STORE_ROOT).")
    _tenant: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._tenant = run_tenant(context)

    def store(self) -> TenantStore:
        return TenantStore(self.store_root)

    def warehouse(self) -> TenantWarehouse:
        if self._tenant is None:
            raise TenantRegistryError(
                "this run has no tenant: tenant tables are built per tenant, so launch the run "
                "for a partition (one tenant key of CALIRA_TENANTS_FILE)"
            )
        house = TenantWarehouse(
            Path(self.data_dir) / TENANTS_FOLDER / self._tenant, self.store(), self._tenant
        )
        house.data_dir.mkdir(parents=True, exist_ok=True)
        # One personal-data salt per tenant on every worker, so hashed names agree across runs.
        house.share_file(SALT_FILE, lambda folder: PiiPolicy.for_data_dir("hash", folder))
        house.sync()
        return house


def registry_or_none(path: Path | None) -> TenantRegistry | None:
    return load_registry(path) if path is not None else None
