"""Which end of a list holds the newest records, judged from its first and last pages.

The docs promise newest-first, but a captured production bookings list came back oldest-first
(one record, then the rest ascending by id). Ids grow with creation, and so does ``requested_at``;
comparing the two ends of the list, and the order inside each, tells the direction. Anything
less than a clear majority is "unknown", and the caller must then read the whole list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .fields import coerce_id

Order = Literal["newest_first", "oldest_first", "unknown"]
NEWEST_FIRST: Order = "newest_first"
OLDEST_FIRST: Order = "oldest_first"
UNKNOWN: Order = "unknown"
# Share of comparisons that must agree: one odd record on a page of 100 (as captured) passes, a
# shuffled list (about half either way) does not.
MAJORITY = 0.9


@dataclass(frozen=True)
class OrderVerdict:
    order: Order
    evidence: str


def detect_order(first: Sequence[Any], last: Sequence[Any]) -> OrderVerdict:
    """Judge the direction from page 1 (``first``) and the last page (``last``)."""
    by_id = _direction([_id(r) for r in first], [_id(r) for r in last])
    by_time = _direction([_requested(r) for r in first], [_requested(r) for r in last])
    id_order, id_why = by_id
    time_order, time_why = by_time
    evidence = f"ids: {id_why}; requested_at: {time_why}"
    if id_order == UNKNOWN:
        return OrderVerdict(UNKNOWN, evidence)
    if time_order not in (id_order, UNKNOWN) and time_why != _NOT_ENOUGH:
        return OrderVerdict(UNKNOWN, evidence + " (they contradict each other)")
    return OrderVerdict(id_order, evidence)


_NOT_ENOUGH = "not enough values"
_MIN_VALUES = 4  # a verdict from two or three records would be a coin toss on a shuffled list


def _direction(head: list[Any], tail: list[Any]) -> tuple[Order, str]:
    head = [v for v in head if v is not None]
    tail = [v for v in tail if v is not None]
    if not head or not tail or len(head) + len(tail) < _MIN_VALUES:
        return UNKNOWN, _NOT_ENOUGH
    greater = sum(1 for a in head for b in tail if a > b) / (len(head) * len(tail))
    descending = _share(head + tail, lambda a, b: a > b)
    ascending = _share(head + tail, lambda a, b: a < b)
    why = (
        f"{greater:.0%} of page-1 values above the last page's, "
        f"{descending:.0%} of neighbours descending"
    )
    if greater >= MAJORITY and descending >= MAJORITY:
        return NEWEST_FIRST, why
    if greater <= 1 - MAJORITY and ascending >= MAJORITY:
        return OLDEST_FIRST, why
    return UNKNOWN, why


def _share(values: list[Any], holds: Callable[[Any, Any], bool]) -> float:
    pairs = list(zip(values, values[1:], strict=False))
    return sum(holds(a, b) for a, b in pairs) / len(pairs) if pairs else 1.0


def _id(record: Any) -> int | None:
    return coerce_id(record.get("id")) if isinstance(record, dict) else None


def _requested(record: Any) -> dt.datetime | None:
    value = record.get("requested_at") if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
