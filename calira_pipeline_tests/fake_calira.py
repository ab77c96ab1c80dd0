"""An in-memory fake of the Calira API for ``httpx.MockTransport`` tests (ours and the assets').

It paginates with the real headers, issues and rotates OAuth tokens, serves details, and lets a
test inject faults (``inject``) or mutate the data between pages (``before_page``).
"""

from __future__ import annotations

import asyncio
import itertools
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
    headers = {
        "X-Total-Records": str(total),
        "X-Per-Page": str(per_page),
        "X-Current-Page": str(page),
    }
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
    valid_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    # Records of endpoints registered beyond the built-in ones, by collection name.
    extra: dict[str, Any] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def issue_refresh_token(self) -> str:
        token = f"rt-{next(self._counter)}-secretvalue"
        self.refresh_tokens.add(token)
        return token

    def expire_access_tokens(self) -> None:
        self.valid_tokens.clear()

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
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, json={"error": "invalid_token"}, request=request)
        return self._api(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.token_requests.append(form)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return httpx.Response(401, json={"error": "invalid_client"}, request=request)
        grant = form.get("grant_type")
        payload: Record = {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "created_at": 0,
            "scope": "read_bookings",
        }
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return httpx.Response(400, json={"error": "invalid_grant"}, request=request)
            self.refresh_tokens.discard(form["refresh_token"])  # Doorkeeper rotates
            payload["refresh_token"] = self.issue_refresh_token()
        elif grant == "authorization_code":
            payload["refresh_token"] = self.issue_refresh_token()
        elif grant != "client_credentials":
            return httpx.Response(400, json={"error": "unsupported_grant_type"}, request=request)
        access = f"at-{next(self._counter)}-secretvalue"
        self.valid_tokens.add(access)
        payload["access_token"] = access
        return httpx.Response(200, json=payload, request=request)

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
                page = int(query.get("page", 1))
                if self.before_page is not None:
                    self.before_page(path, page)
                records = self._records(endpoint, match, query)
                per_page = min(int(query.get("per_page", 100)), self.per_page_cap)
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
                body = dict(record)
                if endpoint.name == "projects":
                    body.pop("id")  # the docs' project details have no id
                return httpx.Response(200, content=json.dumps(body), request=request)
        return httpx.Response(404, json={"error": "not_found"}, request=request)


def async_handler(
    handler: Callable[[httpx.Request], httpx.Response],
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    async def wrapped(request: httpx.Request) -> httpx.Response:
        return handler(request)

    return wrapped


def client_for_fake(
    fake: FakeCalira, clock: FakeClock | None = None, *, rng_seed: int = 0, **settings: Any
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
    )
