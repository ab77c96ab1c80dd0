"""Faults the sandbox cannot inject by itself, as ASGI middleware in front of ``Sandbox.app``,
plus table snapshots and the truth a correct load must equal.

Run as a module it is one "pipeline process" of the refresh-token rotation test:
``python -m calira_pipeline_tests.integration.faults_support rotate BASE_URL TOKEN_FILE SEED N``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import pyarrow.parquet as pq
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import calira_pipeline
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox
from calira_pipeline.storage.schema import RAW_TABLES

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


# -- what the tables hold -------------------------------------------------------------------------

Key = tuple[Any, ...]


@dataclass(frozen=True)
class TableState:
    parquet_sha256: str
    parquet_rows: dict[Key, dict[str, Any]]
    duckdb_rows: dict[Key, dict[str, Any]]
    parquet_count: int  # before keying, so duplicates show
    duckdb_count: int


def _keyed(table: str, rows: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    pk = RAW_TABLES[table].primary_key
    return {tuple(r[c] for c in pk): r for r in rows}


def snapshot(data_dir: Path, tables: Iterable[str] = RAW_TABLES) -> dict[str, TableState]:
    """Raw tables as Parquet and as DuckDB sees them (DuckDB opened read-only)."""
    states: dict[str, TableState] = {}
    with calira_pipeline.connect(data_dir) as con:
        for table in tables:
            path = data_dir / "parquet" / f"{table}.parquet"
            parquet = pq.read_table(path).to_pylist()
            duck = con.execute(f'select * from "{table}"').to_arrow_table().to_pylist()
            states[table] = TableState(
                hashlib.sha256(path.read_bytes()).hexdigest(),
                _keyed(table, parquet),
                _keyed(table, duck),
                len(parquet),
                len(duck),
            )
    return states


def truth_keys(sb: Sandbox) -> dict[str, set[Key]]:
    """Primary keys every raw table must hold for the sandbox as it is now (client credentials,
    so ``current_user`` is empty)."""
    ds = sb.dataset
    projects = [p for ps in ds.projects.values() for p in ps]
    return {
        "accounts": {(a["id"],) for a in ds.accounts},
        "equipment": {(e["id"],) for e in ds.equipment},
        "bookings": {(b["id"],) for b in ds.bookings},
        "projects": {(p["id"],) for p in projects},
        "project_funding_codes": {
            (p["id"], i) for p in projects for i, _ in enumerate(p.get("funding_codes") or [])
        },
        "project_users": {
            (p["id"], u["id"]) for p in projects for u in p.get("selected_users") or []
        },
        "groups": {(g["id"],) for g in ds.groups},
        "group_equipment": {(g["id"], e["id"]) for g in ds.groups for e in g["equipment"]},
        "current_user": set(),
    }


def differences(
    got: dict[Key, dict[str, Any]],
    want: dict[Key, dict[str, Any]],
    ignore: Callable[[str], bool] = lambda column: False,
) -> list[str]:
    """Human-readable row differences between two keyed tables (first few only)."""
    problems = [f"missing {k}" for k in sorted(want.keys() - got.keys(), key=repr)[:3]]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - want.keys(), key=repr)[:3]]
    for key in sorted(want.keys() & got.keys(), key=repr):
        columns = {c for c in want[key] if not ignore(c)}
        changed = sorted(c for c in columns if got[key].get(c) != want[key][c])
        if changed:
            problems.append(
                f"{key}: {changed[0]} {got[key].get(changed[0])!r} != {want[key][changed[0]]!r}"
            )
        if len(problems) > 5:
            break
    return problems


# -- the refresh-token rotation process ---------------------------------------------------------


def _rotate_main(base_url: str, token_file: str, seed: str, rounds: int) -> None:
    from calira_pipeline.api import CaliraClient, ClientSettings

    client = CaliraClient(
        ClientSettings(
            base_url=base_url + "/v1",
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            refresh_token=seed,
            token_file=token_file,
            concurrency=4,
            max_retry_wait_s=30,
        )
    )
    loaded: dict[str, int] = {}
    for _ in range(rounds):
        for collection in ("accounts", "equipment", "bookings", "groups", "current_user"):
            result = client.fetch(collection)
            loaded[collection] = len(result.rows[collection])
    print(json.dumps(loaded), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["rotate"] or len(sys.argv) != 6:
        sys.exit("usage: faults_support rotate BASE_URL TOKEN_FILE SEED ROUNDS")
    _rotate_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))


class Gate:
    """Holds every request until ``opened`` is set, so a run can finish starting up (seconds of
    imports) while the previous run is still being checked; ``arrived`` tells it is waiting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.opened = threading.Event()
        self.arrived = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.arrived.set()
            while not self.opened.is_set():
                await asyncio.sleep(0.002)
        await self.app(scope, receive, send)

    def close(self) -> None:
        self.opened.clear()
        self.arrived.clear()
