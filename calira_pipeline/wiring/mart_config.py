"""Mart settings from configuration: CALIRA_OPERATING_HOURS and friends -> MartSettings."""

from __future__ import annotations

import re
from datetime import time

import dagster as dg

from calira_pipeline.marts import DuckDBLimits, MartSettings, OperatingHours

_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_SPEC = re.compile(
    r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)$"
)


class OperatingHoursError(ValueError):
    """CALIRA_OPERATING_HOURS cannot be parsed; the message shows the expected form."""


def parse_weekly_hours(text: str) -> OperatingHours:
    """`Mon-Fri 09:00-17:00` (also `Sat 10:00-14:00`) -> OperatingHours."""
    match = _SPEC.match(text.strip().lower())
    if not match or match["first"] not in _DAYS or (match["last"] or "mon") not in _DAYS:
        raise OperatingHoursError(f"operating hours {text!r} must look like 'Mon-Fri 09:00-17:00'")
    first = _DAYS[match["first"]]
    last = _DAYS[match["last"]] if match["last"] else first
    if last < first:
        raise OperatingHoursError(
            f"operating hours {text!r}: {match['last']} is before {match['first']}"
        )
    try:
        start, end = time.fromisoformat(match["start"]), time.fromisoformat(match["end"])
        return OperatingHours.weekly(start, end, tuple(range(first, last + 1)))
    except ValueError as exc:
        raise OperatingHoursError(f"operating hours {text!r}: {exc}") from exc


def parse_operating_hours(
    text: str | None,
) -> tuple[OperatingHours | None, dict[int, OperatingHours]]:
    """`Mon-Fri 09:00-17:00; lab:42=Mon-Sat 08:00-20:00` -> (default, per-lab overrides)."""
    default: OperatingHours | None = None
    by_lab: dict[int, OperatingHours] = {}
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        if part.lower().startswith("lab:") and "=" in part:
            lab, hours = part[4:].split("=", 1)
            if not lab.strip().isdigit():
                raise OperatingHoursError(f"operating hours {part!r}: lab id must be a number")
            by_lab[int(lab)] = parse_weekly_hours(hours)
        else:
            default = parse_weekly_hours(part)
    return default, by_lab


class MartConfigResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """How marts count time: operating hours (CALIRA_OPERATING_HOURS), fallback zone; and the
    DuckDB that builds them (CALIRA_DUCKDB_MEMORY_LIMIT, CALIRA_DUCKDB_THREADS)."""

    operating_hours: str | None = None
    default_timezone: str = "UTC"
    duckdb_memory_limit: str = DuckDBLimits.memory_limit
    duckdb_threads: int | None = None

    def limits(self) -> DuckDBLimits:
        return DuckDBLimits(self.duckdb_memory_limit, self.duckdb_threads)

    def settings(self) -> MartSettings:
        default, by_lab = parse_operating_hours(self.operating_hours)
        return MartSettings(
            default_operating_hours=default,
            operating_hours_by_lab=by_lab,
            default_timezone=self.default_timezone,
        )
