"""What each mart is: its SQL file, inputs, grain and column meanings (the public contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from calira_pipeline.marts.columns import (
    BOOKING_FACTS,
    COST,
    HOUR_OF_WEEK,
    INSTRUMENT,
    INTERVAL_DAYS,
    NO_PROJECT_NOTE,
    QUALITY_ISSUES,
    UTILISATION,
)

# Shared temp tables a mart's SQL reads (sql/_prelude_<name>.sql), in the order they must run.
PRELUDE_ORDER = (
    "zones",
    "facts",
    "staged",
    "instruments",
    "calendar",
    "instrument_days",
    "local_months",
    "operating",
    "pieces",
    "parent_pieces",
    "staged_pieces",
    "rollups",
)
# The staging layer: tables every mart reads instead of re-deriving them. `facts` normalises raw
# bookings into booking_facts and `pieces`/`parent_pieces` cut them into equipment_interval_days;
# the marts read those tables back (`staged`, `staged_pieces`).
STAGING = ("booking_facts", "equipment_interval_days")
_READS_FACTS = "staged"
_READS_PIECES = "staged_pieces"
_ALL_PRELUDES = ("zones", "staged", "instruments", "calendar", "operating")
_CALENDAR = ("zones", "staged", "instruments", "calendar")
# Checks reconcile a mart against the raw bookings, normalised afresh (not against staging).
CHECK_PRELUDES = ("zones", "facts")
_RAW = ("bookings", "equipment", "accounts")
_RAW_BESIDE_STAGING = ("equipment", "accounts")


@dataclass(frozen=True)
class MartSpec:
    name: str
    sql_file: str
    depends_on_raw: tuple[str, ...]
    depends_on_marts: tuple[str, ...]
    grain: str
    description: str
    column_descriptions: dict[str, str]
    grain_columns: tuple[str, ...] = ()
    preludes: tuple[str, ...] = _ALL_PRELUDES
    # Columns that must lie in [0, 1] (union-based occupancy).
    ratio_columns: tuple[str, ...] = ()
    # Written sorted by grain_columns. Off for the large tables: sorting millions of rows costs a
    # quarter of the build's CPU and most of its memory (DuckDB buffers the whole table to sort
    # it), while an unsorted COPY streams. Readers never depend on file order.
    sorted_on_write: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def staging_inputs(self) -> tuple[str, ...]:
        """The staging tables this table's SQL reads (through its preludes)."""
        inputs: tuple[str, ...] = ("booking_facts",) if _READS_FACTS in self.preludes else ()
        if _READS_PIECES in self.preludes:
            inputs += ("equipment_interval_days",)
        return inputs

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every staging table and mart built before this one (its asset dependencies)."""
        return (*self.staging_inputs, *self.depends_on_marts)


def _rollup(level: str, key: str, extra: dict[str, str], note: str) -> MartSpec:
    name = f"{level}_utilisation_monthly"
    return MartSpec(
        name=name,
        sql_file=f"{name}.sql",
        depends_on_raw=("accounts",),
        depends_on_marts=("equipment_utilisation_monthly",),
        grain=f"One row per {level} per local month.",
        description=f"Instrument hours summed per {level}; utilisation = sum booked / sum "
        "available. Instruments without a lab are left out. " + note,
        column_descriptions={
            key: f"{level.capitalize()} id.",
            "month": "First day of the local month (DATE).",
            "instrument_count": "Instruments in the row.",
            **extra,
            **UTILISATION,
        },
        grain_columns=(key, "month"),
        preludes=("rollups",),
        ratio_columns=("utilisation", "operating_utilisation"),
    )


_SPECS = (
    MartSpec(
        name="booking_facts",
        sql_file="booking_facts.sql",
        depends_on_raw=_RAW,
        depends_on_marts=(),
        grain="One row per raw booking.",
        description="Staging: bookings normalised once (case-folded status and its category, "
        "usage role, provider-lab zone with fallbacks, hours); every mart reads this table "
        "instead of normalising raw bookings again.",
        column_descriptions=BOOKING_FACTS,
        grain_columns=("booking_id",),
        sorted_on_write=False,
        preludes=("zones", "facts"),
    ),
    MartSpec(
        name="equipment_interval_days",
        sql_file="equipment_interval_days.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per (kind, equipment, interval, local day the interval covers).",
        description="Staging: counted/tentative bookings and their unions (occupancy, "
        "maintenance, parent families) cut at the instrument's local midnights; the daily, "
        "parent and hour-of-week marts read these pieces.",
        column_descriptions=INTERVAL_DAYS,
        grain_columns=("kind", "equipment_id", "interval_id", "day"),
        sorted_on_write=False,
        preludes=(*_CALENDAR, "pieces", "parent_pieces"),
    ),
    MartSpec(
        name="equipment_utilisation_daily",
        sql_file="equipment_utilisation_daily.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per instrument per local day, first to last day of booking data.",
        description="Occupancy per instrument and local day in the provider lab's zone; idle "
        "days and never-booked instruments included with 0.",
        column_descriptions={
            **INSTRUMENT,
            "day": "Local day (DATE).",
            "actual_use_hours": "Reserved for logged use; always null (no source yet).",
            **UTILISATION,
        },
        grain_columns=("equipment_id", "day"),
        sorted_on_write=False,
        preludes=(*_ALL_PRELUDES, "instrument_days", "staged_pieces"),
        ratio_columns=("utilisation", "operating_utilisation"),
    ),
    MartSpec(
        name="equipment_utilisation_monthly",
        sql_file="equipment_utilisation_monthly.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=("equipment_utilisation_daily",),
        grain="One row per instrument per local month of the data window.",
        description="Daily hours summed per local month; available_hours is the whole month's "
        "local length (DST-aware), also for the first and last month of data.",
        column_descriptions={
            **INSTRUMENT,
            "month": "First day of the local month (DATE).",
            "actual_use_hours": "Reserved for logged use; always null (no source yet).",
            **UTILISATION,
            "booking_count": "Distinct counted use bookings touching the month.",
        },
        grain_columns=("equipment_id", "month"),
        ratio_columns=("utilisation", "operating_utilisation"),
    ),
    MartSpec(
        name="parent_equipment_utilisation_daily",
        sql_file="parent_equipment_utilisation_daily.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per parent instrument per local day of the data window.",
        description="A parent's occupancy as the union of its own and all descendants' counted "
        "bookings (children are parts or modes of one instrument); child rows stay in "
        "equipment_utilisation_daily.",
        column_descriptions={
            **INSTRUMENT,
            "equipment_id": "Parent equipment id.",
            "day": "Local day (DATE).",
            "descendant_count": "Children, grandchildren, ... of the parent.",
            **{k: v for k, v in UTILISATION.items() if not k.startswith(("op", "tent"))},
        },
        grain_columns=("equipment_id", "day"),
        sorted_on_write=False,
        preludes=(*_CALENDAR, "staged_pieces"),
        ratio_columns=("utilisation",),
    ),
    _rollup(
        "lab",
        "lab_id",
        {
            "lab_name": "Lab name.",
            "department_id": "Department.",
            "organisation_id": "Organisation.",
        },
        "",
    ),
    _rollup(
        "department",
        "department_id",
        {
            "department_name": "Department name.",
            "organisation_id": "Organisation.",
            "lab_count": "Labs in the row.",
        },
        "Labs without a department (independent or directly under an organisation) are left "
        "out; they appear in the lab and organisation marts.",
    ),
    _rollup(
        "organisation",
        "organisation_id",
        {
            "organisation_name": "Organisation name.",
            "lab_count": "Labs in the row.",
            "is_independent_lab": "True when the row is an independent lab rolled up to itself.",
        },
        "An independent lab rolls up to itself (organisation_id = lab id), as the API does.",
    ),
    MartSpec(
        name="equipment_hour_of_week",
        sql_file="equipment_hour_of_week.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per instrument per ISO weekday per local hour (7 x 24).",
        description="Hour-of-week heatmap in local wall-clock time over the data window.",
        column_descriptions=HOUR_OF_WEEK,
        grain_columns=("equipment_id", "weekday", "hour"),
        sorted_on_write=False,
        preludes=(*_CALENDAR, "staged_pieces"),
        ratio_columns=("occupancy",),
    ),
    MartSpec(
        name="booking_cost_monthly",
        sql_file="booking_cost_monthly.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per (month, provider lab, requester lab, currency, booking type, status).",
        description="Booking cost per provider-local month; every status kept as a dimension, "
        "never summed across currencies." + NO_PROJECT_NOTE,
        column_descriptions={
            **COST,
            "requester_lab_id": "Requesting lab.",
            "status_raw_values": "The status spellings merged into `status`.",
        },
        grain_columns=(
            "month",
            "provider_lab_id",
            "requester_lab_id",
            "currency",
            "booking_type",
            "status",
        ),
        preludes=(*_CALENDAR, "local_months"),
    ),
    MartSpec(
        name="booking_cost_by_requester_group_monthly",
        sql_file="booking_cost_by_requester_group_monthly.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per (month, provider lab, requester group, currency, booking type, status).",
        description="Booking cost per requester group (by name: the API sends no group id)."
        + NO_PROJECT_NOTE,
        column_descriptions={
            **COST,
            "requester_group_name": "Requester group name.",
            "requester_lab_count": "Distinct requesting labs in the row.",
        },
        grain_columns=(
            "month",
            "provider_lab_id",
            "requester_group_name",
            "currency",
            "booking_type",
            "status",
        ),
        preludes=(*_CALENDAR, "local_months"),
    ),
    MartSpec(
        name="booking_quality_issues",
        sql_file="booking_quality_issues.sql",
        depends_on_raw=_RAW_BESIDE_STAGING,
        depends_on_marts=(),
        grain="One row per booking per data-quality issue.",
        description="Issues: overlap (counted use bookings on one instrument), missing_time, "
        "non_positive_duration, longer_than_limit, duration_mismatch, unknown_status, "
        "unknown_provider_timezone (fallback zone used), null_cost_counted, missing_equipment, "
        "unknown_currency (neither booking nor equipment has one), list_detail_disagreement.",
        column_descriptions=QUALITY_ISSUES,
        grain_columns=("booking_id", "issue"),
        preludes=("zones", "staged"),
    ),
)

MART_SPECS: dict[str, MartSpec] = {spec.name: spec for spec in _SPECS}
