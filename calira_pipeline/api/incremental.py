"""Reading only the new end of ``/bookings``: the bookings that are new or changed since last time.

The API has no updated-since filter and no sort parameter. The docs say the list is newest-first
by creation, but a captured production list was oldest-first, so the order is read off the list
itself: page 1 and the last page are read first and compared (``api.order``). The walk then goes
from the newest end, asks the caller whether each row is already stored with the same values, and
stops once a page brings nothing new (plus a few overlap pages, because a change can sit just past
the first quiet page). When the order cannot be told, every page is read (details are still
fetched only for new or changed bookings). Changes deeper in history wait for a full fetch.

A walk that stopped early is checked against the count: if the list holds more records the walk
did not read than stored bookings it did not see, some unread record is not stored, so the rest
of the list is read too. The walk never ends "successfully" with such a known gap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable
from typing import Any

import httpx

from .errors import ConfigError, PaginationError
from .fetching import CollectionFetcher, Listed, ListSpec, needs_detail
from .fields import Where
from .http import run_all
from .order import NEWEST_FIRST, OLDEST_FIRST, detect_order
from .pages import ListPage, item_id, read_page
from .pagination import check_overrun
from .records import parse_booking
from .results import UnknownFields

IsUnchanged = Callable[[dict[str, Any]], bool]
Rows = dict[str, list[dict[str, Any]]]

STOP_NOTHING_NEW = "nothing_new"
STOP_END_OF_LIST = "end_of_list"
STOP_FULL_READ = "full_read_order_unknown"
STOP_COUNT_GAP = "full_read_count_gap"
_EMPTY_TAIL_STEPS = 3  # steps back from an empty last page before judging the order unknown
_BOOKINGS = ListSpec("/bookings", {}, None, "/bookings")


class IncrementalBookings:
    """One walk of ``/bookings`` from its newest end that keeps only new or changed bookings."""

    def __init__(
        self,
        fetcher: CollectionFetcher,
        is_unchanged: IsUnchanged,
        overlap_pages: int,
        known_ids: Collection[int] | None = None,
    ) -> None:
        if overlap_pages < 0:
            raise ConfigError(f"overlap_pages must be >= 0, not {overlap_pages}.")
        self.fetcher = fetcher
        self.is_unchanged = is_unchanged
        self.overlap_pages = overlap_pages
        self.known_ids = known_ids
        self.per_page = fetcher.per_page
        self.api_total: int | None = None
        self.pages_read = 0
        self.stop_reason = ""
        self.stop_detail = ""
        self.list_order = ""
        self.order_evidence = ""
        self._seen: set[int] = set()
        self._pages_done: set[int] = set()
        self._changed: list[Listed] = []
        self._last_total: int | None = None
        self._where = f"GET {httpx.URL(fetcher.session.base_url).path.rstrip('/')}/bookings"

    @property
    def notes(self) -> dict[str, str]:
        return {
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "pages_read": str(self.pages_read),
            "list_order": self.list_order,
            "list_order_evidence": self.order_evidence,
        }

    async def fetch(self) -> tuple[Rows, int | None]:
        """Walk, then complete the new/changed slim items from their details, as rows."""
        await self._walk()
        await self._close_count_gap()
        pending = [item for item in self._changed if needs_detail("bookings", item.record)]
        completed = await self.fetcher.complete("bookings", pending, [_BOOKINGS])
        details = {int(item.record["id"]): item for item in completed}
        rows: Rows = {"bookings": []}
        for item in self._changed:  # in walk order
            if needs_detail("bookings", item.record):
                detailed = details.get(int(item.record["id"]))
                if detailed is None:  # 404: deleted since it was listed (already warned)
                    continue
                item = detailed
            self.fetcher.parse_into("bookings", item, rows)
        return rows, self.api_total

    async def _walk(self) -> None:
        first = await self._read(1)
        first_counts = self._judge(first, 1, repair=False)
        last_page = math.ceil(first.total / self.per_page) if first.items else 1
        if last_page <= 1:
            self.list_order = "single_page"
            self._stop(STOP_END_OF_LIST, f"page 1 was the whole list ({first.total} records)")
            return
        last = await self._read(last_page)
        # An empty "last" page (a total a little too high, or deletions since page 1) says
        # nothing about the order; the page before it does.
        for _ in range(_EMPTY_TAIL_STEPS):
            if last.items or last_page <= 2:
                break
            last_page -= 1
            last = await self._read(last_page)
        last_counts = self._judge(last, last_page, repair=False)
        self._last_total = last.total
        verdict = detect_order(first.items, last.items)
        self.list_order, self.order_evidence = verdict.order, verdict.evidence
        if verdict.order != NEWEST_FIRST:  # the last page may hold the newest records
            await self._past_the_total(last_page, len(last.items))
        if verdict.order == NEWEST_FIRST:
            await self._walk_pages(range(2, last_page), 1, first_counts, newest_first=True)
        elif verdict.order == OLDEST_FIRST:
            await self._walk_pages(range(last_page - 1, 1, -1), last_page, last_counts)
        else:
            self._log().warning(
                f"{self._where}: cannot tell which end of the list is newest "
                f"({verdict.evidence}); reading all {last_page} pages"
            )
            await self._read_rest(last_page)
            self._stop(STOP_FULL_READ, f"list order unknown ({verdict.evidence})")

    async def _walk_pages(
        self,
        pages: Iterable[int],
        start_page: int,
        start_counts: tuple[int, int],
        *,
        newest_first: bool = False,
    ) -> None:
        """Read ``pages`` in order until a quiet page plus the overlap pages; the page the walk
        starts from (already read and judged) may itself be the quiet one."""
        fresh, changed = start_counts
        quiet_page, after_quiet = (start_page, 0) if fresh and not changed else (None, 0)
        for page in pages:
            if quiet_page is not None and after_quiet >= self.overlap_pages:
                self._stop(
                    STOP_NOTHING_NEW,
                    f"{self.list_order}: page {quiet_page} had nothing new; then read "
                    f"{after_quiet} overlap page(s)",
                )
                return
            listed = await self._read(page)
            fresh, changed = self._judge(listed, page, repair=False)
            if newest_first:
                await self._recover_shifted(page, listed.total)
            if quiet_page is not None:
                after_quiet += 1
            elif fresh and not changed:
                quiet_page = page
        self._stop(STOP_END_OF_LIST, f"{self.list_order}: reached the other end of the list")

    async def _past_the_total(self, last_page: int, count: int) -> None:
        """A full last page may not be the end (a stale X-Total-Records): read on while pages
        come back full of unseen records, so the newest of an oldest-first list are not missed."""
        page = last_page
        total = self._last_total or 0
        while count >= self.per_page:
            known = len(self._seen)
            page += 1
            check_overrun(self._where, page, self.per_page, total)
            listed = await self._read(page)
            total = listed.total
            self._judge(listed, page, repair=False)
            count = len(listed.items) if len(self._seen) > known else 0

    async def _close_count_gap(self) -> None:
        """Read the unread pages when the count proves an unread record is not stored."""
        if self.known_ids is None or self.stop_reason != STOP_NOTHING_NEW:
            return
        assert self.api_total is not None
        unread = self.api_total - len(self._seen)
        stored_unseen = sum(1 for known in self.known_ids if known not in self._seen)
        if unread <= stored_unseen:
            return
        last_page = math.ceil(self.api_total / self.per_page)
        self._log().warning(
            f"{self._where}: the list holds {unread} records this walk did not read but only "
            f"{stored_unseen} stored bookings it did not see; reading the rest of the list"
        )
        await self._read_rest(last_page)
        walked = self.stop_detail.rsplit("; ", 1)[0]
        self._stop(
            STOP_COUNT_GAP,
            f"{walked}; but {unread} records were unread and only {stored_unseen} stored "
            "bookings unseen, so every page was read",
        )

    async def _read_rest(self, last_page: int) -> None:
        todo = [p for p in range(1, last_page + 1) if p not in self._pages_done]

        async def read(page: int) -> None:
            self._judge(await self._read(page), page, repair=False)

        await run_all(read(page) for page in todo)

    async def _read(self, page: int) -> ListPage:
        if page > self.fetcher.max_pages:
            raise PaginationError(
                f"{self._where} incremental walk needs page {page}, above "
                f"max_pages={self.fetcher.max_pages}. Run a full fetch, or raise max_pages if "
                "the list really is this long."
            )
        listed = await read_page(self.fetcher.session, "/bookings", {}, page, self.per_page)
        if page == 1 and self.api_total is None:
            self.api_total = listed.total
            assert listed.per_page is not None  # read_page insists on it for page 1
            self.per_page = listed.per_page  # the API may clamp per_page: trust the echo
        self._pages_done.add(page)
        self.pages_read += 1
        self.fetcher.stats.pages += 1
        return listed

    def _judge(self, listed: ListPage, page: int, *, repair: bool) -> tuple[int, int]:
        """Note the page's unseen items; returns (unseen, new or changed) counts."""
        fresh = changed = 0
        scratch = UnknownFields()  # counted once, when the returned rows are parsed
        for index, record in enumerate(listed.items):
            record_id = item_id(listed.where, index, record)
            if record_id in self._seen:  # moved to another page by bookings created meanwhile
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
        """Newest-first: after deletions, records move up the list, some onto pages already
        read: re-read those pages so a changed booking is not skipped."""
        previous, self._last_total = self._last_total, total
        if previous is None or total >= previous or page == 1:
            return
        self.fetcher.stats.drift_events += 1
        first = max(1, page - math.ceil((previous - total) / self.per_page))
        for earlier in range(first, page):
            listed = await self._read(earlier)
            self._judge(listed, earlier, repair=True)
            self._last_total = listed.total

    def _log(self) -> logging.Logger:
        return self.fetcher.logger

    def _stop(self, reason: str, detail: str) -> None:
        self.stop_reason = reason
        self.stop_detail = f"{detail}; {self.pages_read} page(s) read"
        self.fetcher.stats.stop_reason = reason
