"""One declaration per API collection: everything that loops over endpoints reads it.

The fetcher (paths, fan-out, detail fetches, parsing), scope errors, personal-data masking,
`calira-pipeline doctor` and the sandbox's routes all come from `ENDPOINTS`. Adding a collection
is one `Endpoint` here, one parser, one table spec (`storage/schema.py`) and one sandbox handler.
Tables are named, not imported: the API layer does not depend on the warehouse's layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .fields import Where
from .records import (
    Row,
    parse_account,
    parse_booking,
    parse_current_user,
    parse_equipment,
    parse_group,
    parse_project,
)
from .results import UnknownFields

# (record, where, unknown fields, the account the list was scoped to) -> rows per table
Parser = Callable[[dict[str, Any], Where, UnknownFields, "int | None"], dict[str, list[Row]]]
# none: one list; lab/account: one list per lab (or per account of any type); single: one object
FanOut = Literal["none", "lab", "account", "single"]


@dataclass(frozen=True)
class Endpoint:
    name: str  # the collection, e.g. "bookings"
    path: str  # list path; "{account}" is replaced per account; details at f"{path}/{{id}}"
    scope: str  # the OAuth scope that reads it
    kind: str  # one record, in messages: "booking"
    parser: Parser
    tables: tuple[str, ...]  # tables it fills, its own first
    fan_out: FanOut = "none"
    # Query parameter naming the account when the fan-out is by query, not by path.
    account_param: str | None = None
    # Split per lab only when the caller names the labs (bookings: one list otherwise).
    split_only_when_asked: bool = False
    # Fields a list item must have, else its detail is fetched; a tuple is a set of aliases.
    detail_needs: tuple[tuple[str, ...], ...] = ()
    pii_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    incremental: bool = False  # the list can be read from its newest end (ids, requested_at)
    absent_reason: str = ""  # why a single object can be 404 without an error

    def list_path(self, account_id: int | None) -> str:
        return self.path.replace("{account}", str(account_id))

    @property
    def needs_accounts(self) -> bool:
        """Listing it requires the visible accounts first (so read_accounts too)."""
        return self.fan_out in ("lab", "account") and not self.split_only_when_asked


def _one(table: str, parse: Callable[[dict[str, Any], Where, UnknownFields], Row]) -> Parser:
    def parser(record: dict[str, Any], where: Where, unknown: UnknownFields,
               _: int | None) -> dict[str, list[Row]]:  # fmt: skip
        return {table: [parse(record, where, unknown)]}

    return parser


def _equipment(record: dict[str, Any], where: Where, unknown: UnknownFields,
               lab_id: int | None) -> dict[str, list[Row]]:  # fmt: skip
    return {"equipment": [parse_equipment(record, where, unknown, lab_id)]}


def _groups(record: dict[str, Any], where: Where, unknown: UnknownFields,
            account_id: int | None) -> dict[str, list[Row]]:  # fmt: skip
    group, members = parse_group(record, where, unknown, account_id)
    return {"groups": [group], "group_equipment": members}


def _projects(record: dict[str, Any], where: Where, unknown: UnknownFields,
              account_id: int | None) -> dict[str, list[Row]]:  # fmt: skip
    assert account_id is not None  # projects are always listed per account
    project, codes, users = parse_project(record, where, unknown, account_id)
    return {"projects": [project], "project_funding_codes": codes, "project_users": users}


# The 0.1.3 account list is {id, name, account_type} only (a lab's zone is in GET /accounts/{id};
# independent labs have no department or organisation key even in full lists, so those cannot mark
# a slim item); the slim 0.1.3 booking list has no cost/currency/labs/requester, slim equipment
# lists no parent/serial number, group items no equipment, project items no funding codes or users.
_DECLARED = (
    Endpoint("accounts", "/accounts", "read_accounts", "account",
             _one("accounts", parse_account), ("accounts",),
             detail_needs=(("timezone",),)),
    Endpoint("equipment", "/equipment", "read_equipment", "equipment", _equipment,
             ("equipment",), fan_out="lab", account_param="account",
             detail_needs=(("parent_id", "parent"), ("serial_number",), ("manufacturing_year",)),
             pii_columns={"equipment": ("contact_person_name",)}),
    Endpoint("bookings", "/bookings", "read_bookings", "booking",
             _one("bookings", parse_booking), ("bookings",), fan_out="lab",
             account_param="provider_account", split_only_when_asked=True,
             detail_needs=(("cost",), ("currency",), ("provider_lab",), ("requester_lab",),
                           ("requester",)),
             pii_columns={"bookings": ("requester_name", "requester_email", "creator_name")},
             incremental=True),
    Endpoint("projects", "/accounts/{account}/projects", "read_projects", "project", _projects,
             ("projects", "project_funding_codes", "project_users"), fan_out="account",
             detail_needs=(("funding_codes",), ("selected_users",)),
             pii_columns={"projects": ("supervisor",), "project_users": ("user_name",
                                                                         "user_email")}),
    Endpoint("groups", "/groups", "read_accounts", "group", _groups,
             ("groups", "group_equipment"), fan_out="lab", account_param="account",
             detail_needs=(("equipment",),)),
    Endpoint("current_user", "/me", "read_user", "user",
             _one("current_user", parse_current_user), ("current_user",), fan_out="single",
             pii_columns={"current_user": ("first_name", "last_name", "email")},
             absent_reason="no user behind a client-credentials token"),
)  # fmt: skip
ENDPOINTS: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in _DECLARED}


class _CollectionTables(Mapping[str, tuple[str, ...]]):
    """Which tables each collection fills: a live view of ENDPOINTS, never a second list."""

    def __getitem__(self, collection: str) -> tuple[str, ...]:
        return ENDPOINTS[collection].tables

    def __iter__(self) -> Iterator[str]:
        return iter(ENDPOINTS)

    def __len__(self) -> int:
        return len(ENDPOINTS)


COLLECTION_TABLES: Mapping[str, tuple[str, ...]] = _CollectionTables()


def scope_collections() -> dict[str, tuple[str, ...]]:
    """Which collections each scope feeds; read_accounts also feeds every per-account list."""
    feeds: dict[str, list[str]] = {}
    for endpoint in ENDPOINTS.values():
        feeds.setdefault(endpoint.scope, []).append(endpoint.name)
        if endpoint.needs_accounts and endpoint.scope != "read_accounts":
            feeds.setdefault("read_accounts", []).append(endpoint.name)
    return {scope: tuple(names) for scope, names in feeds.items()}


def endpoint_for_path(path: str) -> Endpoint | None:
    """The endpoint a request path belongs to (list or detail); the most specific wins."""
    best: tuple[int, Endpoint] | None = None
    for endpoint in ENDPOINTS.values():
        template = re.escape(endpoint.path).replace(re.escape("{account}"), "[^/]+")
        if re.match(f"{template}(/|$|\\?)", path) and (best is None or len(template) > best[0]):
            best = (len(template), endpoint)
    return best[1] if best else None


def pii_columns() -> dict[str, tuple[str, ...]]:
    """Flattened columns holding personal data, per table."""
    return {t: cols for e in ENDPOINTS.values() for t, cols in e.pii_columns.items()}
