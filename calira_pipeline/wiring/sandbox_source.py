"""Where the sandbox is plugged in: the in-process sandbox as an API resource, and the choice
between it and the real API (CALIRA_BASE_URL set or not). Nothing else in the product imports
the sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

from calira_pipeline.api import ClientSettings
from calira_pipeline.config import api_fields
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource

# The in-process sandbox answers on a host that can never resolve, so nothing leaves the process.
SANDBOX_BASE_URL = "https://sandbox.calira.invalid/v1"
SANDBOX_SOURCE = "sandbox"


@lru_cache(maxsize=4)
def sandbox_for(scale: str, seed: int) -> Sandbox:
    # Every step process builds the same deterministic data, so steps agree without sharing memory.
    return Sandbox(SandboxConfig(seed=seed, scale=scale))


class SandboxApiResource(CaliraApiResource):
    """The built-in sandbox, in process: the same client, with the sandbox as its transport."""

    sandbox_scale: str = "demo"
    sandbox_seed: int = 0

    @property
    def source(self) -> str:
        return SANDBOX_SOURCE

    def sandbox(self) -> Sandbox:
        return sandbox_for(self.sandbox_scale, self.sandbox_seed)

    def settings(self) -> ClientSettings:
        return ClientSettings(
            base_url=SANDBOX_BASE_URL,
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            concurrency=self.concurrency,
            max_rps=float(self.max_rps) if self.max_rps else None,
            timeout_s=self.timeout_s,
            max_retry_wait_s=self.max_retry_wait_s,
            max_runtime_s=self.max_runtime_s,
        )

    def transport(self) -> httpx.AsyncBaseTransport | None:
        return self.sandbox().transport()


def api_resource_class(environ: Mapping[str, str] | None = None) -> type[CaliraApiResource]:
    """The real API when CALIRA_BASE_URL is set, else the sandbox (the run contract)."""
    return CaliraApiResource if api_fields(environ).get("base_url") else SandboxApiResource


def resource_from_env(environ: Mapping[str, str]) -> CaliraApiResource:
    """The API resource with plain values from CALIRA_* variables (for the CLI, not Dagster)."""
    return api_resource_class(environ)(**api_fields(environ))


def sandbox_resources(
    data_dir: str, scale: str = "demo", seed: int = 0, operating_hours: str | None = None
) -> dict[str, Any]:
    """Every resource for a run against the in-process sandbox (the demo, tests)."""
    from calira_pipeline.wiring.mart_config import MartConfigResource

    return {
        "calira": SandboxApiResource(data_dir=data_dir, sandbox_scale=scale, sandbox_seed=seed),
        "warehouse": WarehouseResource(data_dir=data_dir),
        "mart_config": MartConfigResource(operating_hours=operating_hours),
    }
