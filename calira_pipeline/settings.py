"""Every CALIRA_* variable the pipeline reads, in one place (the README documents each)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

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
}
INT_VARIABLES: dict[str, str] = {
    "concurrency": "CALIRA_CONCURRENCY",
    "sandbox_seed": "CALIRA_SANDBOX_SEED",
    "timeout_s": "CALIRA_TIMEOUT_S",
    "max_retry_wait_s": "CALIRA_MAX_RETRY_WAIT_S",
    "max_runtime_s": "CALIRA_MAX_RUNTIME_S",
}


def env_bound_fields(
    variables: Mapping[str, str], ints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Bind each resource field to its variable when the variable is set (and non-empty).

    Unset variables keep the field's default, so one code path serves the sandbox and the real API.
    """
    bound: dict[str, Any] = {
        field: dg.EnvVar(var) for field, var in variables.items() if os.environ.get(var)
    }
    for field, var in (ints or {}).items():
        if os.environ.get(var):
            bound[field] = dg.EnvVar.int(var)
    return bound
