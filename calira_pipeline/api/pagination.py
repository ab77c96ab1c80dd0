"""Walking a header-paginated, newest-first list without missing or duplicating records.

Pages 2..N are read concurrently. Each read reports ``X-Total-Records``; a change from the walk's
starting total T0 means records were inserted at the head (everything shifts later) or deleted
(later records shift earlier). Every read is mapped back to the positions it covers in the list
as it was when the walk began ("start coordinates"); pages are re-read until those windows cover
``[0, T0)``. Assumption: between reads the list changes by head inserts or by deletions, so the
net change in the total tells us how far a read's window moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PaginationError
from .http import run_all
from .pages import item_id, read_page
from .results import FetchStats
from .session import ApiSession

MAX_REPAIR_ROUNDS = 25
# Pages past the reported total are read while they hold new ids (records created while paging
# push the list down), but never more than this far: a server that keeps sending full pages of
# new ids would otherwise be read until memory runs out.
OVERRUN_MIN_PAGES = 10
OVERRUN_FRACTION = 0.10


def overrun_margin(total: int, per_page: int) -> int:
    """Records a walk may read past ``X-Total-Records``: 10 pages or 10 % of it, if more."""
    return max(OVERRUN_MIN_PAGES * per_page, int(total * OVERRUN_FRACTION))


def check_overrun(where: str, page: int, per_page: int, total: int) -> None:
    """Raise before reading ``page`` if it lies further past ``total`` than the margin."""
    beyond = page * per_page - total
    margin = overrun_margin(total, per_page)
    if beyond > margin:
        raise PaginationError(
            f"{where} keeps sending full pages of new records past its X-Total-Records "
            f"({total}): page {page} would end {beyond} records beyond it, more than the "
            f"{margin} allowed for records created while paging. The server's pagination looks "
            "broken (or a proxy ignores the page parameter), so nothing was stored; retry "
            "later, and report it to Calira support if it persists."
        )


PageCallback = Callable[[int, int, int], None]  # pages_done, pages_total, records


@dataclass
class PageRead:
    page: int
    total: int
    count: int
    ids: list[int]


@dataclass
class WalkResult:
    items: list[tuple[int, dict[str, Any]]]  # (page first seen on, record), deduplicated;
    # empty when ``on_new`` took the records
    api_total: int
    per_page: int
    pages_read: int


def covered_intervals(
    reads: list[PageRead], start_total: int, per_page: int
) -> list[tuple[int, int]]:
    """Start-coordinate ranges that the reads are guaranteed to have seen, merged."""
    by_total: dict[int, dict[int, bool]] = {}
    for read in reads:
        pages = by_total.setdefault(read.total, {})
        pages[read.page] = pages.get(read.page, False) or read.count == 0
    intervals: list[tuple[int, int]] = []
    for total, pages in by_total.items():
        shift = total - start_total
        for first, last in _runs(sorted(pages)):
            lo, hi = (first - 1) * per_page, last * per_page
            reaches_end = hi >= total or any(pages[p] for p in range(first, last + 1))
            if shift >= 0:  # head inserts: the window sits `shift` records later
                lo, hi = lo - shift, hi - shift
            elif lo > 0:  # deletions somewhere before: records may have moved up by -shift
                lo -= shift
            if reaches_end:
                hi = start_total
            if min(hi, start_total) > max(lo, 0):
                intervals.append((max(lo, 0), min(hi, start_total)))
    return _merge(intervals)


def _runs(pages: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for page in pages:
        if runs and runs[-1][1] == page - 1:
            runs[-1] = (runs[-1][0], page)
        else:
            runs.append((page, page))
    return runs


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def gaps(covered: list[tuple[int, int]], start_total: int) -> list[tuple[int, int]]:
    missing, cursor = [], 0
    for lo, hi in covered:
        if lo > cursor:
            missing.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < start_total:
        missing.append((cursor, start_total))
    return missing


def pages_for_gaps(
    missing: list[tuple[int, int]], latest_total: int, start_total: int, per_page: int
) -> list[int]:
    shift = latest_total - start_total
    pages: set[int] = set()
    for lo, hi in missing:
        first_pos, last_pos = (lo + shift, hi + shift) if shift >= 0 else (max(0, lo + shift), hi)
        pages.update(range(first_pos // per_page + 1, (last_pos - 1) // per_page + 2))
    return sorted(pages)


@dataclass
class ListWalker:
    session: ApiSession
    path: str
    params: dict[str, Any]
    per_page: int
    max_pages: int
    stats: FetchStats
    on_page: PageCallback | None = None
    on_new: Callable[[int, dict[str, Any]], None] | None = None  # first sight of each record
    reads: list[PageRead] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)  # record id -> page first seen on
    kept: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # when no on_new
    duplicates: int = 0
    _expected_pages: int = 1
    _first_per_page: int | None = None

    async def _read(self, page: int, *, repair: bool = False) -> PageRead:
        if page > self.max_pages:
            raise PaginationError(
                f"GET {self.path} needs page {page}, above max_pages={self.max_pages}; the list "
                "looks endless (a server bug?). Raise max_pages if it really is this long."
            )
        listed = await read_page(self.session, self.path, self.params, page, self.per_page)
        read = PageRead(page, listed.total, len(listed.items), [])
        for index, record in enumerate(listed.items):
            read.ids.append(self._absorb(listed.where, page, index, record, repair))
        if page == 1 and not self.reads:
            self._first_per_page = listed.per_page
            # Known from this page's headers: report it with this page, or the first progress
            # line says "1/1 pages" for the whole list and a progress bar takes it as finished.
            per_page = max(1, listed.per_page or self.per_page)
            self._expected_pages = max(1, math.ceil(listed.total / per_page))
        self.reads.append(read)
        self.stats.pages += 1
        if self.on_page is not None:
            pages_done = len(self.reads)
            self.on_page(pages_done, max(pages_done, self._expected_pages), len(self.seen))
        return read

    def _absorb(self, where: str, page: int, index: int, record: Any, repair: bool) -> int:
        record_id = item_id(where, index, record)
        if record_id in self.seen:
            if not repair:
                self.duplicates += 1
                self.stats.duplicates_dropped += 1
        else:
            self.seen[record_id] = page
            # Records handed to on_new are not kept: holding every raw record until the walk
            # ends made each full garbage collection traverse all of them (~1 ms CPU a page).
            if self.on_new is not None:
                self.on_new(page, record)
            else:
                self.kept.append((page, record))
        return record_id

    async def walk(self) -> WalkResult:
        first = await self._read(1)
        per_page = self._first_per_page
        assert per_page is not None  # read_page insists on X-Per-Page for page 1
        start_total = first.total
        self._expected_pages = max(1, math.ceil(start_total / per_page))
        if self._expected_pages > self.max_pages:
            raise PaginationError(
                f"GET {self.path} reports {start_total} records = {self._expected_pages} pages, "
                f"above max_pages={self.max_pages}. Raise max_pages if that is expected."
            )
        self.per_page = per_page  # trust the echoed size; later requests ask for it exactly
        if first.count:
            await run_all(self._read(p) for p in range(2, self._expected_pages + 1))
            await self._repair(start_total, per_page)
            await self._extend(per_page)
        return WalkResult(self.kept, start_total, per_page, len(self.reads))

    async def _repair(self, start_total: int, per_page: int) -> None:
        drifted = self.duplicates > 0 or any(r.total != start_total for r in self.reads)
        for _ in range(MAX_REPAIR_ROUNDS):
            missing = gaps(covered_intervals(self.reads, start_total, per_page), start_total)
            if not missing:
                break
            drifted = True
            latest_total = self.reads[-1].total
            pages = pages_for_gaps(missing, latest_total, start_total, per_page)
            self._expected_pages += len(pages)
            await run_all(self._read(p, repair=True) for p in pages)
        else:
            raise PaginationError(
                f"GET {self.path} kept changing while being read ({MAX_REPAIR_ROUNDS} re-read "
                "rounds did not give a consistent view); try again when the API is quieter."
            )
        if drifted:
            self.stats.drift_events += 1

    async def _extend(self, per_page: int) -> None:
        """Keep going past the reported total while pages come back full of new ids."""
        last = self.reads[0]
        for read in self.reads:  # the latest read of the highest page
            if read.page >= last.page:
                last = read
        page = last.page
        while last.count >= per_page and page * per_page >= last.total:
            known = len(self.seen)
            page += 1
            check_overrun(f"GET {self.path}", page, per_page, last.total)
            self._expected_pages = max(self._expected_pages, page)
            last = await self._read(page, repair=True)
            if len(self.seen) == known:
                break
