"""Data checks on a built mart (calira_pipeline.wiring.mart_checks runs them as asset checks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import duckdb

from calira_pipeline.marts.grain import duplicate_grains
from calira_pipeline.marts.session import (
    count_of,
    drop_scratch,
    load_sql,
    prepare_session,
    quoted,
)
from calira_pipeline.marts.settings import MartSettings
from calira_pipeline.marts.specs import CHECK_PRELUDES, MART_SPECS, MartSpec

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    passed: bool
    failing_rows: int
    description: str
    severity: Severity = "error"
    metadata: dict[str, float | int] = field(default_factory=dict)


# Real facilities see 1-3 % of counted use bookings double-booked; far more means the source
# calendar (or its export) lets overlapping bookings through and utilisation is suspect.
OVERLAP_SHARE_WARN = 0.05


@dataclass(frozen=True)
class _SqlCheck:
    name: str
    sql_file: str
    description: str
    severity: Severity = "error"


_RECONCILE_HOURS = _SqlCheck(
    "booked_hours_sum_reconciles_with_raw",
    "check_booked_hours_reconcile.sql",
    "Per instrument, booked_hours_sum over all periods equals the counted use bookings' "
    "durations in raw bookings (failing rows = instruments off by more than the tolerance).",
)
_RECONCILE_COST = _SqlCheck(
    "cost_reconciles_with_raw",
    "check_cost_reconcile.sql",
    "Per currency, booking count and exact total cost equal raw bookings "
    "(failing rows = currencies that differ).",
)
_SINGLE_CURRENCY = _SqlCheck(
    "single_known_currency_per_row",
    "check_single_currency.sql",
    "No row carries cost without a currency, so no row can mix currencies.",
)
_UNKNOWN_STATUS = _SqlCheck(
    "no_unknown_statuses",
    "check_unknown_statuses.sql",
    "Every raw booking status is counted, tentative or excluded in MartSettings "
    "(failing rows = bookings with an unknown status; they are not counted).",
    "warning",
)

_WITHIN_AVAILABLE = _SqlCheck(
    "booked_plus_maintenance_within_available",
    "check_booked_plus_maintenance.sql",
    "Use (booked_hours) plus downtime (maintenance_hours) fit in available_hours: more means "
    "maintenance overlaps counted use in the source calendar (failing rows = such periods).",
    "warning",
)
_OVERLAP_SHARE = "overlap_share_within_threshold"
_OVERLAP_DESCRIPTION = (
    f"At most {OVERLAP_SHARE_WARN:.0%} of counted use bookings overlap another on the same "
    "instrument (real facilities see 1-3 %; failing rows = overlapping bookings when above)."
)

# The normalised raw booking columns the checks' SQL reads (check_*.sql, _overlap_share).
_RAW_COLUMNS_CHECKED = (
    "equipment_id",
    "usage_role",
    "hours",
    "currency",
    "cost",
    "status_category",
)

_SQL_CHECKS: dict[str, tuple[_SqlCheck, ...]] = {
    "equipment_utilisation_daily": (_RECONCILE_HOURS, _WITHIN_AVAILABLE),
    "equipment_utilisation_monthly": (_RECONCILE_HOURS, _WITHIN_AVAILABLE),
    "booking_cost_monthly": (_RECONCILE_COST, _SINGLE_CURRENCY, _UNKNOWN_STATUS),
    "booking_cost_by_requester_group_monthly": (_RECONCILE_COST, _SINGLE_CURRENCY),
    "booking_quality_issues": (_UNKNOWN_STATUS,),
}


def _generic_checks(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, settings: MartSettings
) -> list[CheckResult]:
    # Identifiers come from MART_SPECS (code, not user input); the tolerance is bound.
    results: list[CheckResult] = []
    if spec.grain_columns:
        duplicates = duplicate_grains(con, "mart__target", spec.grain_columns)
        results.append(
            CheckResult(
                "grain_is_unique",
                duplicates == 0,
                duplicates,
                f"At most one row per ({', '.join(spec.grain_columns)}).",
            )
        )
    if spec.ratio_columns:
        outside = " OR ".join(
            f"{quoted(c)} < -$tol OR {quoted(c)} > 1 + $tol" for c in spec.ratio_columns
        )
        row = con.execute(
            f"SELECT count(*) FROM mart__target WHERE {outside}", {"tol": settings.hours_tolerance}
        ).fetchone()
        failing = int(row[0]) if row is not None else 0
        results.append(
            CheckResult(
                "utilisation_between_0_and_1",
                failing == 0,
                failing,
                f"{', '.join(spec.ratio_columns)} lie in [0, 1] (union-based occupancy).",
            )
        )
    return results


def mart_check_failures(
    con: duckdb.DuckDBPyConnection, name: str, settings: MartSettings
) -> list[CheckResult]:
    """Run every check of mart `name`; `con` has the raw views and the built mart as a view."""
    return check_marts(con, [name], settings)[name]


def check_marts(
    con: duckdb.DuckDBPyConnection, names: list[str], settings: MartSettings
) -> dict[str, list[CheckResult]]:
    """Every check of each mart in `names`, sharing one normalisation of the raw bookings (the
    reconciliations' reference) in one session."""
    results: dict[str, list[CheckResult]] = {}
    try:
        prepare_session(con, settings, CHECK_PRELUDES)
        if any(name in _SQL_CHECKS or name == "booking_quality_issues" for name in names):
            # Several checks scan the normalised raw bookings: normalise them once, and only
            # the columns the check SQL reads (the rest of the normalisation is half its cost).
            con.execute(
                "CREATE OR REPLACE TEMP TABLE mart__raw_bookings AS "
                f"SELECT {', '.join(_RAW_COLUMNS_CHECKED)} FROM mart__bookings;"
                "CREATE OR REPLACE TEMP VIEW mart__bookings AS SELECT * FROM mart__raw_bookings"
            )
        for name in names:
            results[name] = _checks_of(con, MART_SPECS[name], settings)
    finally:
        drop_scratch(con)
    return results


def _checks_of(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, settings: MartSettings
) -> list[CheckResult]:
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW mart__target AS SELECT * FROM {quoted(spec.name)}"
    )
    results = _generic_checks(con, spec, settings)
    for check in _SQL_CHECKS.get(spec.name, ()):
        failing = count_of(con, load_sql(check.sql_file))
        results.append(
            CheckResult(check.name, failing == 0, failing, check.description, check.severity)
        )
    if spec.name == "booking_quality_issues":
        results.append(_overlap_share(con))
    return results


def _overlap_share(con: duckdb.DuckDBPyConnection) -> CheckResult:
    overlapping = count_of(
        con, "SELECT count(DISTINCT booking_id) FROM mart__target WHERE issue = 'overlap'"
    )
    counted = count_of(con, "SELECT count(*) FROM mart__bookings WHERE usage_role = 'use'")
    share = overlapping / counted if counted else 0.0
    passed = share <= OVERLAP_SHARE_WARN
    return CheckResult(
        _OVERLAP_SHARE,
        passed,
        0 if passed else overlapping,
        _OVERLAP_DESCRIPTION,
        "warning",
        {"overlap_share": round(share, 4), "overlapping_bookings": overlapping,
         "counted_use_bookings": counted},
    )


def check_descriptions(name: str) -> dict[str, str]:
    """The checks `mart_check_failures` reports for mart `name` and what each verifies, known
    before it runs (the Dagster check definitions)."""
    spec = MART_SPECS[name]
    checks: dict[str, str] = {}
    if spec.grain_columns:
        checks["grain_is_unique"] = f"At most one row per ({', '.join(spec.grain_columns)})."
    if spec.ratio_columns:
        checks["utilisation_between_0_and_1"] = (
            f"{', '.join(spec.ratio_columns)} lie in [0, 1] (union-based occupancy)."
        )
    checks.update({check.name: check.description for check in _SQL_CHECKS.get(name, ())})
    if name == "booking_quality_issues":
        checks[_OVERLAP_SHARE] = _OVERLAP_DESCRIPTION
    return checks


def check_severities(name: str) -> dict[str, Severity]:
    """Each check of mart `name` and its severity, known before it runs (error ones block)."""
    severities: dict[str, Severity] = dict.fromkeys(check_descriptions(name), "error")
    severities.update({check.name: check.severity for check in _SQL_CHECKS.get(name, ())})
    if name == "booking_quality_issues":
        severities[_OVERLAP_SHARE] = "warning"
    return severities


def check_names(name: str) -> list[str]:
    """The checks `mart_check_failures` reports for mart `name`, known before it runs."""
    return list(check_descriptions(name))
