"""Network faults: damage the sandbox's app cannot express itself, as ASGI middleware in front of
``Sandbox.app``: dropped connections, stalls, HTML 200 pages, garbled or lying totals, non-UTF-8
bodies, unknown fields and retyped values, and a booking deleted while its list is paged.

The sandbox's own knobs (``FaultConfig``: latency, rate limits, 5xx, truncated bodies, missing
headers, wrong totals) act inside the app; these act on the finished HTTP exchange. Both are the
sandbox's hooks; the integration tests serve ``FaultProxy(sandbox.app, ...)`` on loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calira_pipeline.sandbox.core import Sandbox

FaultKind = Literal[
    "drop",
    "stall",
    "html200",
    "garble_headers",
    "lie_total",
    "non_utf8",
    "unknown_fields",
    "wrong_types",
]
LIST_PATHS = r"^/v1/(accounts|bookings|equipment|groups)$|^/v1/accounts/\d+/projects$"
API_PATHS = r"^/v1/"
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Access gateway</title></head>"
    b"<body><h1>Please wait while we check your browser</h1></body></html>"
)


class ConnectionDropped(Exception):
    """Raised mid-response so uvicorn closes the socket: the client sees the body cut off."""


@dataclass
class Injection:
    """One kind of damage, applied to a fraction ``rate`` of the requests whose path matches."""

    kind: FaultKind
    rate: float = 1.0
    path: str = API_PATHS
    stall_s: float = 2.0
    extra_fields: int = 0
    total_delta: int = 0  # lie_total: added to X-Total-Records (0: a random +-1..25)
    min_page: int = 1  # only list pages from this one on


@dataclass
class Exchange:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None

    def set_header(self, name: str, value: str | None) -> None:
        key = name.lower().encode()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != key]
        if value is not None:
            self.headers.append((key, value.encode("latin-1")))


@dataclass
class FaultProxy:
    """Buffers the sandbox's response, then damages it (or the connection) as configured.

    Draws a random number only for requests an injection applies to (path and page), so how many
    requests are damaged depends on the seed and on how many requests match, not on how the
    concurrent fetches of different collections interleave.
    """

    app: ASGIApp
    injections: list[Injection] = field(default_factory=list)
    seed: int = 0
    clamp_per_page: int | None = None
    requests: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    issued_refresh_tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults-support-{self.seed}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        path: str = scope["path"]
        page = int(dict(parse_qsl(scope.get("query_string", b"").decode())).get("page", 1))
        chosen = {
            inj.kind: inj
            for inj in self.injections
            if re.search(inj.path, path) and page >= inj.min_page and self._rng.random() < inj.rate
        }
        for kind in chosen:
            self.hits[kind] = self.hits.get(kind, 0) + 1
        if self.clamp_per_page is not None:
            scope = self._clamped(scope)
        if "stall" in chosen:
            await asyncio.sleep(chosen["stall"].stall_s)  # the server hangs, not the test
        exchange = await buffered_exchange(self.app, scope, receive)
        if path == "/oauth/token" and exchange.status == 200:
            token = json.loads(exchange.body).get("refresh_token")
            if token:
                self.issued_refresh_tokens.append(token)
        for kind, injection in chosen.items():
            _damage(kind, injection, path, exchange, self._rng)
        exchange.set_header("content-length", str(len(exchange.body)))
        await send(
            {"type": "http.response.start", "status": exchange.status, "headers": exchange.headers}
        )
        if "drop" in chosen:
            await send(
                {
                    "type": "http.response.body",
                    "body": exchange.body[: len(exchange.body) // 2],
                    "more_body": True,
                }
            )
            raise ConnectionDropped(f"dropped {path} mid-body on purpose")
        await send({"type": "http.response.body", "body": exchange.body})

    def _clamped(self, scope: Scope) -> Scope:
        assert self.clamp_per_page is not None
        query = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
        rewritten = [
            (k, str(min(int(v), self.clamp_per_page)) if k == "per_page" else v) for k, v in query
        ]
        return {**scope, "query_string": urlencode(rewritten).encode()}


async def buffered_exchange(app: ASGIApp, scope: Scope, receive: Receive) -> Exchange:
    """Run `app` for one request and collect its whole response."""
    exchange = Exchange(500, [], b"")
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.status = int(message["status"])
            exchange.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    exchange.body = b"".join(chunks)
    return exchange


def _damage(
    kind: FaultKind, injection: Injection, path: str, ex: Exchange, rng: random.Random
) -> None:
    if kind == "html200":
        ex.status, ex.body = 200, HTML_PAGE
        ex.set_header("content-type", "text/html; charset=utf-8")
    elif kind == "garble_headers" and ex.header("X-Total-Records") is not None:
        ex.set_header("X-Total-Records", f"{ex.header('X-Total-Records')}, 0x1F")
    elif kind == "lie_total" and ex.header("X-Total-Records") is not None:
        delta = injection.total_delta or rng.choice((-1, 1)) * rng.randint(1, 25)
        ex.set_header(
            "X-Total-Records", str(max(0, int(ex.header("X-Total-Records") or 0) + delta))
        )
    elif kind == "non_utf8":
        # A Latin-1 "é" inside the first string value: valid JSON shape, invalid UTF-8.
        at = ex.body.find(b'"', ex.body.find(b":")) + 1
        ex.body = ex.body[:at] + b"\xe9" + ex.body[at:]
    elif kind in ("unknown_fields", "wrong_types") and ex.status == 200:
        body = json.loads(ex.body)
        items = body if isinstance(body, list) else [body]
        for item in items:
            if kind == "unknown_fields":
                item.update(unknown_fields(injection.extra_fields, item["id"]))
            elif path.startswith("/v1/bookings"):
                retype_booking(item)
        ex.body = json.dumps(body, separators=(",", ":")).encode()


def unknown_fields(count: int, record_id: Any) -> dict[str, Any]:
    return {f"x_future_field_{i:02d}": {"n": i, "of": record_id} for i in range(count)}


OVERRIDDEN_COST = 12


def retype_booking(item: dict[str, Any]) -> None:
    """``"id": 7`` -> ``"7"``; ``"cost": "150.00"`` -> ``150`` (a number); one cost -> ``12``."""
    cost = Decimal(item["cost"])
    item["cost"] = int(cost) if cost == cost.to_integral_value() else float(cost)
    if item["id"] % 10 == 7:
        item["cost"] = OVERRIDDEN_COST
    item["id"] = str(item["id"])


@dataclass
class DeleteDuringPaging:
    """Deletes one booking right after the ``after_pages``-th ``GET /v1/bookings`` page is served:
    later pages shift up by one, the total drops and the detail endpoint answers 404."""

    app: ASGIApp
    sandbox: Sandbox
    victim_rank: int = 5  # the victim is the (rank+1)-th newest booking: on page 1
    after_pages: int = 1
    pages_served: int = 0
    victim_id: int = 0
    deleted: bool = False
    detail_404s: int = 0

    def __post_init__(self) -> None:
        store = self.sandbox.dataset.bookings
        self.victim_id = int(store.detail(len(store) - 1 - self.victim_rank)["id"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/bookings"):
            await self.app(scope, receive, send)
            return
        exchange = await buffered_exchange(self.app, scope, receive)
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        if path == "/v1/bookings" and exchange.status == 200:
            assert "provider_account" not in query, "the victim list is the unscoped one"
            if self.deleted:
                self._page_without_victim(query, exchange)
            self.pages_served += 1
            self.deleted = self.deleted or self.pages_served >= self.after_pages
        elif self.deleted and path == f"/v1/bookings/{self.victim_id}":
            self.detail_404s += 1
            exchange.status = 404
            exchange.body = json.dumps(
                {
                    "error": "not_found",
                    "error_description": f"Couldn't find Booking with 'id'={self.victim_id}",
                }
            ).encode()
        exchange.set_header("content-length", str(len(exchange.body)))
        await send(
            {"type": "http.response.start", "status": exchange.status, "headers": exchange.headers}
        )
        await send({"type": "http.response.body", "body": exchange.body})

    def _page_without_victim(self, query: dict[str, str], exchange: Exchange) -> None:
        store = self.sandbox.dataset.bookings
        slim = self.sandbox.config.list_shape == "slim"
        newest_first = [
            p for p in range(len(store) - 1, -1, -1) if p != len(store) - 1 - self.victim_rank
        ]
        per_page = min(int(query.get("per_page", 100)), 100)
        first = (int(query.get("page", 1)) - 1) * per_page
        window = newest_first[first : first + per_page]
        items = [store.slim(p, "equipment_id") if slim else store.detail(p) for p in window]
        exchange.body = json.dumps(items, separators=(",", ":")).encode()
        exchange.set_header("X-Total-Records", str(len(newest_first)))
