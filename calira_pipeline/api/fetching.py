"""Which endpoints make up each collection, when details are needed, and turning them into rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from calira_pipeline.storage.schema import COLLECTION_TABLES

from .errors import ApiError
from .fields import Where
from .http import describe, run_all
from .merge import merge_detail
from .pagination import ListWalker
from .records import (
    parse_account,
    parse_booking,
    parse_current_user,
    parse_equipment,
    parse_group,
    parse_project,
)
from .results import FetchStats, UnknownFields
from .session import ApiSession

ProgressCallback = Callable[[str, int, int, int], None]


class RowSink(Protocol):
    """Where parsed rows go: a list, or a writer that streams them to a file in batches."""

    def append(self, row: dict[str, Any], /) -> None: ...

    def extend(self, rows: Iterable[dict[str, Any]], /) -> None: ...

    def __len__(self) -> int: ...


Sinks = Mapping[str, RowSink]

# The fields the pipeline needs per endpoint: list items lacking any of these (by key, any alias)
# are completed from their details endpoint. The 0.1.3 account list is {id, name, account_type}
# only (a lab's zone is in GET /accounts/{id}; independent labs have no department or
# organisation key even in full lists, so those cannot mark a slim item); the slim 0.1.3 booking
# list has no cost/currency/labs/requester, slim equipment lists no parent/serial number, group
# items no equipment, project items no funding codes or users.
DETAIL_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "accounts": (("timezone",),),
    "bookings": (("cost",), ("currency",), ("provider_lab",), ("requester_lab",), ("requester",)),
    "equipment": (("parent_id", "parent"), ("serial_number",), ("manufacturing_year",)),
    "groups": (("equipment",),),
    "projects": (("funding_codes",), ("selected_users",)),
}
KIND = {
    "accounts": "account",
    "equipment": "equipment",
    "bookings": "booking",
    "projects": "project",
    "groups": "group",
    "current_user": "user",
}


# DETAIL_NEEDS as set operations (checked once per listed record): keys that must all be present,
# then alias groups of which at least one must be present.
_DETAIL_KEYS: dict[str, tuple[frozenset[str], tuple[frozenset[str], ...]]] = {
    collection: (
        frozenset(aliases[0] for aliases in needs if len(aliases) == 1),
        tuple(frozenset(aliases) for aliases in needs if len(aliases) > 1),
    )
    for collection, needs in DETAIL_NEEDS.items()
}
_DISAGREEMENT_WARNINGS = 10  # examples in the warnings; the metadata counts them all
_NO_DETAIL_KEYS: tuple[frozenset[str], tuple[frozenset[str], ...]] = (frozenset(), ())


def needs_detail(collection: str, record: dict[str, Any]) -> bool:
    required, alternatives = _DETAIL_KEYS.get(collection, _NO_DETAIL_KEYS)
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
        rows: Sinks = sinks if sinks is not None else {t: [] for t in COLLECTION_TABLES[collection]}
        if collection == "current_user":
            await self._current_user(rows)
            return rows, None
        specs = await self._list_specs(collection, account_ids)
        pending, api_total = await self._walk_all(collection, specs, rows)
        for item in await self.complete(collection, pending, specs):
            self.parse_into(collection, item, rows)
        return rows, api_total

    async def _list_specs(
        self, collection: str, account_ids: Sequence[int] | None
    ) -> list[ListSpec]:
        if collection == "accounts":
            return [ListSpec("/accounts", {}, None, "/accounts")]
        if collection == "bookings":
            if account_ids is None:
                return [ListSpec("/bookings", {}, None, "/bookings")]
            return [
                ListSpec("/bookings", {"provider_account": a}, a, "/bookings") for a in account_ids
            ]
        ids = (
            list(account_ids)
            if account_ids is not None
            else await self._account_ids(labs_only=collection != "projects")
        )
        if collection == "projects":
            return [
                ListSpec(f"/accounts/{a}/projects", {}, a, f"/accounts/{a}/projects") for a in ids
            ]
        path = "/equipment" if collection == "equipment" else "/groups"
        return [ListSpec(path, {"account": a}, a, path) for a in ids]

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
                    f"{KIND[collection]} {record_id} was listed by {item.where} but "
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
            f"{KIND[collection]} {record_id}: the list and the detail disagree on "
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
        where = Where(item.where, KIND[collection], item.record.get("id"))
        record = item.record
        if collection == "accounts":
            rows["accounts"].append(parse_account(record, where, self.unknown))
        elif collection == "equipment":
            rows["equipment"].append(parse_equipment(record, where, self.unknown, item.scope_id))
        elif collection == "bookings":
            rows["bookings"].append(parse_booking(record, where, self.unknown))
        elif collection == "groups":
            group, members = parse_group(record, where, self.unknown, item.scope_id)
            rows["groups"].append(group)
            rows["group_equipment"].extend(members)
        elif collection == "projects":
            assert item.scope_id is not None
            project, codes, users = parse_project(record, where, self.unknown, item.scope_id)
            rows["projects"].append(project)
            rows["project_funding_codes"].extend(codes)
            rows["project_users"].extend(users)

    async def _current_user(self, rows: Sinks) -> None:
        response, body = await self.session.get_checked(
            "/me", None, self._detail_body, allow=(404,)
        )
        if body is None:  # client-credentials tokens have no resource owner
            self.warnings.append(
                "GET /me is 404 (no user behind a client-credentials token); current_user is empty."
            )
            return
        where = Where(describe(response.request), "user", body.get("id"))
        rows["current_user"].append(parse_current_user(body, where, self.unknown))
