"""Which endpoints make up each collection, when details are needed, and turning them into rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .endpoints import ENDPOINTS, Endpoint
from .errors import ApiError
from .fields import Where
from .http import describe, run_all
from .merge import merge_detail
from .pagination import ListWalker
from .results import FetchStats, UnknownFields
from .session import ApiSession

ProgressCallback = Callable[[str, int, int, int], None]


class RowSink(Protocol):
    """Where parsed rows go: a list, or a writer that streams them to a file in batches."""

    def append(self, row: dict[str, Any], /) -> None: ...

    def extend(self, rows: Iterable[dict[str, Any]], /) -> None: ...

    def __len__(self) -> int: ...


Sinks = Mapping[str, RowSink]



def _detail_keys(endpoint: Endpoint) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    """The endpoint's `detail_needs` as set operations: keys that must all be present, then
    alias groups of which at least one must be present (checked once per listed record)."""
    needs = endpoint.detail_needs
    return (
        frozenset(aliases[0] for aliases in needs if len(aliases) == 1),
        tuple(frozenset(aliases) for aliases in needs if len(aliases) > 1),
    )


_DISAGREEMENT_WARNINGS = 10  # examples in the warnings; the metadata counts them all


def needs_detail(collection: str, record: dict[str, Any]) -> bool:
    required, alternatives = _detail_keys(ENDPOINTS[collection])
    keys = record.keys()
    if not keys >= required:
        return True
    return any(keys.isdisjoint(aliases) for aliases in alternatives)


@dataclass
class Listed:
    record: dict[str, Any]
    where: str  # "GET /v1/bookings page 3" or "GET /v1/bookings/12"
    scope_id: int | None  # the account/lab the list was scoped to


@dataclass
class ListSpec:
    path: str
    params: dict[str, Any]
    scope_id: int | None
    detail_prefix: str  # details live at f"{detail_prefix}/{id}"


class CollectionFetcher:
    """Fetches one collection through an ``ApiSession`` and parses it into table rows."""

    def __init__(
        self,
        session: ApiSession,
        *,
        per_page: int,
        max_pages: int,
        stats: FetchStats,
        logger: logging.Logger,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.per_page = per_page
        self.max_pages = max_pages
        self.stats = stats
        self.logger = logger
        self.on_progress = on_progress
        self.unknown = UnknownFields()
        self.warnings: list[str] = []
        self._progress: dict[int, tuple[int, int, int]] = {}
        self._api_path = httpx.URL(session.base_url).path.rstrip("/")

    async def fetch(
        self, collection: str, account_ids: Sequence[int] | None, sinks: Sinks | None = None
    ) -> tuple[Sinks, int | None]:
        """Every record of `collection` parsed into `sinks` (default: new lists per table)."""
        endpoint = ENDPOINTS[collection]
        rows: Sinks = sinks if sinks is not None else {t: [] for t in endpoint.tables}
        if endpoint.fan_out == "single":
            await self._single(endpoint, rows)
            return rows, None
        specs = await self._list_specs(collection, account_ids)
        pending, api_total = await self._walk_all(collection, specs, rows)
        for item in await self.complete(collection, pending, specs):
            self.parse_into(collection, item, rows)
        return rows, api_total

    async def _list_specs(
        self, collection: str, account_ids: Sequence[int] | None
    ) -> list[ListSpec]:
        endpoint = ENDPOINTS[collection]
        if endpoint.fan_out == "none" or (
            endpoint.split_only_when_asked and account_ids is None
        ):
            return [ListSpec(endpoint.path, {}, None, endpoint.path)]
        ids = (
            list(account_ids)
            if account_ids is not None
            else await self._account_ids(labs_only=endpoint.fan_out == "lab")
        )
        specs = []
        for account in ids:
            path = endpoint.list_path(account)
            params = {endpoint.account_param: account} if endpoint.account_param else {}
            specs.append(ListSpec(path, params, account, path))
        return specs

    async def _account_ids(self, *, labs_only: bool) -> list[int]:
        walker = ListWalker(
            self.session, "/accounts", {}, self.per_page, self.max_pages, self.stats
        )
        result = await walker.walk()
        ids = []
        for _, account in result.items:
            kind = str(account.get("account_type") or "lab").lower()
            if not labs_only or kind == "lab":
                ids.append(int(account["id"]))
        return ids

    async def _walk_all(
        self, collection: str, specs: list[ListSpec], rows: Sinks
    ) -> tuple[list[Listed], int]:
        """Walk every list; complete records are parsed as pages arrive (overlapping CPU with
        network waits), the rest are returned for detail fetching."""
        pending: list[Listed] = []
        seen: set[int] = set()

        async def walk(index: int, spec: ListSpec) -> int:
            where = f"GET {self._api_path}{spec.path}"

            def progress(done: int, total: int, records: int) -> None:
                self._report(collection, index, (done, total, records))

            def arrived(page: int, record: dict[str, Any]) -> None:
                record_id = int(record["id"])
                if record_id in seen:  # the same record under two lists (e.g. two labs)
                    self.stats.duplicates_dropped += 1
                    return
                seen.add(record_id)
                item = Listed(record, f"{where} page {page}", spec.scope_id)
                if needs_detail(collection, record):
                    pending.append(item)
                else:
                    self.parse_into(collection, item, rows)

            walker = ListWalker(
                self.session,
                spec.path,
                spec.params,
                self.per_page,
                self.max_pages,
                self.stats,
                on_page=progress,
                on_new=arrived,
            )
            return (await walker.walk()).api_total

        # A list not read yet counts as one page to come: summed over the lists read so far,
        # the first lab's one page would read "1/1 pages" for a collection of many labs.
        self._progress.update({i: (0, 1, 0) for i in range(len(specs))})
        totals = await run_all(walk(i, spec) for i, spec in enumerate(specs))
        return pending, sum(totals)

    def _report(self, collection: str, index: int, progress: tuple[int, int, int]) -> None:
        self._progress[index] = progress
        if self.on_progress is not None:
            done, total, records = (sum(p[i] for p in self._progress.values()) for i in range(3))
            self.on_progress(collection, done, total, records)

    async def complete(
        self, collection: str, listed: list[Listed], specs: list[ListSpec]
    ) -> list[Listed]:
        """Merge details into list items that lack needed fields; drop records deleted since."""
        detail_prefixes = {spec.scope_id: spec.detail_prefix for spec in specs}

        async def complete(item: Listed) -> Listed | None:
            record_id = int(item.record["id"])
            path = f"{detail_prefixes[item.scope_id]}/{record_id}"
            response, detail = await self.session.get_checked(
                path, None, self._detail_body, allow=(404,)
            )
            self.stats.detail_requests += 1
            if detail is None:
                self.stats.deleted_during_fetch += 1
                self.warnings.append(
                    f"{ENDPOINTS[collection].kind} {record_id} was listed by {item.where} but "
                    f"{describe(response.request)} is 404: deleted during the fetch, dropped."
                )
                return None
            merged, differences = merge_detail(item.record, detail)
            if differences:
                self._note_disagreement(collection, record_id, sorted(differences))
            return Listed(merged, describe(response.request), item.scope_id)

        completed = await run_all(complete(item) for item in listed)
        return [item for item in completed if item is not None]

    def _note_disagreement(self, collection: str, record_id: int, fields: list[str]) -> None:
        self.stats.list_detail_disagreements += 1
        if self.stats.list_detail_disagreements > _DISAGREEMENT_WARNINGS:
            return
        # Field names only: the values can be personal data (raw_json holds them, masked).
        self.warnings.append(
            f"{ENDPOINTS[collection].kind} {record_id}: the list and the detail disagree on "
            f"{', '.join(fields)}; the columns take the detail, raw_json keeps the list's "
            "values under _list_values."
        )

    def _detail_body(self, response: httpx.Response) -> dict[str, Any] | None:
        """The detail object, or None for a 404 (deleted since it was listed)."""
        return None if response.status_code == 404 else self._json_object(response)

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        body = self.session.decode_json(describe(response.request), response)
        if not isinstance(body, dict):
            raise ApiError(
                f"{describe(response.request)} returned a JSON {type(body).__name__}, "
                "not an object."
            )
        return body

    def parse_into(self, collection: str, item: Listed, rows: Sinks) -> None:
        endpoint = ENDPOINTS[collection]
        where = Where(item.where, endpoint.kind, item.record.get("id"))
        parsed = endpoint.parser(item.record, where, self.unknown, item.scope_id)
        for table, table_rows in parsed.items():
            rows[table].extend(table_rows)

    async def _single(self, endpoint: Endpoint, rows: Sinks) -> None:
        response, body = await self.session.get_checked(
            endpoint.path, None, self._detail_body, allow=(404,)
        )
        if body is None:
            self.warnings.append(
                f"GET {endpoint.path} is 404 ({endpoint.absent_reason}); "
                f"{endpoint.name} is empty."
            )
            return
        self.parse_into(endpoint.name, Listed(body, describe(response.request), None), rows)
