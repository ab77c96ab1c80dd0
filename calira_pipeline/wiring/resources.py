"""Thin Dagster resources: configuration shells that hand out a client and the warehouse."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import httpx
from pydantic import Field

from calira_pipeline.api import CaliraClient, ClientSettings, ConfigError
from calira_pipeline.api.settings import display_url
from calira_pipeline.storage import DEFAULT_DATA_DIR, Warehouse

ProgressCallback = Callable[[str, int, int, int], None]


class CaliraApiResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The Calira API at `base_url` (CALIRA_BASE_URL). The sandbox is a subclass the wiring plugs
    in when no API is configured (`wiring/sandbox_source.py`); this class never asks about it."""

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

    @property
    def source(self) -> str:
        """`sandbox`, or the host of the API being read."""
        parts = urlsplit(display_url(self.settings().base_url))  # never a URL's userinfo
        return parts.netloc

    def settings(self) -> ClientSettings:
        if not self.base_url:
            raise ConfigError(
                "CALIRA_BASE_URL is not set: set it to the API base, e.g. "
                "https://api.clustermarket.com/v1 (runs without it use the sandbox)"
            )
        max_rps = float(self.max_rps) if self.max_rps else None
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

    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The network (None); a subclass may answer in process instead."""
        return None

    def _limits(self) -> dict[str, Any]:
        return {
            "timeout_s": self.timeout_s,
            "max_retry_wait_s": self.max_retry_wait_s,
            "max_runtime_s": self.max_runtime_s,
        }

    def client(
        self, logger: logging.Logger | None = None, on_progress: ProgressCallback | None = None
    ) -> CaliraClient:
        return CaliraClient(
            self.settings(),
            transport=self.transport(),
            logger=logger or logging.getLogger("calira_pipeline.api"),
            on_progress=on_progress,
        )


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The data directory (CALIRA_DATA_DIR): Parquet files and the DuckDB file."""

    data_dir: str = DEFAULT_DATA_DIR

    def warehouse(self) -> Warehouse:
        return Warehouse(self.data_dir)
