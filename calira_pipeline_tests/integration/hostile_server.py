"""A hostile Calira API for issue 17: the sandbox behind ASGI middleware that misbehaves the way
an attacker or a broken proxy would, one ``mode`` at a time, on a real loopback socket.

Every mode but ``benign`` damages the answer in one way; the tests set ``mode`` before a run.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calira_pipeline.sandbox.network_faults import Exchange, buffered_exchange

Mode = Literal[
    "benign",
    "echo_secret",  # the token endpoint's error echoes the client secret past 200 characters
    "markdown_names",  # instrument and lab names that are Markdown images, links and HTML
    "dollar_names",  # names with paired $ (matplotlib mathtext)
    "trickle",  # /v1/bookings sends its body one byte per second
    "endless",  # /v1/bookings keeps sending full pages of new ids past X-Total-Records
    "deep_json",  # /v1/bookings is JSON nested 100,000 deep
    "edge_timestamp",  # a booking starts at 0001-01-01T00:00:00+01:00
    "huge_cost",  # a booking costs "1e400"
    "huge_id",  # a booking id is 2**70
    "huge_id_slim",  # slim booking list items, one with id 2**70
    "huge_expires_in",  # the token endpoint says expires_in is a 400-digit number
    "redirect",  # /v1/bookings answers 302 to another host
]
BOOKINGS = "/v1/bookings"
HUGE_ID = 2**70
BEACON = "![x](http://127.0.0.1:9/pixel)"
MARKDOWN_NAMES = (
    BEACON,
    "[click me](https://evil.example/login)",
    '<img src="http://127.0.0.1:9/pixel.gif">',
    "**bold** `code` | pipe www.evil.example",
)
DOLLAR_NAMES = ("PCR $\\frac$ unit", "Lab $x^2$ and $y$", "_hidden $$ lab")
ECHO_PADDING = "Client authentication failed due to unknown client, no client authentication "


@dataclass
class HostileApi:
    """ASGI middleware in front of ``Sandbox.app``; counts every request by path."""

    app: ASGIApp
    mode: Mode = "benign"
    requests: Counter[str] = field(default_factory=Counter)
    trickled_bytes: int = 0
    _template: dict[str, Any] | None = None

    def reset(self, mode: Mode) -> None:
        self.mode = mode
        self.requests.clear()
        self.trickled_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        self.requests[path] += 1
        body = await _request_body(receive)
        if self.mode == "echo_secret" and path == "/oauth/token":
            form = dict(parse_qsl(body.decode()))
            await _respond(send, Exchange(401, [], _echo(form.get("client_secret", ""))))
            return
        exchange = await _buffered(self.app, scope, body)
        if self.mode == "trickle" and path == BOOKINGS:
            await self._trickle(exchange, receive, send)
            return
        self._damage(path, dict(parse_qsl(scope.get("query_string", b"").decode())), exchange)
        await _respond(send, exchange)

    def _damage(self, path: str, query: dict[str, str], ex: Exchange) -> None:
        mode = self.mode
        if mode in ("markdown_names", "dollar_names") and ex.status == 200:
            names = MARKDOWN_NAMES if mode == "markdown_names" else DOLLAR_NAMES
            if path.startswith(("/v1/equipment", "/v1/accounts")) and "projects" not in path:
                ex.body = _json(_renamed(json.loads(ex.body), names))
        elif mode == "huge_expires_in" and path == "/oauth/token" and ex.status == 200:
            ex.body = _json({**json.loads(ex.body), "expires_in": int("9" * 400)})
        elif path != BOOKINGS or ex.status != 200:
            return
        elif mode == "deep_json":
            ex.body = b"[" * 100_000 + b"]" * 100_000
        elif mode == "redirect":
            ex.status, ex.body = 302, b""
            ex.set_header("Location", "https://user:Pw9xQ4zL7mK2vB8n@elsewhere.example/v1?x=1")
        elif mode == "endless":
            self._endless(query, ex)
        elif mode in ("edge_timestamp", "huge_cost", "huge_id", "huge_id_slim"):
            items = json.loads(ex.body)
            if query.get("page", "1") == "1" and items:
                _poison(mode, items)
            if mode == "huge_id_slim":
                items = [{"id": item["id"], "status": item.get("status")} for item in items]
            ex.body = _json(items)

    def _endless(self, query: dict[str, str], ex: Exchange) -> None:
        items = json.loads(ex.body)
        if items and self._template is None:
            self._template = items[0]
        total = int(ex.header("X-Total-Records") or 0)
        per_page, page = int(ex.header("X-Per-Page") or 100), int(query.get("page", "1"))
        if page <= math.ceil(total / per_page) or self._template is None:
            return
        fresh = [
            {**self._template, "id": 50_000_000 + page * per_page + i} for i in range(per_page)
        ]
        ex.body = _json(fresh)

    async def _trickle(self, ex: Exchange, receive: Receive, send: Send) -> None:
        """Headers at once, then one byte a second until the client hangs up (at most 10 min)."""
        ex.set_header("content-length", str(len(ex.body)))
        await send({"type": "http.response.start", "status": ex.status, "headers": ex.headers})
        gone = asyncio.ensure_future(receive())  # the next message is http.disconnect
        try:
            for index in range(min(len(ex.body), 600)):
                if gone.done():
                    return
                chunk = ex.body[index : index + 1]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.trickled_bytes += 1
                await asyncio.wait({gone}, timeout=1.0)
        except OSError:  # the client hung up mid-send
            return
        finally:
            gone.cancel()


def _echo(secret: str) -> bytes:
    """An error body with ``secret`` starting 30 characters before the 200-character cut."""
    prefix = json.dumps({"error": "invalid_client", "error_description": ""})[:-2]
    padding = (ECHO_PADDING * 3)[: 170 - len(prefix)]
    return json.dumps({"error": "invalid_client", "error_description": padding + secret}).encode()


def _renamed(body: Any, names: tuple[str, ...]) -> Any:
    items = body if isinstance(body, list) else [body]
    for item in items:
        if isinstance(item, dict) and "name" in item:
            item["name"] = names[int(item["id"]) % len(names)]
    return body


def _poison(mode: str, items: list[dict[str, Any]]) -> None:
    if mode == "edge_timestamp":
        items[0]["start_time"] = "0001-01-01T00:00:00+01:00"
    elif mode == "huge_cost":
        items[0]["cost"] = "1e400"
    else:
        items[0]["id"] = HUGE_ID


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _request_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _buffered(app: ASGIApp, scope: Scope, body: bytes) -> Exchange:
    """The app's response to a request whose body was already read (replayed once)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the app never needs a second message
        raise AssertionError("unreachable")

    return await buffered_exchange(app, scope, replay)


async def _respond(send: Send, exchange: Exchange) -> None:
    exchange.set_header("content-length", str(len(exchange.body)))
    if not any(k.lower() == b"content-type" for k, _ in exchange.headers):
        exchange.headers.append((b"content-type", b"application/json"))
    await send(
        {"type": "http.response.start", "status": exchange.status, "headers": exchange.headers}
    )
    await send({"type": "http.response.body", "body": exchange.body})
