"""Response shapes (slim lists, live aliases) and header pagination."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.datastructures import QueryParams
from starlette.responses import Response

from calira_pipeline.sandbox.config import ListOrder
from calira_pipeline.sandbox.world import JSON

T = TypeVar("T")

MAX_PER_PAGE = 100
PAGINATION_HEADERS = ("X-Total-Records", "X-Current-Page", "X-Per-Page")
EQUIPMENT_DETAIL_ONLY = frozenset({"parent_id", "parent_name", "manufacturing_year",
                                   "serial_number"})
ACCOUNT_LIST_0_1_3 = ("id", "name", "account_type")
BOOKING_LIST_2022 = ("id", "start_time", "end_time", "status", "user_id", "equipment_id")
# Added to the spec in February 2023: absent from the booking details captured in 2022.
BOOKING_DETAIL_NOT_IN_2022 = frozenset({"currency", "charging_type", "start_time", "end_time",
                                        "local_start_time", "local_end_time", "creator",
                                        "requester_group"})


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def encode_json(body: Any) -> bytes:
    # Compact, key order as built: identical inputs give byte-identical bodies.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(body), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(status: int, error: str, description: str,
                   headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": error, "error_description": description}, status, headers)


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"Couldn't find {what} with 'id'={ident}")


def parse_int(raw: str | None, name: str, minimum: int | None = None) -> int | None:
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not (text.isascii() and text.lstrip("+-").isdigit()):
        raise ApiError(400, "invalid_request", f"{name} must be an integer, got {raw!r}")
    value = int(text)
    if minimum is not None and value < minimum:
        raise ApiError(400, "invalid_request", f"{name} must be >= {minimum}, got {value}")
    return value


def parse_id(raw: str, what: str) -> int:
    """Path ids: anything that is not a plain integer simply names no record."""
    if not (raw.isascii() and raw.isdigit()):
        raise not_found(what, raw)
    return int(raw)


def parse_bool(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("true", "1", "yes", "t")


def paginate(query: QueryParams, total: int, newest: Callable[[int], JSON]) -> Response:
    """Newest first; ``newest(k)`` is the k-th newest record (k from 0)."""
    return paginate_encoded(query, total, lambda k: encode_json(newest(k)))


def paginate_encoded(query: QueryParams, total: int,
                     newest: Callable[[int], bytes]) -> Response:
    """``paginate`` for records already encoded: the body is the items' bytes joined, which is
    byte for byte what encoding the list would give."""
    page, per_page = page_request(query)
    first = (page - 1) * per_page
    body = b",".join([newest(k) for k in range(first, min(first + per_page, total))])
    return Response(b"[" + body + b"]", headers=page_headers(total, page, per_page),
                    media_type="application/json")


def page_request(query: Mapping[str, str], max_per_page: int = MAX_PER_PAGE) -> tuple[int, int]:
    """The page asked for and its size: `page` from 1, `per_page` capped (100 by default)."""
    page = parse_int(query.get("page"), "page", minimum=1) or 1
    per_page = parse_int(query.get("per_page"), "per_page", minimum=1)
    return page, max_per_page if per_page is None else min(per_page, max_per_page)


def page_headers(total: int, page: int, per_page: int) -> dict[str, str]:
    """The API's header pagination: what every list answers beside its items."""
    return {"X-Total-Records": str(total), "X-Current-Page": str(page),
            "X-Per-Page": str(per_page)}


def equipment_view(item: JSON, *, listing: bool, slim: bool, live_aliases: bool) -> JSON:
    out: JSON = {}
    for key, value in item.items():
        if listing and slim and key in EQUIPMENT_DETAIL_ONLY:
            continue
        if live_aliases and key == "model":
            key = "model_number"
        elif live_aliases and listing and key == "availability_status":
            key = "availabity_status"  # sic: the live list schema's spelling
        out[key] = value
    return out


def group_list_item(group: JSON) -> JSON:
    return {"id": group["id"], "name": group["name"]}


def project_list_item(project: JSON) -> JSON:
    return {k: project[k] for k in ("id", "name", "supervisor", "additional_information")}


def project_detail(project: JSON) -> JSON:
    return {k: v for k, v in project.items() if k != "id"}  # the docs' sample has no id


class ListOrdering:
    """Which record a list position holds: newest first (as documented), oldest first (as a
    captured production list came back), or a fixed shuffle per list length."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._shuffles: dict[int, list[int]] = {}

    def apply(self, order: ListOrder, total: int, newest: Callable[[int], T]) -> Callable[[int], T]:
        if order == "oldest":
            return lambda k: newest(total - 1 - k)
        if order == "shuffled":
            shuffle = self._shuffle(total)
            return lambda k: newest(shuffle[k])
        return newest

    def _shuffle(self, total: int) -> list[int]:
        if total not in self._shuffles:
            positions = list(range(total))
            random.Random(f"calira-sandbox-order-{self.seed}-{total}").shuffle(positions)
            self._shuffles[total] = positions
        return self._shuffles[total]


def account_list_item(account: JSON) -> JSON:
    """A ``GET /accounts`` item in the 0.1.3 spec: the rest is in ``GET /accounts/{id}``."""
    return {k: account[k] for k in ACCOUNT_LIST_0_1_3}


def booking_list_item_2022(detail: JSON, equipment_key: str) -> JSON:
    item = {"id": detail["id"], "start_time": detail["start_time"],
            "end_time": detail["end_time"], "status": detail["status"],
            "user_id": detail["requester"]["id"], "equipment_id": detail["equipment"]["id"]}
    if equipment_key != "equipment_id":
        item[equipment_key] = item.pop("equipment_id")
    return item


def booking_detail_2022(detail: JSON) -> JSON:
    return {k: v for k, v in detail.items() if k not in BOOKING_DETAIL_NOT_IN_2022}


def disagrees(booking_id: int, rate: float) -> bool:
    """Whether this booking's list item contradicts its detail (a fixed ``rate`` share)."""
    return rate > 0 and (booking_id * 2654435761) % 10_000 < rate * 10_000


def disagreeing_status(status: str) -> str:
    """The captured case: ``Completed`` in the list while the detail still says ``Booked``."""
    return "Booked" if status.lower() == "completed" else "Completed"
