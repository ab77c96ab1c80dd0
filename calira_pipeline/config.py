"""Every CALIRA_* variable, and the only module that reads them from the environment.

Nothing here runs at import time: each function reads the environment when it is called (the CLI,
a run, or the code location as it loads), so tests and callers can pass their own mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# resource field -> environment variable. The wiring binds the set ones as dg.EnvVar, so Dagster
# never stores or displays a secret's value.
API_VARIABLES: dict[str, str] = {
    "base_url": "CALIRA_BASE_URL",
    "token_url": "CALIRA_TOKEN_URL",
    "client_id": "CALIRA_CLIENT_ID",
    "client_secret": "CALIRA_CLIENT_SECRET",
    "refresh_token": "CALIRA_REFRESH_TOKEN",
    "access_token": "CALIRA_ACCESS_TOKEN",
    "token_file": "CALIRA_TOKEN_FILE",
    "scopes": "CALIRA_SCOPES",
    "data_dir": "CALIRA_DATA_DIR",
    "max_rps": "CALIRA_MAX_RPS",
    "pii": "CALIRA_PII",
}
INT_VARIABLES: dict[str, str] = {
    "concurrency": "CALIRA_CONCURRENCY",
    "timeout_s": "CALIRA_TIMEOUT_S",
    "max_retry_wait_s": "CALIRA_MAX_RETRY_WAIT_S",
    "max_runtime_s": "CALIRA_MAX_RUNTIME_S",
}
SANDBOX_VARIABLES: dict[str, str] = {"sandbox_scale": "CALIRA_SANDBOX_SCALE"}
SANDBOX_INT_VARIABLES: dict[str, str] = {"sandbox_seed": "CALIRA_SANDBOX_SEED"}
MART_VARIABLES: dict[str, str] = {
    "operating_hours": "CALIRA_OPERATING_HOURS",
    "default_timezone": "CALIRA_DEFAULT_TIMEZONE",
    "duckdb_memory_limit": "CALIRA_DUCKDB_MEMORY_LIMIT",
}
MART_INT_VARIABLES: dict[str, str] = {"duckdb_threads": "CALIRA_DUCKDB_THREADS"}
DATA_DIR_VARIABLE = "CALIRA_DATA_DIR"
INGEST_RETRIES_VARIABLE = "CALIRA_INGEST_RETRIES"
DAILY_REFRESH_HOUR_VARIABLE = "CALIRA_DAILY_REFRESH_HOUR"
SCHEDULE_TIMEZONE_VARIABLE = "CALIRA_SCHEDULE_TIMEZONE"
VENV_VARIABLE = "CALIRA_VENV"  # tasks.py's; it imports this module before anything is installed
# Scale-out (README "Scale-out"): a YAML tenant registry, and where tenants' tables are shared.
TENANTS_FILE_VARIABLE = "CALIRA_TENANTS_FILE"
STORE_ROOT_VARIABLE = "CALIRA_STORE_ROOT"

# The API client's own settings (`ClientSettings.from_env`): the connection and credentials.
CLIENT_FIELDS = ("base_url", "token_url", "client_id", "client_secret", "refresh_token",
                 "access_token", "token_file", "scopes")  # fmt: skip
DEFAULT_INGEST_RETRIES = 2
DEFAULT_DAILY_REFRESH_HOUR = 2
DEFAULT_SCHEDULE_TIMEZONE = "UTC"
DEFAULT_SANDBOX_SCALE = "demo"


def all_variables() -> list[str]:
    """Every CALIRA_* variable the package reads (the README's table lists each)."""
    maps = (API_VARIABLES, INT_VARIABLES, SANDBOX_VARIABLES, SANDBOX_INT_VARIABLES,
            MART_VARIABLES, MART_INT_VARIABLES)  # fmt: skip
    singles = {INGEST_RETRIES_VARIABLE, DAILY_REFRESH_HOUR_VARIABLE, SCHEDULE_TIMEZONE_VARIABLE,
               VENV_VARIABLE, TENANTS_FILE_VARIABLE, STORE_ROOT_VARIABLE}  # fmt: skip
    return sorted({var for variables in maps for var in variables.values()} | singles)


def calira_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CALIRA_* variables that are set (a blank value counts as unset)."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name.startswith("CALIRA_") and value}


def setting(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    return calira_environment(environ).get(variable)


def set_variables(
    variables: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """{field: variable} for the variables of `variables` that are set."""
    env = calira_environment(environ)
    return {field: var for field, var in variables.items() if var in env}


def api_fields(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The API resource's fields with plain values (for the CLI; the wiring binds dg.EnvVar)."""
    env = calira_environment(environ)
    fields: dict[str, Any] = {f: env[var] for f, var in set_variables(API_VARIABLES, env).items()}
    for field, var in set_variables(INT_VARIABLES, env).items():
        fields[field] = _whole_number(var, env[var])
    return fields


def client_fields(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    fields = api_fields(environ)
    return {field: fields[field] for field in CLIENT_FIELDS if field in fields}


def data_dir_setting(environ: Mapping[str, str] | None = None) -> str | None:
    return setting(DATA_DIR_VARIABLE, environ)


def sandbox_scale(environ: Mapping[str, str] | None = None) -> str:
    return setting(SANDBOX_VARIABLES["sandbox_scale"], environ) or DEFAULT_SANDBOX_SCALE


def operating_hours(environ: Mapping[str, str] | None = None) -> str | None:
    return setting(MART_VARIABLES["operating_hours"], environ)


def ingest_retries(environ: Mapping[str, str] | None = None) -> int:
    """Step retries after the client's own bounded retries are spent (CALIRA_INGEST_RETRIES)."""
    raw = setting(INGEST_RETRIES_VARIABLE, environ) or str(DEFAULT_INGEST_RETRIES)
    try:
        retries = int(raw)
    except ValueError:
        retries = -1
    if not 0 <= retries <= 10:
        raise ValueError(
            f"{INGEST_RETRIES_VARIABLE}={raw!r} is not a whole number from 0 to 10; "
            f"unset it for the default ({DEFAULT_INGEST_RETRIES})"
        )
    return retries


@dataclass(frozen=True)
class ScheduleSettings:
    """When the nightly refresh runs: this local hour of this zone (DST followed)."""

    daily_refresh_hour: int = DEFAULT_DAILY_REFRESH_HOUR
    timezone: str = DEFAULT_SCHEDULE_TIMEZONE


def schedule_settings(environ: Mapping[str, str] | None = None) -> ScheduleSettings:
    raw_hour = setting(DAILY_REFRESH_HOUR_VARIABLE, environ)
    hour = DEFAULT_DAILY_REFRESH_HOUR if raw_hour is None else _whole_number(
        DAILY_REFRESH_HOUR_VARIABLE, raw_hour
    )
    if not 0 <= hour <= 23:
        raise ValueError(
            f"{DAILY_REFRESH_HOUR_VARIABLE}={raw_hour!r} is not an hour from 0 to 23; "
            f"unset it for the default ({DEFAULT_DAILY_REFRESH_HOUR})"
        )
    zone = setting(SCHEDULE_TIMEZONE_VARIABLE, environ) or DEFAULT_SCHEDULE_TIMEZONE
    return ScheduleSettings(daily_refresh_hour=hour, timezone=zone)


def _whole_number(variable: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"{variable}={raw!r} is not a whole number; unset it for the default"
        ) from None


def venv_dir(project_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where tasks.py creates the virtualenv (CALIRA_VENV, default `.venv` in the project)."""
    return Path(setting(VENV_VARIABLE, environ) or project_root / ".venv")


def load_dotenv_file(start: Path | None = None) -> Path | None:
    """Load `.env` from the project root (as `dg dev` does); variables already set win."""
    from dotenv import load_dotenv

    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".env").exists():
            env_file = folder / ".env"
            if env_file.is_file():
                load_dotenv(env_file, override=False)
                return env_file
            return None
    return None


def tenants_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The tenant registry named by CALIRA_TENANTS_FILE, or None (one organisation, as always)."""
    raw = setting(TENANTS_FILE_VARIABLE, environ)
    return Path(raw) if raw else None


def store_root(environ: Mapping[str, str] | None = None) -> str | None:
    """Where tenants' tables are shared: a path or s3://bucket/prefix (CALIRA_STORE_ROOT)."""
    return setting(STORE_ROOT_VARIABLE, environ)


def tenant_secret(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a variable a tenant entry names for one of its secrets (None when unset).

    Read in the run's process only, so the value never enters Dagster config, the UI or logs.
    The registry chooses these names, so they need not start with CALIRA_.
    """
    source = os.environ if environ is None else environ
    return source.get(variable) or None
