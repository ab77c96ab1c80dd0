"""Injected misbehaviour: latency, a token-bucket rate limit, 5xx, and damaged responses."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

from calira_pipeline.sandbox.config import FaultConfig

Sleep = Callable[[float], Awaitable[None]]
_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class FaultDraw:
    """What goes wrong with one API request; drawn in full for every request so the random
    stream depends only on request order, never on which knobs are switched on."""

    error_status: int | None
    error_html: bool
    truncate: bool
    drop_headers: bool
    total_delta: int


class FaultInjector:
    def __init__(self, config: FaultConfig, clock: Callable[[], float],
                 sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._rng = random.Random(f"calira-sandbox-faults-{config.seed}")
        self._tokens = float(config.rate_limit_burst)
        self._last_refill: float | None = None
        self._limited = 0

    async def delay(self) -> None:
        if self.config.latency_ms > 0:
            await self.sleep(self.config.latency_ms / 1000)

    def draw(self) -> FaultDraw:
        c, r = self.config, self._rng
        err, status, html = r.random(), r.choice(_ERROR_STATUSES), r.random() < 0.3
        trunc, drop, wrong = r.random(), r.random(), r.random()
        delta = r.choice((-1, 1)) * r.randint(1, 25)
        return FaultDraw(
            error_status=status if err < c.error_rate else None,
            error_html=html,
            truncate=trunc < c.truncated_json_rate,
            drop_headers=drop < c.missing_headers_rate,
            total_delta=delta if wrong < c.wrong_total_rate else 0,
        )

    def rate_limit_wait(self) -> float | None:
        """Seconds until a token is available, or None when this request may proceed."""
        rps = self.config.rate_limit_rps
        if rps is None:
            return None
        now = self.clock()
        if self._last_refill is not None:
            elapsed = max(0.0, now - self._last_refill)
            self._tokens = min(float(self.config.rate_limit_burst), self._tokens + elapsed * rps)
        self._last_refill = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rps

    def retry_after(self, wait_s: float) -> str:
        form: str = self.config.retry_after
        if form == "mixed":
            form = ("seconds", "http-date", "zero")[self._limited % 3]
        self._limited += 1
        seconds = max(1, math.ceil(wait_s))
        if form == "http-date":
            return formatdate(self.clock() + seconds, usegmt=True)
        if form == "zero":
            return "0"
        return str(seconds)
