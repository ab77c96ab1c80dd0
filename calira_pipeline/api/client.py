"""``CaliraClient``: fetch one collection as schema rows (async inside, sync facade outside)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from calira_pipeline.api.endpoints import COLLECTION_TABLES

from .auth import TokenProvider, TokenState
from .errors import ConfigError, RuntimeExceededError
from .fetching import CollectionFetcher, ProgressCallback, Sinks
from .http import RetryingSender
from .incremental import IncrementalBookings, Rows
from .ratelimit import AdaptiveRateLimiter, Clock, Sleep
from .results import CollectionResult, FetchStats
from .session import ApiSession
from .settings import ClientSettings

T = TypeVar("T")


@dataclass
class StreamingResults:
    """What a concurrent fetch returns: a result or an error per collection."""

    results: dict[str, CollectionResult] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)


class CaliraClient:
    """Reads Calira collections. Reuse one client so access tokens are reused across fetches."""

    def __init__(
        self,
        settings: ClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.auth_mode = settings.auth_mode  # fail fast on missing/contradictory credentials
        self.settings = settings
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._logger = logger if logger is not None else logging.getLogger("calira_pipeline.api")
        self._on_progress = on_progress
        self._tokens = TokenState()
        self._secrets = settings.secret_values()
        # Token expiry is wall-clock (it is shared through the token file) but must follow the
        # injected clock in tests, so wall time is derived from it.
        wall_base, clock_base = time.time(), clock()
        self._wall: Clock = lambda: wall_base + (self._clock() - clock_base)

    def __repr__(self) -> str:
        return f"CaliraClient(base_url={self.settings.base_url!r}, auth_mode={self.auth_mode!r})"

    def fetch(self, collection: str, account_ids: Sequence[int] | None = None) -> CollectionResult:
        """Synchronous ``afetch``; runs in a worker thread if an event loop is already running."""
        return _run_sync(lambda: self.afetch(collection, account_ids))

    async def afetch(
        self, collection: str, account_ids: Sequence[int] | None = None
    ) -> CollectionResult:
        if collection not in COLLECTION_TABLES:
            raise ConfigError(
                f"Unknown collection {collection!r}; choose one of {sorted(COLLECTION_TABLES)}."
            )

        async def into_lists(fetcher: CollectionFetcher) -> tuple[Rows, int | None]:
            rows: Rows = {table: [] for table in COLLECTION_TABLES[collection]}
            _, api_total = await fetcher.fetch(collection, account_ids, rows)
            return rows, api_total

        return await self._run(collection, into_lists)

    def fetch_streaming(self, sinks: Mapping[str, Sinks]) -> StreamingResults:
        """Synchronous ``afetch_streaming``."""
        return _run_sync(lambda: self.afetch_streaming(sinks))

    async def afetch_streaming(self, sinks: Mapping[str, Sinks]) -> StreamingResults:
        """Fetch every collection in `sinks` at the same time, parsing rows into its sinks.

        All collections share one HTTP connection pool, one budget of ``concurrency`` requests
        in flight and one rate limiter, so a group fetch asks no more of the API than one
        collection would; each collection keeps its own stats, warnings and progress. The
        results carry no rows (they went to the sinks). A collection that fails does not stop
        the others: its exception is returned in ``errors``.
        """
        unknown = sorted(set(sinks) - set(COLLECTION_TABLES))
        if unknown:
            raise ConfigError(
                f"Unknown collection(s) {unknown}; choose from {sorted(COLLECTION_TABLES)}."
            )
        started = self._clock()
        async with self._http() as http:
            semaphore = asyncio.Semaphore(self.settings.concurrency)
            limiter = AdaptiveRateLimiter(self.settings.max_rps, self._clock, self._sleep)

            async def one(collection: str) -> CollectionResult | Exception:
                try:
                    return await fetch_one(collection)
                except Exception as error:  # reported per collection; the others go on
                    return error

            async def fetch_one(collection: str) -> CollectionResult:
                stats = FetchStats()
                fetcher = self._fetcher(http, stats, collection, semaphore, limiter)
                _, api_total = await fetcher.fetch(collection, None, sinks[collection])
                stats.wall_time_s = self._clock() - started
                stats.records = len(sinks[collection][COLLECTION_TABLES[collection][0]])
                return CollectionResult(
                    collection=collection,
                    rows={},
                    api_total=api_total,
                    stats=stats,
                    unknown_fields=dict(fetcher.unknown.counts),
                    warnings=fetcher.warnings,
                )

            budget = asyncio.timeout(self.settings.max_runtime_s)
            try:
                async with budget:
                    outcomes = await asyncio.gather(*(one(c) for c in sinks))
            except TimeoutError:
                if not budget.expired():
                    raise
                raise RuntimeExceededError(
                    f"Fetching {', '.join(sinks)} took longer than max_runtime_s="
                    f"{self.settings.max_runtime_s:g}s (CALIRA_MAX_RUNTIME_S), so it was stopped "
                    "and nothing was stored. The API is very slow or never stops sending pages; "
                    "try again later, or raise CALIRA_MAX_RUNTIME_S if the data is that large."
                ) from None
        done = StreamingResults()
        for collection, outcome in zip(sinks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                done.errors[collection] = outcome
            else:
                done.results[collection] = outcome
        return done

    def _http(self) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=self.settings.concurrency,
            max_keepalive_connections=self.settings.concurrency,
        )
        timeout = httpx.Timeout(min(self.settings.read_timeout_s, self.settings.timeout_s))
        return httpx.AsyncClient(transport=self._transport, timeout=timeout, limits=limits)

    def fetch_bookings_incremental(
        self,
        is_unchanged: Callable[[dict[str, Any]], bool],
        overlap_pages: int = 1,
        known_ids: Collection[int] | None = None,
    ) -> CollectionResult:
        """Synchronous ``afetch_bookings_incremental``."""
        return _run_sync(
            lambda: self.afetch_bookings_incremental(is_unchanged, overlap_pages, known_ids)
        )

    async def afetch_bookings_incremental(
        self,
        is_unchanged: Callable[[dict[str, Any]], bool],
        overlap_pages: int = 1,
        known_ids: Collection[int] | None = None,
    ) -> CollectionResult:
        """Only the bookings that are new or changed, read from the list's newest end.

        ``is_unchanged(row)`` gets each list item as a schema row (a slim list item leaves the
        columns it lacks None) and answers True when the stored booking already has those
        values. Page 1 and the last page tell which end is newest; the walk goes from there and
        stops after the first page with nothing new plus ``overlap_pages`` more, or at the other
        end; an order it cannot tell means every page is read. With ``known_ids`` (the stored
        bookings' ids) a walk that stopped early while the count shows an unread record is not
        stored reads the rest. Returned rows are complete (slim items are merged with their
        details); ``notes`` say which order was found and why the walk stopped.
        """
        walks: list[IncrementalBookings] = []

        async def walk(fetcher: CollectionFetcher) -> tuple[Rows, int | None]:
            walks.append(IncrementalBookings(fetcher, is_unchanged, overlap_pages, known_ids))
            return await walks[0].fetch()

        result = await self._run("bookings", walk)
        result.notes = walks[0].notes
        return result

    async def _run(
        self,
        collection: str,
        body: Callable[[CollectionFetcher], Awaitable[tuple[Rows, int | None]]],
    ) -> CollectionResult:
        stats = FetchStats()
        started = self._clock()
        async with self._http() as http:
            fetcher = self._fetcher(http, stats, collection)
            budget = asyncio.timeout(self.settings.max_runtime_s)
            try:
                async with budget:
                    rows, api_total = await body(fetcher)
            except TimeoutError:
                if not budget.expired():
                    raise
                raise RuntimeExceededError(
                    f"Fetching {collection} took longer than max_runtime_s="
                    f"{self.settings.max_runtime_s:g}s (CALIRA_MAX_RUNTIME_S) after "
                    f"{stats.requests} requests and {stats.pages} pages, so it was stopped and "
                    "nothing was stored. The API is very slow or never stops sending pages; try "
                    "again later, or raise CALIRA_MAX_RUNTIME_S if the collection is that large."
                ) from None
        stats.wall_time_s = self._clock() - started
        stats.records = len(rows[COLLECTION_TABLES[collection][0]])
        return CollectionResult(
            collection=collection,
            rows=rows,
            api_total=api_total,
            stats=stats,
            unknown_fields=dict(fetcher.unknown.counts),
            warnings=fetcher.warnings,
        )

    def _fetcher(
        self,
        http: httpx.AsyncClient,
        stats: FetchStats,
        collection: str,
        semaphore: asyncio.Semaphore | None = None,
        limiter: AdaptiveRateLimiter | None = None,
    ) -> CollectionFetcher:
        settings = self.settings
        sender = RetryingSender(
            http,
            concurrency=settings.concurrency,
            semaphore=semaphore,
            max_retry_wait_s=settings.max_retry_wait_s,
            deadline_s=settings.timeout_s,
            limiter=limiter or AdaptiveRateLimiter(settings.max_rps, self._clock, self._sleep),
            stats=stats,
            sleep=self._sleep,
            clock=self._clock,
            wall_clock=self._wall,
            rng=self._rng,
            logger=self._logger,
            secrets=self._secrets,
        )
        provider = TokenProvider(
            settings, sender, self._tokens, self._wall, self._logger, self._secrets
        )
        session = ApiSession(settings.base_url, sender, provider, stats, self._secrets, collection)
        return CollectionFetcher(
            session,
            per_page=settings.per_page,
            max_pages=settings.max_pages,
            stats=stats,
            logger=self._logger,
            on_progress=self._on_progress,
        )


def _run_sync(start: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion; in a worker thread if an event loop is already running."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    box: list[T] = []

    async def main() -> None:
        # The result stays out of the main task: on 3.11 ``asyncio.run`` ends by restoring the
        # SIGINT handler, and ``signal.getsignal``/``signal.signal`` repr that handler (a partial
        # holding the task, so its result too) in a failed enum lookup: ~1 s of CPU at 50k rows.
        box.append(await start())

    if running is None:  # outside the except block so errors are not chained to it
        asyncio.run(main())
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, main()).result()
    return box[0]
