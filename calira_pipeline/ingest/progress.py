"""Ingestion progress for whoever is watching: the Dagster run log, and the CLI's progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tqdm import tqdm

Listener = Callable[[str, int, int, int], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


def publish(collection: str, pages_done: int, pages_total: int, records: int) -> None:
    for listener in list(_listeners):
        listener(collection, pages_done, pages_total, records)


class RunLogProgress:
    """Progress lines for a run log: about ten per collection however long it is, never two
    within `min_interval_s` (past the reported total every page is "the last"), and, through
    `finish`, the last page of each collection that fetched completely, had it been throttled
    (a fetch under `min_interval_s` otherwise logged only its first page). Rates count from
    the start of the fetch, when every collection starts at once."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._started = clock()
        self._last: dict[str, tuple[int, float]] = {}  # pages logged, when
        self._latest: dict[str, tuple[int, int, int]] = {}  # the newest report, logged or not

    def __call__(self, collection: str, pages_done: int, pages_total: int, records: int) -> None:
        self._latest[collection] = (pages_done, pages_total, records)
        now = self.clock()
        pages_then, logged_at = self._last.get(collection, (0, float("-inf")))
        step = max(1, pages_total // 10)
        if now - logged_at < self.min_interval_s:
            return
        if pages_done < pages_total and pages_done - pages_then < step:
            return
        self._line(collection, pages_done, pages_total, records, now)

    def finish(self, collections: Iterable[str]) -> None:
        """Log the last page of each of these (fully fetched) collections if it was not."""
        for collection in collections:
            latest = self._latest.get(collection)
            if latest is not None and self._last.get(collection, (0, 0.0))[0] != latest[0]:
                self._line(collection, *latest, self.clock())

    def _line(self, collection: str, done: int, total: int, records: int, now: float) -> None:
        self._last[collection] = (done, now)
        elapsed = max(now - self._started, 1e-6)
        eta = elapsed / done * (total - done) if done else 0.0
        self.log(
            f"{collection}: {done:,}/{total:,} pages, {records:,} records, "
            f"{records / elapsed:,.0f} records/s, ETA {eta:,.0f} s"
        )


class TextProgressBar:
    """Per-collection progress: tqdm bars on a terminal, throttled plain lines anywhere else.

    Redrawing a bar in place only works on a terminal; in a log file or a CI console every redraw
    would land as text, so there each collection prints at most one line per `min_interval_s`
    (plus its first and last).
    """

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        *,
        interactive: bool | None = None,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._bars: dict[str, tqdm[Any]] = {}
        self._last_line: dict[str, float] = {}

    def __call__(self, collection: str, pages_done: int, pages_total: int, records: int) -> None:
        if self.interactive:
            self._draw_bar(collection, pages_done, pages_total, records)
            return
        now = self.clock()
        last = self._last_line.get(collection)
        finished = pages_done >= pages_total
        if last is not None and not finished and now - last < self.min_interval_s:
            return
        if finished and last == float("inf"):
            return  # the last line of this collection is already out
        self._last_line[collection] = float("inf") if finished else now
        self.stream.write(
            f"  {collection}: {pages_done}/{pages_total} pages, {records:,} records\n"
        )
        self.stream.flush()

    def _draw_bar(self, collection: str, pages_done: int, pages_total: int, records: int) -> None:
        bar = self._bars.get(collection)
        if bar is None:
            bar = self._bars[collection] = tqdm(
                desc=f"  {collection:<14}",
                total=pages_total,
                unit=" pages",
                file=self.stream,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
            )
        bar.total = pages_total
        bar.n = pages_done
        bar.set_postfix_str(f"{records:,} records", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
