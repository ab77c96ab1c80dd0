"""Thin Dagster resources: configuration shells that hand out a client and the warehouse."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from calira_pipeline.api import CaliraClient, ClientSettings
from calira_pipeline.api.settings import display_url
from calira_pipeline.config import API_VARIABLES, INT_VARIABLES
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.storage import DEFAULT_DATA_DIR, Warehouse

# The in-process sandbox answers on a host that can never resolve, so nothing leaves the process.
SANDBOX_BASE_URL = "https://sandbox.calira.invalid/v1"
SANDBOX_SOURCE = "sandbox"

ProgressCallback = Callable[[str, int, int, int], None]


@lru_cache(maxsize=4)
def sandbox_for(scale: str, seed: int) -> Sandbox:
    # Every step process builds the same deterministic data, so steps agree without sharing memory.
    return Sandbox(SandboxConfig(seed=seed, scale=scale))


class CaliraApiResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The Calira API when `base_url` is set (CALIRA_BASE_URL), else the built-in sandbox."""

    base_url: str | None = Field(
        default=None, description="API base, e.g. https://api.clustermarket.com/v1"
    )
    token_url: str | None = Field(
        default=None, description="OAuth token URL (defaults from base_url)."
    )
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    token_file: str | None = Field(
        default=None, description="Where rotated refresh tokens are kept."
    )
    scopes: str | None = Field(
        default=None, description="OAuth scopes to request, space-separated (default: the app's)."
    )
    data_dir: str = DEFAULT_DATA_DIR
    concurrency: int = Field(default=8, description="Maximum requests in flight.")
    max_rps: str | None = Field(default=None, description="Client-side requests-per-second cap.")
    pii: str = Field(default="hash", description="Personal data: keep, hash or drop (CALIRA_PII).")
    timeout_s: int = Field(
        default=120, description="Longest one request may take, start to end (CALIRA_TIMEOUT_S)."
    )
    max_retry_wait_s: int = Field(
        default=300,
        description="How long one request may keep failing before the run fails "
        "(CALIRA_MAX_RETRY_WAIT_S).",
    )
    max_runtime_s: int = Field(
        default=4 * 3600,
        description="Longest one collection's fetch may take (CALIRA_MAX_RUNTIME_S).",
    )
    sandbox_scale: str = "demo"
    sandbox_seed: int = 0

    @property
    def source(self) -> str:
        """`sandbox`, or the host of the API being read."""
        if not self.base_url:
            return SANDBOX_SOURCE
        parts = urlsplit(display_url(self.base_url))  # never the userinfo of a URL
        return parts.netloc

    def settings(self) -> ClientSettings:
        max_rps = float(self.max_rps) if self.max_rps else None
        if not self.base_url:
            return ClientSettings(
                base_url=SANDBOX_BASE_URL,
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                concurrency=self.concurrency,
                max_rps=max_rps,
                **self._limits(),
            )
        token_file = self.token_file or str(Path(self.data_dir) / ".calira-token.json")
        return ClientSettings(
            base_url=self.base_url,
            token_url=self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            access_token=self.access_token,
            scopes=self.scopes,
            # The default token file counts once `calira-pipeline auth login` has written it.
            token_file=token_file
            if self.refresh_token or Path(token_file).exists()
            else self.token_file,
            concurrency=self.concurrency,
            max_rps=max_rps,
            **self._limits(),
        )

    def _limits(self) -> dict[str, Any]:
        return {
            "timeout_s": self.timeout_s,
            "max_retry_wait_s": self.max_retry_wait_s,
            "max_runtime_s": self.max_runtime_s,
        }

    def client(
        self, logger: logging.Logger | None = None, on_progress: ProgressCallback | None = None
    ) -> CaliraClient:
        transport = (
            None
            if self.base_url
            else sandbox_for(self.sandbox_scale, self.sandbox_seed).transport()
        )
        return CaliraClient(
            self.settings(),
            transport=transport,
            logger=logger or logging.getLogger("calira_pipeline.api"),
            on_progress=on_progress,
        )


def resource_from_env(environ: Mapping[str, str]) -> CaliraApiResource:
    """The API resource with plain values from CALIRA_* variables (for the CLI, not Dagster)."""
    fields: dict[str, Any] = {
        field: environ[var] for field, var in API_VARIABLES.items() if environ.get(var)
    }
    for field, var in INT_VARIABLES.items():
        if environ.get(var):
            fields[field] = int(environ[var])
    return CaliraApiResource(**fields)


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The data directory (CALIRA_DATA_DIR): Parquet files and the DuckDB file."""

    data_dir: str = DEFAULT_DATA_DIR

    def warehouse(self) -> Warehouse:
        return Warehouse(self.data_dir)


def sandbox_resources(
    data_dir: str, scale: str = "demo", seed: int = 0, operating_hours: str | None = None
) -> dict[str, object]:
    """Every resource for a run against the in-process sandbox (the demo, tests)."""
    from calira_pipeline.wiring.mart_config import MartConfigResource

    return {
        "calira": CaliraApiResource(data_dir=data_dir, sandbox_scale=scale, sandbox_seed=seed),
        "warehouse": WarehouseResource(data_dir=data_dir),
        "mart_config": MartConfigResource(operating_hours=operating_hours),
    }
