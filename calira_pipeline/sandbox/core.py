"""``Sandbox``: one configured fake Calira deployment (data, OAuth, faults, accounting)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
from starlette.types import ASGIApp

from calira_pipeline.sandbox.auth import Grant, TokenAuthority
from calira_pipeline.sandbox.config import (
    ALL_SCOPES,
    SANDBOX_CLIENT_ID,
    ListOrder,
    SandboxConfig,
    resolve_scale,
)
from calira_pipeline.sandbox.data import Dataset, build_dataset
from calira_pipeline.sandbox.faults import FaultInjector, Sleep
from calira_pipeline.sandbox.stats import RequestStats

if TYPE_CHECKING:
    from calira_pipeline.sandbox.app import Handlers

_HOUR = 3600


class Sandbox:
    """A deterministic stand-in for the Calira API, served in-process or on loopback."""

    def __init__(self, config: SandboxConfig | None = None, *,
                 sleep: Sleep = asyncio.sleep,
                 extra_handlers: Mapping[str, Handlers] | None = None) -> None:
        from calira_pipeline.sandbox.app import build_app  # app imports this module for typing

        self.config = config or SandboxConfig()
        self.scale = resolve_scale(self.config.scale)
        self.dataset: Dataset = build_dataset(self.scale, self.config.seed,
                                              self.config.reference_time)
        self.stats = RequestStats()
        self.authority = TokenAuthority(self.config.clients, self.config.token_lifetime_s,
                                        self.config.clock)
        self.faults = FaultInjector(self.config.faults, self.config.clock, sleep)
        self.inserted_booking_ids: list[int] = []
        # Every list's order; the API may change it between two reads (set it to simulate that).
        self.list_order: ListOrder = self.config.list_order
        self._insert_cursor = 0
        # (list, detail) handlers for endpoints registered beyond the built-in ones.
        self.extra_handlers: dict[str, Handlers] = dict(extra_handlers or {})
        self.app: ASGIApp = build_app(self)

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def issue_refresh_token(self, client_id: str = SANDBOX_CLIENT_ID,
                            scopes: frozenset[str] = ALL_SCOPES) -> str:
        """A refresh token as if a user had completed the browser consent step."""
        return self.authority.issue_refresh_token(client_id, frozenset(scopes))

    def issue_access_token(self, client_id: str = SANDBOX_CLIENT_ID,
                           scopes: frozenset[str] = ALL_SCOPES, *,
                           has_owner: bool = True) -> str:
        """A bearer token without any HTTP round trip (handy in tests)."""
        body = self.authority.issue(Grant(client_id, frozenset(scopes), has_owner))
        return str(body["access_token"])

    def insert_head_bookings(self, lab_ids: Sequence[int] | None) -> None:
        """The head-insert fault: new bookings created while a client is paging."""
        self.add_bookings(self.config.faults.head_inserts_per_page, lab_ids)

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token this sandbox has issued (for leak tests)."""
        return list(self.authority.issued)

    def add_bookings(self, count: int, lab_ids: Sequence[int] | None = None) -> list[int]:
        """Create `count` new bookings (newest first in every list); returns their ids."""
        added_before = len(self.inserted_booking_ids)
        if count <= 0 or not self.dataset.equipment:
            return []
        candidates = [i for i, e in enumerate(self.dataset.equipment)
                      if lab_ids is None or e["lab"]["id"] in lab_ids]
        candidates = candidates or list(range(len(self.dataset.equipment)))
        reference = self.dataset.window.reference_ts
        for _ in range(count):
            self._insert_cursor += 1
            n = self._insert_cursor
            equipment = candidates[n % len(candidates)]
            start = reference + 7 * 24 * _HOUR + n * _HOUR
            new_id = self.dataset.bookings.insert_newest(equipment, reference * 1000 + n * 1000,
                                                         start)
            self.inserted_booking_ids.append(new_id)
        return self.inserted_booking_ids[added_before:]

    @contextmanager
    def serve_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Real HTTP on loopback; yields the base URL (the API is under ``/v1``)."""
        from calira_pipeline.sandbox.server import serve_in_thread

        with serve_in_thread(self.app, host, port) as base_url:
            yield base_url
