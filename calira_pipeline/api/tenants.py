"""The tenant registry: which organisations one deployment ingests, read from a YAML file.

Each entry names where a tenant's API lives, how it authenticates and the *names* of the
variables holding its secrets; the secrets themselves never enter the file, so the file can be
committed and shown in the UI. Plain Python: no Dagster here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# Tenant keys become partition keys, hive folder values (`tenant=<key>`) and file names.
TENANT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
VARIABLE_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# auth mode -> secret fields it needs (each given as the *name* of a variable)
AUTH_SECRETS: dict[str, tuple[str, ...]] = {
    "client_credentials": ("client_id", "client_secret"),
    "refresh_token": ("client_id", "client_secret", "refresh_token"),
    "access_token": ("access_token",),
}
ALL_SECRET_FIELDS = ("client_id", "client_secret", "refresh_token", "access_token")
# Where refresh-token tenants keep their rotated tokens (README "Refresh tokens with several
# workers"): each worker's own file, the Dagster instance's Postgres, or a named Postgres.
TOKEN_STORE_FILE = "file"
TOKEN_STORE_INSTANCE = "dagster_instance"
_ENTRY_FIELDS = {"key", "base_url", "auth", "secrets", "token_url", "scopes", "max_rps"}


class TenantRegistryError(ValueError):
    """The tenant file cannot be used; the message names the entry, the field and the fix."""


@dataclass(frozen=True)
class Tenant:
    """One organisation: its API, its auth mode and the variables holding its secrets."""

    key: str
    base_url: str
    auth: str
    # secret field (client_id, client_secret, refresh_token, access_token) -> variable name
    secret_variables: Mapping[str, str] = field(default_factory=dict)
    token_url: str | None = None
    scopes: str | None = None
    max_rps: float | None = None


@dataclass(frozen=True)
class TenantRegistry:
    source: Path
    tenants: tuple[Tenant, ...]
    # "file", "dagster_instance" or a postgresql:// DSN without a password
    token_store: str = TOKEN_STORE_FILE

    @property
    def keys(self) -> list[str]:
        return [tenant.key for tenant in self.tenants]

    def get(self, key: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.key == key:
                return tenant
        raise TenantRegistryError(
            f"tenant {key!r} is not in {self.source} (known: {', '.join(self.keys)}); "
            "add an entry for it or pick a listed tenant"
        )


def load_registry(path: str | Path) -> TenantRegistry:
    """Read and validate the tenant file; every problem is one sentence naming entry and field."""
    source = Path(path).expanduser().resolve()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TenantRegistryError(
            f"CALIRA_TENANTS_FILE={str(path)!r} cannot be read ({source}: {exc.strerror}); "
            "point it at a readable YAML tenant file or unset it"
        ) from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise TenantRegistryError(
            f"the tenant file {source} is not valid YAML{line}; fix the syntax there"
        ) from exc
    entries = document.get("tenants") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TenantRegistryError(
            f"the tenant file {source} needs a top-level 'tenants:' list with at least one entry"
        )
    tenants = tuple(_tenant(source, number, entry) for number, entry in enumerate(entries, 1))
    seen: set[str] = set()
    for number, tenant in enumerate(tenants, 1):
        if tenant.key in seen:
            raise _error(source, number, tenant.key, "key", "is used by an earlier entry too")
        seen.add(tenant.key)
    return TenantRegistry(source, tenants, _token_store(source, document.get("token_store")))


def _token_store(source: Path, value: Any) -> str:
    if value is None or value in (TOKEN_STORE_FILE, TOKEN_STORE_INSTANCE):
        return str(value or TOKEN_STORE_FILE)
    if isinstance(value, str) and urlsplit(value).scheme in ("postgresql", "postgres"):
        parts = urlsplit(value)
        if parts.password is None and "password" not in parts.query:
            return value
        # Never echo it: the password is the secret this file must not hold.
        raise TenantRegistryError(
            f"{source}: field 'token_store' holds a Postgres password; remove it from the URL "
            "and give it to every worker as PGPASSWORD or in ~/.pgpass (libpq reads both)"
        )
    raise TenantRegistryError(
        f"{source}: field 'token_store' must be {TOKEN_STORE_FILE}, {TOKEN_STORE_INSTANCE} or "
        "a postgresql://user@host:port/database URL (without a password)"
    )


def _error(source: Path, number: int, key: object, name: str, problem: str) -> TenantRegistryError:
    label = f"entry {number}" + (f" ({key!r})" if isinstance(key, str) and key else "")
    return TenantRegistryError(f"{source}: {label}, field '{name}' {problem}")


def _tenant(source: Path, number: int, entry: Any) -> Tenant:
    if not isinstance(entry, dict):
        raise _error(source, number, None, "key", "is missing: each entry must be a mapping")
    key = entry.get("key")

    def fail(name: str, problem: str) -> TenantRegistryError:
        return _error(source, number, key, name, problem)

    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        raise fail(unknown[0], f"is not known (allowed: {', '.join(sorted(_ENTRY_FIELDS))})")
    if not isinstance(key, str) or not TENANT_KEY.match(key):
        raise fail(
            "key",
            "must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit",
        )
    base_url = entry.get("base_url")
    if not isinstance(base_url, str) or not _plain_http_url(base_url):
        raise fail(
            "base_url",
            "must be an http(s) URL without a user name or password, "
            "e.g. https://api.clustermarket.com/v1",
        )
    auth = entry.get("auth")
    if auth not in AUTH_SECRETS:
        raise fail("auth", f"must be one of {', '.join(AUTH_SECRETS)} (got {auth!r})")
    secrets = _secret_variables(entry.get("secrets"), str(auth), fail)
    optional = {name: entry.get(name) for name in ("token_url", "scopes")}
    for name, value in optional.items():
        if value is not None and not isinstance(value, str):
            raise fail(name, "must be a string")
    max_rps = entry.get("max_rps")
    if max_rps is not None and (not isinstance(max_rps, int | float) or max_rps <= 0):
        raise fail("max_rps", "must be a number above 0 (requests per second)")
    return Tenant(
        key=key,
        base_url=base_url,
        auth=str(auth),
        secret_variables=secrets,
        token_url=optional["token_url"],
        scopes=optional["scopes"],
        max_rps=float(max_rps) if max_rps is not None else None,
    )


def _plain_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def _secret_variables(value: Any, auth: str, fail: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(
            "secrets",
            "must map each secret to the name of the variable holding it, "
            "e.g. {client_id: CALIRA_UNI_A_CLIENT_ID, client_secret: ...}",
        )
    for name, variable in value.items():
        if name not in ALL_SECRET_FIELDS:
            raise fail(f"secrets.{name}", f"is not one of {', '.join(ALL_SECRET_FIELDS)}")
        if not isinstance(variable, str) or not VARIABLE_NAME.match(variable):
            # Never echo the value: a pasted secret is exactly what this check catches.
            raise fail(
                f"secrets.{name}",
                "must be the NAME of an environment variable "
                "(upper-case letters, digits, '_'), never the secret itself",
            )
    for needed in AUTH_SECRETS[auth]:
        if needed not in value:
            raise fail(
                f"secrets.{needed}",
                f"is missing: auth mode {auth} needs {', '.join(AUTH_SECRETS[auth])}",
            )
    extra = sorted(set(value) - set(AUTH_SECRETS[auth]))
    if extra:
        raise fail(f"secrets.{extra[0]}", f"is not used by auth mode {auth}; remove it")
    return dict(value)
