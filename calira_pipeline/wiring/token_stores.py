"""Which store a refresh-token tenant's rotated tokens live in: the registry's `token_store`.

`file` (the default) keeps today's per-worker token file. `dagster_instance` uses a table in
the Postgres the Dagster instance already runs on (dagster-postgres), so every worker that
can record a run can also reach the tokens; a `postgresql://` URL names another database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from calira_pipeline.api import ClientSettings
from calira_pipeline.api.tenants import (
    TOKEN_STORE_FILE,
    TOKEN_STORE_INSTANCE,
    Tenant,
    TenantRegistry,
    TenantRegistryError,
    load_registry,
)
from calira_pipeline.api.token_store import FileTokenStore, TokenStore
from calira_pipeline.api.tokens import TokenFileStore
from calira_pipeline.config import tenant_secret, tenants_file
from calira_pipeline.storage.postgres_tokens import PostgresTokenStore

TENANTS_FOLDER = "tenants"  # $CALIRA_DATA_DIR/tenants/<key>: each tenant's working copy

# dagster-postgres builds SQLAlchemy URLs (postgresql+psycopg2://); libpq wants postgresql://.
_DRIVER = re.compile(r"^postgres(?:ql)?\+[a-z0-9_]+://")


def instance_postgres_dsn(instance: dg.DagsterInstance | None) -> str:
    """The libpq URL of the Postgres the instance keeps its runs in (with its password)."""
    storage = instance.run_storage if instance is not None else None
    url = getattr(storage, "postgres_url", None)
    if not isinstance(url, str) or not url:
        kind = type(storage).__name__ if storage is not None else "no instance"
        raise TenantRegistryError(
            f"token_store: {TOKEN_STORE_INSTANCE} needs the Dagster instance on Postgres "
            f"(storage: postgres in $DAGSTER_HOME/dagster.yaml, from dagster-postgres), but "
            f"this process's instance keeps runs in {kind}; put the instance on Postgres, name "
            "a postgresql:// URL in token_store, or use token_store: file"
        )
    return _DRIVER.sub("postgresql://", url)


def tenant_token_store(
    registry: TenantRegistry, key: str, instance: dg.DagsterInstance | None
) -> PostgresTokenStore | None:
    """The shared store of tenant `key`, or None for the worker's own token file."""
    if registry.token_store == TOKEN_STORE_FILE:
        return None
    if registry.token_store == TOKEN_STORE_INSTANCE:
        return PostgresTokenStore(instance_postgres_dsn(instance), key)
    return PostgresTokenStore(registry.token_store, key)


@dataclass(frozen=True)
class TenantTokenTarget:
    """What `calira-pipeline auth login/seed --tenant` writes to, and with which app."""

    tenant: Tenant
    store: TokenStore
    settings: ClientSettings


def tenant_token_target(
    key: str, data_dir: str, environ: Mapping[str, str] | None = None
) -> TenantTokenTarget:
    """The tenant's store (as its runs will find it) and its OAuth app, from the registry."""
    path = tenants_file(environ)
    if path is None:
        raise TenantRegistryError("--tenant needs CALIRA_TENANTS_FILE (the tenant registry)")
    registry = load_registry(path)
    tenant = registry.get(key)
    if tenant.auth != "refresh_token":
        raise TenantRegistryError(
            f"tenant {key} uses auth {tenant.auth}, which stores no refresh token; only "
            "refresh_token tenants log in"
        )
    secrets: dict[str, str] = {}
    for field in ("client_id", "client_secret"):
        variable = tenant.secret_variables[field]
        value = tenant_secret(variable, environ)
        if value is None:
            raise TenantRegistryError(
                f"tenant {key}: the variable {variable} (its {field}) is not set here"
            )
        secrets[field] = value
    store: TokenStore | None
    if registry.token_store == TOKEN_STORE_INSTANCE:
        try:
            instance = dg.DagsterInstance.get()  # $DAGSTER_HOME, as the workers use it
        except dg.DagsterInvariantViolationError as exc:
            raise TenantRegistryError(
                f"token_store: {TOKEN_STORE_INSTANCE} is read from the Dagster instance: set "
                "DAGSTER_HOME to the folder of the dagster.yaml the workers use"
            ) from exc
        with instance:
            store = tenant_token_store(registry, key, instance)
    else:
        store = tenant_token_store(registry, key, None)
    if store is None:  # token_store: file, the working copy this machine's runs read
        file = Path(data_dir) / TENANTS_FOLDER / key / ".calira-token.json"
        store = FileTokenStore(TokenFileStore(file))
    settings = ClientSettings(
        base_url=tenant.base_url,
        token_url=tenant.token_url,
        scopes=tenant.scopes,
        token_store=store,
        client_id=secrets["client_id"],
        client_secret=secrets["client_secret"],
    )
    return TenantTokenTarget(tenant, store, settings)
