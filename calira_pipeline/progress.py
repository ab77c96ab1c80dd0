"""Ingestion progress for whoever is watching: the Dagster run log, and the CLI's progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

Listener = Callable[[str, int, int, int], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


def publish(collection: str, pages_done: int, pages_total: int, records: int) -> None:
    for listener in list(_listeners):
        listener(collection, pages_done, pages_total, records)


class TextProgressBar:
    """`bookings  [██████░░░░░░]  12/20 pages  1,200 records`, redrawn in place."""

    WIDTH = 30

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.current: str | None = None

    def __call__(self, collection: str, pages_done: int, pages_total: int, records: int) -> None:
        if self.current not in (None, collection):
            self.stream.write("\n")
        self.current = collection
        filled = self.WIDTH * pages_done // max(pages_total, 1)
        bar = "█" * filled + "░" * (self.WIDTH - filled)
        self.stream.write(
            f"\r  {collection:<14} [{bar}] {pages_done:>5}/{pages_total} pages "
            f"{records:>9,} records"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.current is not None:
            self.stream.write("\n")
            self.stream.flush()
