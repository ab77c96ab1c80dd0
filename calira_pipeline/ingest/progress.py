"""Ingestion progress for whoever is watching: the Dagster run log, and the CLI's progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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
    """Progress lines for a run log: about ten per collection however long it is, at most one
    per `min_interval_s`, and always the line where a collection reaches its total (pages read
    past the reported total each reach it again: those stay throttled). Rates count from the
    start of the fetch, when every collection starts at once."""

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
        self._last: dict[str, tuple[int, float, bool]] = {}  # pages, when, reached the total

    def __call__(self, collection: str, pages_done: int, pages_total: int, records: int) -> None:
        now = self.clock()
        pages_then, logged_at, ended = self._last.get(collection, (0, float("-inf"), False))
        finished = pages_done >= pages_total
        if not (finished and not ended):
            step = max(1, pages_total // 10)
            if now - logged_at < self.min_interval_s:
                return
            if not finished and pages_done - pages_then < step:
                return
        self._last[collection] = (pages_done, now, finished)
        elapsed = max(now - self._started, 1e-6)
        eta = elapsed / pages_done * (pages_total - pages_done) if pages_done else 0.0
        self.log(
            f"{collection}: {pages_done:,}/{pages_total:,} pages, {records:,} records, "
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
