"""What one ``fetch`` returns: rows per table plus the numbers that explain how they were got."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# bad_body / bad_headers: a 2xx whose JSON is cut short or whose pagination headers are gone,
# typically a proxy truncating the response, so worth another attempt.
RETRY_CAUSES = ("429", "5xx", "timeout", "connect", "401-refresh", "bad_body", "bad_headers")


@dataclass
class FetchStats:
    requests: int = 0
    pages: int = 0
    detail_requests: int = 0
    records: int = 0
    duplicates_dropped: int = 0
    drift_events: int = 0
    deleted_during_fetch: int = 0
    list_detail_disagreements: int = 0  # records whose list item and detail differ
    retries_by_cause: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRY_CAUSES, 0))
    rate_limited: int = 0
    bytes_received: int = 0
    wall_time_s: float = 0.0
    stop_reason: str = ""  # incremental walks only; text, so not part of as_metadata

    @property
    def retries(self) -> int:
        return sum(self.retries_by_cause.values())

    def as_metadata(self) -> dict[str, int | float]:
        meta: dict[str, int | float] = {
            "requests": self.requests,
            "pages": self.pages,
            "detail_requests": self.detail_requests,
            "records": self.records,
            "duplicates_dropped": self.duplicates_dropped,
            "drift_events": self.drift_events,
            "deleted_during_fetch": self.deleted_during_fetch,
            "list_detail_disagreements": self.list_detail_disagreements,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "bytes_received": self.bytes_received,
            "wall_time_s": round(self.wall_time_s, 3),
        }
        for cause, count in self.retries_by_cause.items():
            meta[f"retries_{cause.replace('-', '_')}"] = count
        return meta


@dataclass
class CollectionResult:
    collection: str
    rows: dict[str, list[dict[str, Any]]]
    api_total: int | None
    stats: FetchStats
    unknown_fields: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # e.g. an incremental walk's stop reason


class UnknownFields:
    """Counts fields the parser does not know, as ``"<collection>.<field>"``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def note(self, collection: str, record: dict[str, Any], known: frozenset[str]) -> None:
        if known.issuperset(record):  # the usual case, checked in C
            return
        for key in record:
            if key not in known:
                self.counts[f"{collection}.{key}"] += 1
