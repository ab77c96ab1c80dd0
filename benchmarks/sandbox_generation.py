"""Sandbox data generation at a scale: total time, and the booking calendar's share of it.

    .venv/bin/python benchmarks/sandbox_generation.py [--scale large] [--repeat 3]

The calendar (first free slot per instrument, next-morning moves, the few double bookings) is
timed in the same process as the whole build, so machine load moves both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from calira_pipeline.sandbox import generate
from calira_pipeline.sandbox.config import DEFAULT_REFERENCE_TIME, SCALES
from calira_pipeline.sandbox.data import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="large", choices=sorted(SCALES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; scale {args.scale}")
    calendar: list[float] = []
    original = generate.book_calendar

    def timed(*a: object, **k: object) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        try:
            return original(*a, **k)  # type: ignore[arg-type]
        finally:
            calendar.append(time.perf_counter() - started)

    generate.book_calendar = timed  # type: ignore[assignment]  # a public function, wrapped
    totals = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        build_dataset(SCALES[args.scale], 0, DEFAULT_REFERENCE_TIME)
        totals.append(time.perf_counter() - started)
    total, cal = statistics.median(totals), statistics.median(calendar)
    print(f"build_dataset median {total:.2f} s (min {min(totals):.2f}); "
          f"booking calendar {cal:.2f} s = {cal / total:.0%}; without it {total - cal:.2f} s")


if __name__ == "__main__":
    main()
