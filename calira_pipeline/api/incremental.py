"""Reading only the head of ``/bookings``: the bookings that are new or changed since last time.

The API has no updated-since filter and no sort parameter; the list is newest-first by creation.
So the walk reads pages from the head, asks the caller whether each row is already stored with
the same values, and stops once a page brings nothing new (plus a few overlap pages, because a
change can sit just past the first quiet page). Changes deeper in history wait for a full fetch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx

from .errors import ConfigError, PaginationError
from .fetching import CollectionFetcher, Listed, ListSpec, needs_detail
from .fields import Where
from .pages import ListPage, item_id, read_page
from .pagination import check_overrun
from .records import parse_booking
from .results import UnknownFields

IsUnchanged = Callable[[dict[str, Any]], bool]
Rows = dict[str, list[dict[str, Any]]]

STOP_NOTHING_NEW = "nothing_new"
STOP_END_OF_LIST = "end_of_list"
_BOOKINGS = ListSpec("/bookings", {}, None, "/bookings")


class IncrementalBookings:
    """One newest-first walk of ``/bookings`` that keeps only new or changed bookings."""

    def __init__(
        self,
        fetcher: CollectionFetcher,
        is_unchanged: IsUnchanged,
        overlap_pages: int,
    ) -> None:
        if overlap_pages < 0:
            raise ConfigError(f"overlap_pages must be >= 0, not {overlap_pages}.")
        self.fetcher = fetcher
        self.is_unchanged = is_unchanged
        self.overlap_pages = overlap_pages
        self.per_page = fetcher.per_page
        self.api_total: int | None = None
        self.pages_read = 0
        self.stop_reason = ""
        self.stop_detail = ""
        self._seen: set[int] = set()
        self._changed: list[Listed] = []
        self._last_total: int | None = None
        self._where = f"GET {httpx.URL(fetcher.session.base_url).path.rstrip('/')}/bookings"

    @property
    def notes(self) -> dict[str, str]:
        return {
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "pages_read": str(self.pages_read),
        }

    async def fetch(self) -> tuple[Rows, int | None]:
        """Walk, then complete the new/changed slim items from their details, as rows."""
        await self._walk()
        pending = [item for item in self._changed if needs_detail("bookings", item.record)]
        completed = await self.fetcher.complete("bookings", pending, [_BOOKINGS])
        details = {int(item.record["id"]): item for item in completed}
        rows: Rows = {"bookings": []}
        for item in self._changed:  # newest first, as listed
            if needs_detail("bookings", item.record):
                detailed = details.get(int(item.record["id"]))
                if detailed is None:  # 404: deleted since it was listed (already warned)
                    continue
                item = detailed
            self.fetcher.parse_into("bookings", item, rows)
        return rows, self.api_total

    async def _walk(self) -> None:
        page, quiet_page = 1, 0
        while True:
            listed = await self._read(page)
            if not listed.items:
                self._stop(STOP_END_OF_LIST, f"page {page} was empty")
                return
            fresh, changed = self._judge(listed, page, repair=False)
            await self._recover_shifted(page, listed.total)
            # Short pages alone prove nothing (a proxy or the API may cut them); with the
            # reported total they mark the end.
            if len(listed.items) < self.per_page and page * self.per_page >= listed.total:
                self._stop(STOP_END_OF_LIST, f"page {page} was the last ({listed.total} records)")
                return
            if not quiet_page and fresh and not changed:
                quiet_page = page
            if quiet_page and page >= quiet_page + self.overlap_pages:
                self._stop(
                    STOP_NOTHING_NEW,
                    f"page {quiet_page} had nothing new; then read {page - quiet_page} "
                    "overlap page(s)",
                )
                return
            page += 1
            check_overrun(self._where, page, self.per_page, listed.total)

    async def _read(self, page: int) -> ListPage:
        if page > self.fetcher.max_pages:
            raise PaginationError(
                f"{self._where} incremental walk needs page {page}, above "
                f"max_pages={self.fetcher.max_pages}, and has still not reached bookings it "
                "already holds (is the stored table empty or very old?). Run a full fetch, or "
                "raise max_pages if the list really is this long."
            )
        listed = await read_page(self.fetcher.session, "/bookings", {}, page, self.per_page)
        if page == 1 and self.api_total is None:
            self.api_total = listed.total
            assert listed.per_page is not None  # read_page insists on it for page 1
            self.per_page = listed.per_page  # the API may clamp per_page: trust the echo
        self.pages_read += 1
        self.fetcher.stats.pages += 1
        return listed

    def _judge(self, listed: ListPage, page: int, *, repair: bool) -> tuple[int, int]:
        """Note the page's unseen items; returns (unseen, new or changed) counts."""
        fresh = changed = 0
        scratch = UnknownFields()  # counted once, when the returned rows are parsed
        for index, record in enumerate(listed.items):
            record_id = item_id(listed.where, index, record)
            if record_id in self._seen:  # pushed down a page by bookings created meanwhile
                if not repair:
                    self.fetcher.stats.duplicates_dropped += 1
                continue
            self._seen.add(record_id)
            fresh += 1
            where = f"{self._where} page {page}"
            row = parse_booking(record, Where(where, "booking", record_id), scratch)
            if not self.is_unchanged(row):
                changed += 1
                self._changed.append(Listed(record, where, None))
        return fresh, changed

    async def _recover_shifted(self, page: int, total: int) -> None:
        """After deletions, records move up the list, some onto pages already read: re-read
        those pages so a changed booking is not skipped."""
        previous, self._last_total = self._last_total, total
        if previous is None or total >= previous or page == 1:
            return
        self.fetcher.stats.drift_events += 1
        first = max(1, page - math.ceil((previous - total) / self.per_page))
        for earlier in range(first, page):
            listed = await self._read(earlier)
            self._judge(listed, earlier, repair=True)
            self._last_total = listed.total

    def _stop(self, reason: str, detail: str) -> None:
        self.stop_reason = reason
        self.stop_detail = f"{detail}; {self.pages_read} page(s) read"
        self.fetcher.stats.stop_reason = reason
