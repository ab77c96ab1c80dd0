"""Every CALIRA_* variable the pipeline reads, in one place (the README documents each)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# resource field -> environment variable; secrets are passed as dg.EnvVar so Dagster never
# stores or displays their values.
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
    "sandbox_scale": "CALIRA_SANDBOX_SCALE",
    "pii": "CALIRA_PII",
}
MART_VARIABLES: dict[str, str] = {
    "operating_hours": "CALIRA_OPERATING_HOURS",
    "default_timezone": "CALIRA_DEFAULT_TIMEZONE",
    "duckdb_memory_limit": "CALIRA_DUCKDB_MEMORY_LIMIT",
}
MART_INT_VARIABLES: dict[str, str] = {
    "duckdb_threads": "CALIRA_DUCKDB_THREADS",
}
INT_VARIABLES: dict[str, str] = {
    "concurrency": "CALIRA_CONCURRENCY",
    "sandbox_seed": "CALIRA_SANDBOX_SEED",
    "timeout_s": "CALIRA_TIMEOUT_S",
    "max_retry_wait_s": "CALIRA_MAX_RETRY_WAIT_S",
    "max_runtime_s": "CALIRA_MAX_RUNTIME_S",
}


# Read when the code location loads (a RetryPolicy is part of the definitions).
INGEST_RETRIES_VARIABLE = "CALIRA_INGEST_RETRIES"
DEFAULT_INGEST_RETRIES = 2


def ingest_retries() -> int:
    """Step retries after the client's own bounded retries are spent (CALIRA_INGEST_RETRIES)."""
    raw = os.environ.get(INGEST_RETRIES_VARIABLE) or str(DEFAULT_INGEST_RETRIES)
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


def env_bound_fields(
    variables: Mapping[str, str], ints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Bind each resource field to its variable when the variable is set (and non-empty).

    Unset variables keep the field's default, so one code path serves the sandbox and the real API.
    """
    import dagster as dg  # here, so the CLI's `.env` loading does not pay for importing Dagster
    bound: dict[str, Any] = {
        field: dg.EnvVar(var) for field, var in variables.items() if os.environ.get(var)
    }
    for field, var in (ints or {}).items():
        if os.environ.get(var):
            bound[field] = dg.EnvVar.int(var)
    return bound
