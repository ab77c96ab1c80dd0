"""Reading one page of a header-paginated list: headers checked, body decoded, items vetted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .errors import PaginationError, RecordError, safe_excerpt
from .fields import INT64_MAX, INT64_MIN, coerce_id
from .http import describe
from .session import ApiSession, BodyFault

_NO_TOTAL_ADVICE = (
    "An API version without pagination or a proxy stripping headers? Not reading a silent "
    "single page; retry later and check CALIRA_BASE_URL."
)
_NO_PER_PAGE_ADVICE = (
    "The API may clamp per_page, so pages cannot be walked safely without it; a proxy "
    "stripping headers? Retry later and check CALIRA_BASE_URL."
)


@dataclass
class ListPage:
    where: str  # "GET /v1/bookings?page=3&per_page=100"
    total: int  # X-Total-Records as of this read
    per_page: int | None  # X-Per-Page (always set on page 1)
    items: list[Any]


_MALFORMED_ADVICE = (
    "Usually a proxy or gateway damaging responses; it was retried. If it persists, check "
    "CALIRA_BASE_URL points at the API itself and report the header value to Calira support."
)


def header_int(response: httpx.Response, name: str, minimum: int) -> int | None:
    raw = response.headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        # Retryable like a missing header: a garbled value is as transient as a dropped one.
        raise BodyFault(
            "bad_headers",
            f"{describe(response.request)} sent a malformed {name} header "
            f"({safe_excerpt(raw, (), 40)!r}), so the number of pages is unknown and the list is "
            "not read partially",
            _MALFORMED_ADVICE,
            PaginationError,
        )
    return value


def _check_page(session: ApiSession, page: int, response: httpx.Response) -> ListPage:
    where = describe(response.request)
    total = header_int(response, "X-Total-Records", 0)
    if total is None:
        raise BodyFault(
            "bad_headers",
            f"{where} has no X-Total-Records header, so the number of pages is unknown",
            _NO_TOTAL_ADVICE,
            PaginationError,
        )
    per_page = header_int(response, "X-Per-Page", 1)
    if per_page is None and page == 1:
        raise BodyFault(
            "bad_headers",
            f"{where} has no X-Per-Page header, so the page size is unknown",
            _NO_PER_PAGE_ADVICE,
            PaginationError,
        )
    current = header_int(response, "X-Current-Page", 1)
    if current is not None and current != page:
        raise PaginationError(
            f"{where} answered with X-Current-Page {current}, not {page}: the server ignored "
            "the page parameter. Check CALIRA_BASE_URL points at the Calira API (a proxy or "
            "cache may be dropping query strings)."
        )
    body = session.decode_json(where, response)
    if not isinstance(body, list):
        raise PaginationError(f"{where} returned a JSON {type(body).__name__}, not a list.")
    return ListPage(where, total, per_page, body)


async def read_page(
    session: ApiSession, path: str, params: dict[str, Any], page: int, per_page: int
) -> ListPage:
    """One page, with damaged bodies/headers retried; a persistent fault raises."""
    _, listed = await session.get_checked(
        path,
        {**params, "page": page, "per_page": per_page},
        lambda response: _check_page(session, page, response),
    )
    return listed


def item_id(where: str, index: int, record: Any) -> int:
    """The id of list item ``index``, which must be an object with an integer id."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: item #{index} is a {type(record).__name__}, not an object.")
    record_id = coerce_id(record.get("id"))
    if record_id is None or not INT64_MIN <= record_id <= INT64_MAX:
        # Checked here, before any detail request: a detail URL built from an id the API never
        # issued answers 404, and the record would be dropped as "deleted during the fetch".
        shown = safe_excerpt(repr(record.get("id")), (), 40)
        raise RecordError(
            f"{where}: item #{index} has id {shown}, not an integer id within the 64-bit range "
            "(BIGINT); it cannot be stored, deduplicated or fetched in detail. Report this API "
            "response to Calira support."
        )
    return record_id
