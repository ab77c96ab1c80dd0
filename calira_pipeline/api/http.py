"""Sending one request reliably: timeouts, bounded retries, pacing and a concurrency bound."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx

from .errors import ApiError, safe_excerpt
from .ratelimit import AdaptiveRateLimiter, Clock, Sleep
from .results import FetchStats
from .settings import display_url

T = TypeVar("T")
RequestFactory = Callable[[], Awaitable[httpx.Request]]

_BACKOFF_BASE_S = 0.5
# Transport failure -> (retry cause in FetchStats, how a message describes it).
_TRANSPORT_FAILURES = {
    "timeout": ("timeout", "timeout error"),
    "deadline": ("timeout", "timeout error: no complete response"),
    "connect": ("connect", "connect error"),
}
_BACKOFF_CAP_S = 60.0


def describe(request: httpx.Request) -> str:
    """``GET /v1/bookings?page=3`` — method plus path with query, never headers."""
    return f"{request.method} {request.url.raw_path.decode('ascii', 'replace')}"


def body_excerpt(response: httpx.Response, secrets: list[str], limit: int = 200) -> str:
    """The start of a response body for a message, secrets redacted before it is cut."""
    return safe_excerpt(response.content, secrets, limit, empty="(empty body)")


def redirect_error(request: httpx.Request, response: httpx.Response) -> ApiError | None:
    """An error for a 3xx answer, which is never followed: it could carry the token elsewhere."""
    if not 300 <= response.status_code < 400:
        return None
    location = response.headers.get("Location", "")
    target = display_url(str(request.url.join(location))) if location else "nowhere"
    return ApiError(
        f"{describe(request)} was redirected (HTTP {response.status_code}) to "
        f"{safe_excerpt(target, (), 120)!r}, and redirects are never followed because they could "
        "carry the token to another host. Check CALIRA_BASE_URL / CALIRA_TOKEN_URL: set them to "
        "the address the API answers on directly (https, no trailing redirect).",
        status=response.status_code,
    )


def parse_retry_after(response: httpx.Response, wall_now: Callable[[], float]) -> float | None:
    """Seconds to wait per ``Retry-After`` (delta or HTTP date); None when absent/0/garbage."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(int(value))
        return seconds if seconds > 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    # Measure against the server's own Date header when present, so clock skew cancels out.
    base = wall_now()
    date_header = response.headers.get("Date")
    if date_header:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            base = email.utils.parsedate_to_datetime(date_header).timestamp()
    seconds = when.timestamp() - base
    return seconds if seconds > 0 else None


class RetryingSender:
    """Sends requests through a shared client with retries on 429, 5xx, timeouts and resets."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        concurrency: int,
        max_retry_wait_s: float,
        deadline_s: float,
        limiter: AdaptiveRateLimiter,
        stats: FetchStats,
        sleep: Sleep,
        clock: Clock,
        wall_clock: Callable[[], float],
        rng: random.Random,
        logger: logging.Logger,
        secrets: list[str],
        semaphore: asyncio.Semaphore | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.stats = stats
        # Shared by every collection of one concurrent fetch: one budget of requests in flight.
        self.semaphore = semaphore if semaphore is not None else asyncio.Semaphore(concurrency)
        self.max_retry_wait_s = max_retry_wait_s
        self.deadline_s = deadline_s
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._logger = logger
        self._secrets = secrets

    def _backoff(self, attempt: int) -> float:
        ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2.0**attempt)
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def _send_once(
        self, request: httpx.Request | RequestFactory, bounded: bool
    ) -> tuple[httpx.Request, httpx.Response | str, float]:
        """The request as sent plus its response, or the retry cause of a transport failure."""
        async with self.semaphore if bounded else contextlib.nullcontext():
            await self.limiter.acquire()
            # Built only now: a request queued behind the semaphore must not carry a token
            # that expired while it waited.
            if not isinstance(request, httpx.Request):
                request = await request()
            self.stats.requests += 1
            sent_at = self._clock()
            try:
                # The per-read timeout never trips on a server trickling a byte at a time; this
                # bounds the whole exchange (connect, send, every read of the body).
                async with asyncio.timeout(self.deadline_s):
                    response = await self.client.send(request)
            except httpx.TimeoutException:
                return request, "timeout", sent_at
            except TimeoutError:
                return request, "deadline", sent_at
            except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError):
                return request, "connect", sent_at
            except httpx.HTTPError as exc:
                raise ApiError(
                    f"{describe(request)} could not be sent ({type(exc).__name__}); check "
                    "CALIRA_BASE_URL / CALIRA_TOKEN_URL."
                ) from None
        self.stats.bytes_received += len(response.content)
        # Let a request waiting for the slot just freed go out before this response's body is
        # decoded and parsed (milliseconds of CPU), so that CPU overlaps with its network wait.
        await asyncio.sleep(0)
        return request, response, sent_at

    async def send(
        self, request: httpx.Request | RequestFactory, *, bounded: bool = True
    ) -> httpx.Response:
        """Return the first response that is neither 429 nor 5xx (any other status included).

        A factory is called per attempt, so a retry after a long wait carries a fresh token.
        ``bounded=False`` skips the concurrency bound: token requests must not wait for slots
        held by the very requests that are waiting for the token.
        """
        waited = 0.0
        attempt = 0
        while True:
            current, outcome, sent_at = await self._send_once(request, bounded)
            delay: float | None = None
            if isinstance(outcome, str):
                cause, detail = _TRANSPORT_FAILURES[outcome]
                if cause == "timeout":  # the time a timed-out attempt took counts as waiting
                    waited += self._clock() - sent_at
                if outcome == "deadline":
                    detail += f" within timeout_s={self.deadline_s:g} (CALIRA_TIMEOUT_S)"
            elif outcome.status_code == 429:
                cause, detail = "429", "HTTP 429"
                self.stats.rate_limited += 1
                delay = parse_retry_after(outcome, self._wall_clock)
                self.limiter.on_rate_limited(sent_at)
            elif outcome.status_code >= 500:
                cause, detail = "5xx", f"HTTP {outcome.status_code}"
            else:
                self.limiter.on_success()
                return outcome
            delay = delay if delay is not None else self._backoff(attempt)
            if waited + delay > self.max_retry_wait_s:
                raise self._exhausted(current, outcome, detail, waited)
            self.stats.retries_by_cause[cause] += 1
            self._logger.info(
                "calira: %s got %s; retry %d in %.2fs",
                describe(current),
                detail,
                attempt + 1,
                delay,
            )
            await self._sleep(delay)
            waited += delay
            attempt += 1

    async def back_off(self, attempt: int, cause: str, where: str, detail: str) -> None:
        """Count and wait out a retry decided above the sender (a damaged 2xx body)."""
        delay = self._backoff(attempt)
        self.stats.retries_by_cause[cause] = self.stats.retries_by_cause.get(cause, 0) + 1
        self._logger.info("calira: %s got %s; retry %d in %.2fs", where, detail, attempt + 1, delay)
        await self._sleep(delay)

    def _exhausted(
        self, request: httpx.Request, outcome: httpx.Response | str, detail: str, waited: float
    ) -> ApiError:
        status = None if isinstance(outcome, str) else outcome.status_code
        excerpt = "" if isinstance(outcome, str) else f": {body_excerpt(outcome, self._secrets)}"
        return ApiError(
            f"{describe(request)} still failing with {detail}{excerpt} after {waited:.0f}s of "
            f"retries (max_retry_wait_s={self.max_retry_wait_s:g}). The API is down, too slow or "
            "limiting us; try again later, lower concurrency/max_rps, or raise "
            "CALIRA_MAX_RETRY_WAIT_S / CALIRA_TIMEOUT_S.",
            status=status,
        )


async def run_all(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently (the sender's semaphore bounds real I/O); cancel the rest on failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
