"""An in-memory fake of the Calira API for ``httpx.MockTransport`` tests (ours and the assets').

It serves hand-written records, routed by the endpoint registry, and lets a test inject faults
(``inject``) or mutate the data between pages (``before_page``). What the API does is the
sandbox's own code: OAuth (issue, rotation, revocation: ``sandbox.auth.TokenAuthority``), header
pagination (``sandbox.views.page_request``/``page_headers``) and the detail views.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from calira_pipeline.api.client import CaliraClient
from calira_pipeline.api.endpoints import ENDPOINTS, Endpoint
from calira_pipeline.api.settings import ClientSettings
from calira_pipeline.sandbox.auth import Grant, TokenAuthority
from calira_pipeline.sandbox.config import ALL_SCOPES, ClientApp
from calira_pipeline.sandbox.views import page_headers, page_request, project_detail

Record = dict[str, Any]
Injector = Callable[[httpx.Request], httpx.Response | None]
PageHook = Callable[[str, int], None]


@dataclass
class FakeClock:
    """A clock plus a sleep that advances it instead of waiting."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def page_response(
    request: httpx.Request, items: list[Record], total: int, per_page: int, page: int
) -> httpx.Response:
    headers = page_headers(total, page, per_page)
    return httpx.Response(200, json=items, headers=headers, request=request)


@dataclass
class FakeCalira:
    accounts: list[Record] = field(default_factory=list)
    equipment: dict[int, list[Record]] = field(default_factory=dict)  # lab id -> newest first
    bookings: list[Record] = field(default_factory=list)
    projects: dict[int, list[Record]] = field(default_factory=dict)
    groups: dict[int, list[Record]] = field(default_factory=dict)
    me: Record | None = None
    base_url: str = "https://api.calira.test/v1"
    token_url: str = "https://app.calira.test/oauth/token"
    client_id: str = "cid"
    client_secret: str = "csecret-123456"
    expires_in: int = 3600
    per_page_cap: int = 100
    slim: Callable[[str, Record], Record] | None = None  # list-item view of a full record
    inject: Injector | None = None
    before_page: PageHook | None = None
    shuffle: random.Random | None = None  # yields a random number of times to reorder requests
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    # Records of endpoints registered beyond the built-in ones, by collection name.
    extra: dict[str, Any] = field(default_factory=dict)
    authority: TokenAuthority = field(init=False)

    def __post_init__(self) -> None:
        # Server time stands still: a token dies only when a test revokes it (or never).
        clients = {self.client_id: ClientApp(self.client_secret)}
        self.authority = TokenAuthority(clients, self.expires_in, clock=lambda: 0.0)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def valid_tokens(self) -> frozenset[str]:
        return self.authority.live_access_tokens()

    @property
    def refresh_tokens(self) -> frozenset[str]:
        return self.authority.live_refresh_tokens()

    def issue_refresh_token(self) -> str:
        return self.authority.issue_refresh_token(self.client_id, ALL_SCOPES)

    def accept_access_token(self, token: str) -> None:
        self.authority.accept_access_token(token, Grant(self.client_id, ALL_SCOPES, False))

    def expire_access_tokens(self) -> None:
        self.authority.revoke_access_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.authority.revoke_refresh_tokens()

    def count(self, path_pattern: str) -> int:
        return sum(1 for r in self.requests if re.fullmatch(path_pattern, r.url.path))

    @property
    def sync_transport(self) -> httpx.MockTransport:
        """For sync clients (the login's code exchange); no request reordering."""
        return httpx.MockTransport(self.handle_now)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.shuffle is not None:
            for _ in range(self.shuffle.randint(0, 6)):
                await asyncio.sleep(0)
        return self.handle_now(request)

    def handle_now(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.inject is not None:
            injected = self.inject(request)
            if injected is not None:
                return injected
        if str(request.url.copy_with(query=None)) == self.token_url:
            return self._token(request)
        if self.authority.check(request.headers.get("Authorization")) is None:
            return httpx.Response(401, json={"error": "invalid_token"}, request=request)
        return self._api(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.token_requests.append(form)
        if form.get("grant_type") == "authorization_code":
            # The browser step happened: the code the login brought back was approved.
            grant = Grant(self.client_id, ALL_SCOPES, has_owner=True)
            self.authority.approve_code(form.get("code", ""), grant, form.get("redirect_uri", ""))
        self.authority.lifetime_s = self.expires_in  # a test may shorten it between requests
        status, body = self.authority.token_answer(request.headers, form)
        return httpx.Response(status, json=body, request=request)

    def _store(self, endpoint: Endpoint) -> Any:
        """The records of `endpoint`: a list, a dict of lists per account, or one object."""
        if endpoint.name in self.extra:
            return self.extra[endpoint.name]
        return self.me if endpoint.fan_out == "single" else getattr(self, endpoint.name)

    def _records(self, endpoint: Endpoint, match: re.Match[str], query: Record) -> list[Record]:
        store = self._store(endpoint)
        if not isinstance(store, dict):
            return list(store or [])
        account = match.group(1) if match.groups() else query.get(endpoint.account_param or "", 0)
        return list(store.get(int(account), []))

    def _api(self, request: httpx.Request) -> httpx.Response:
        # Routes come from the pipeline's endpoint registry, as the sandbox's do.
        path = request.url.path.removeprefix(httpx.URL(self.base_url).path)
        query = {k: v for k, v in request.url.params.items()}
        for endpoint in ENDPOINTS.values():
            pattern = re.escape(endpoint.path).replace(re.escape("{account}"), r"(\d+)")
            if endpoint.fan_out == "single" and path == endpoint.path:
                body = self._store(endpoint)
                if body is None:
                    return httpx.Response(404, json={"error": "not_found"}, request=request)
                return httpx.Response(200, json=body, request=request)
            match = re.fullmatch(pattern, path)
            if match and endpoint.fan_out != "single":
                page, per_page = page_request(query, self.per_page_cap)
                if self.before_page is not None:
                    self.before_page(path, page)
                records = self._records(endpoint, match, query)
                items = records[(page - 1) * per_page : page * per_page]
                view = [self.slim(endpoint.name, r) if self.slim else r for r in items]
                return page_response(request, view, len(records), per_page, page)
            detail = re.fullmatch(pattern + r"/(\d+)", path)
            if detail and endpoint.fan_out != "single":
                return self._detail(request, endpoint, detail.groups()[-1])
        return httpx.Response(404, json={"error": "not_found"}, request=request)

    def _detail(self, request: httpx.Request, endpoint: Endpoint, record_id: str) -> httpx.Response:
        store = self._store(endpoint)
        records = [r for rs in store.values() for r in rs] if isinstance(store, dict) else store
        for record in records or []:
            if str(record["id"]) == record_id:
                body = project_detail(record) if endpoint.name == "projects" else record
                return httpx.Response(200, content=json.dumps(body), request=request)
        return httpx.Response(404, json={"error": "not_found"}, request=request)


def async_handler(
    handler: Callable[[httpx.Request], httpx.Response],
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    async def wrapped(request: httpx.Request) -> httpx.Response:
        return handler(request)

    return wrapped


def client_for_fake(
    fake: FakeCalira,
    clock: FakeClock | None = None,
    *,
    rng_seed: int = 0,
    on_progress: Callable[[str, int, int, int], None] | None = None,
    **settings: Any,
) -> CaliraClient:
    """A client wired to `fake` through its MockTransport, on `clock` (nothing really sleeps)."""
    clock = clock or FakeClock()
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "token_url": fake.token_url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        **settings,
    }
    return CaliraClient(
        ClientSettings(**values),
        transport=fake.transport,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(rng_seed),
        on_progress=on_progress,
    )
