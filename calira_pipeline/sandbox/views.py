"""Response shapes (slim lists, live aliases) and header pagination."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import Response

from calira_pipeline.sandbox.world import JSON

MAX_PER_PAGE = 100
PAGINATION_HEADERS = ("X-Total-Records", "X-Current-Page", "X-Per-Page")
EQUIPMENT_DETAIL_ONLY = frozenset({"parent_id", "parent_name", "manufacturing_year",
                                   "serial_number"})


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
    page = parse_int(query.get("page"), "page", minimum=1) or 1
    per_page = parse_int(query.get("per_page"), "per_page", minimum=1)
    per_page = MAX_PER_PAGE if per_page is None else min(per_page, MAX_PER_PAGE)
    first = (page - 1) * per_page
    body = b",".join([newest(k) for k in range(first, min(first + per_page, total))])
    headers = {"X-Total-Records": str(total), "X-Current-Page": str(page),
               "X-Per-Page": str(per_page)}
    return Response(b"[" + body + b"]", headers=headers, media_type="application/json")


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
