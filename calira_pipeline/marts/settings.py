"""Every semantic choice of the marts, in one frozen object; defaults follow domain-notes.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from types import MappingProxyType

# The calendar is built from a 15-minute UTC grid (every modern UTC offset is a multiple of 15
# minutes), so operating windows must start and end on a quarter hour to be measured exactly.
GRID_MINUTES = 15
ISO_WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class OperatingWindow:
    """One staffed window on an ISO weekday (1 = Monday), in the lab's local wall-clock time.

    ``end == time(0)`` means midnight at the end of the day.
    """

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if self.weekday not in ISO_WEEKDAYS:
            raise ValueError(f"weekday must be 1 (Monday) .. 7 (Sunday), got {self.weekday}")
        for moment in (self.start, self.end):
            if moment.second or moment.microsecond or moment.minute % GRID_MINUTES:
                raise ValueError(f"operating windows must start/end on a quarter hour: {moment}")
        if self.end_minute <= self.start_minute:
            raise ValueError(f"operating window ends before it starts: {self.start}-{self.end}")

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        minute = self.end.hour * 60 + self.end.minute
        return 24 * 60 if minute == 0 else minute


@dataclass(frozen=True)
class OperatingHours:
    """A lab's weekly staffed hours; overlapping windows count once."""

    windows: tuple[OperatingWindow, ...]

    @classmethod
    def weekly(
        cls, start: time, end: time, weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    ) -> OperatingHours:
        """Same window on each of ``weekdays``, e.g. Mon-Fri 09:00-17:00."""
        return cls(tuple(OperatingWindow(day, start, end) for day in weekdays))


def _no_overrides() -> Mapping[int, OperatingHours]:
    return MappingProxyType({})


@dataclass(frozen=True)
class MartSettings:
    """Defaults follow reference/domain-notes.md; change a value here, never in the SQL."""

    # Case-folded, trimmed status values. Anything in none of the three sets is "unknown":
    # not counted, reported in booking_quality_issues and by a warning-level check.
    counted_statuses: tuple[str, ...] = ("booked", "confirmed", "approved", "ordered", "completed")
    tentative_statuses: tuple[str, ...] = ("requested",)
    excluded_statuses: tuple[str, ...] = ("cancelled", "canceled", "declined")
    # Maintenance bookings are downtime, never use (Calira bills them at 0).
    maintenance_booking_types: tuple[str, ...] = ("maintenance",)
    # False: only maintenance with a counted status is downtime; a requested maintenance slot is
    # still a plan. True: tentative maintenance counts as downtime too.
    maintenance_includes_tentative: bool = False
    # Used when neither the provider lab nor the equipment's lab has a known IANA zone.
    default_timezone: str = "UTC"
    # None: availability is calendar time only and the operating_* columns are null.
    default_operating_hours: OperatingHours | None = None
    operating_hours_by_lab: Mapping[int, OperatingHours] = field(default_factory=_no_overrides)
    # Quality thresholds.
    long_booking_hours: float = 24.0
    duration_tolerance_minutes: float = 1.0
    # Floating-point slack for hour reconciliations and the [0, 1] utilisation bound.
    hours_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        sets = (self.counted_statuses, self.tentative_statuses, self.excluded_statuses)
        folded = [status.strip().lower() for group in sets for status in group]
        if len(folded) != len(set(folded)):
            raise ValueError("a status may belong to only one of counted/tentative/excluded")

    def status_categories(self) -> list[tuple[str, str]]:
        """(case-folded status, category) pairs."""
        return [
            (status.strip().lower(), category)
            for category, group in (
                ("counted", self.counted_statuses),
                ("tentative", self.tentative_statuses),
                ("excluded", self.excluded_statuses),
            )
            for status in group
        ]

    def operating_profiles(self) -> dict[str, tuple[int | None, OperatingHours]]:
        """Profile key -> (lab id or None for the default, hours)."""
        profiles: dict[str, tuple[int | None, OperatingHours]] = {}
        if self.default_operating_hours is not None:
            profiles["default"] = (None, self.default_operating_hours)
        for lab_id, hours in self.operating_hours_by_lab.items():
            profiles[f"lab:{lab_id}"] = (lab_id, hours)
        return profiles
