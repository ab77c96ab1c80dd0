"""Request accounting: counts per route template and status, and peak concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestStats:
    """Counters shared by the in-process transport and the threaded server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_route_status: Counter[tuple[str, int]] = Counter()
        self.in_flight = 0
        self.peak_concurrency = 0

    def count(self, route: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(n for (r, s), n in self.by_route_status.items()
                       if (route is None or r == route) and (status is None or s == status))

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_route_status.clear()
            self.peak_concurrency = self.in_flight

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)

    def finished(self, route: str, status: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self.total += 1
            self.by_route_status[(route, status)] += 1


class AccountingMiddleware:
    """Pure ASGI so that streaming and concurrency are observed exactly."""

    def __init__(self, app: ASGIApp, stats: RequestStats,
                 route_of: Callable[[Scope], str]) -> None:
        self.app = app
        self.stats = stats
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        route = self.route_of(scope)

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.stats.started()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self.stats.finished(route, status)
