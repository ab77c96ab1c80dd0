"""Asset checks on the raw tables: each is a SQL query counting the rows that break a rule."""

from dataclasses import dataclass

import dagster as dg
import duckdb

from calira_pipeline.storage.schema import RAW_TABLES

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class RawCheck:
    name: str
    table: str
    description: str
    violations_sql: str  # selects the offending rows
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    needs: tuple[str, ...] = ()


def _primary_key_checks() -> list[RawCheck]:
    checks = []
    for spec in RAW_TABLES.values():
        key = ", ".join(spec.primary_key)
        nulls = " or ".join(f"{k} is null" for k in spec.primary_key)
        checks.append(
            RawCheck(
                name="primary_key_unique_not_null",
                table=spec.name,
                description=f"({key}) is unique and never null.",
                violations_sql=(
                    f'select {key}, count(*) as copies from "{spec.name}" group by all '
                    f"having count(*) > 1 or bool_or({nulls})"
                ),
            )
        )
    return checks


_COUNTED_TYPES = "lower(coalesce(booking_type, '')) <> 'maintenance'"

RULE_CHECKS = [
    RawCheck(
        "equipment_exists",
        "bookings",
        "Every booking's equipment_id is a known piece of equipment.",
        "select id, equipment_id from bookings b where equipment_id is not null and not exists "
        "(select 1 from equipment e where e.id = b.equipment_id)",
        dg.AssetCheckSeverity.WARN,
        ("equipment",),
    ),
    RawCheck(
        "lab_exists",
        "equipment",
        "Every piece of equipment belongs to a known lab account.",
        "select id, lab_id from equipment e where lab_id is null or not exists "
        "(select 1 from accounts a where a.id = e.lab_id)",
        dg.AssetCheckSeverity.WARN,
        ("accounts",),
    ),
    RawCheck(
        "end_after_start",
        "bookings",
        "end_time is after start_time.",
        "select id, start_time, end_time from bookings where end_time <= start_time",
    ),
    RawCheck(
        "cost_not_negative",
        "bookings",
        "No booking has a negative cost.",
        "select id, cost from bookings where cost < 0",
    ),
    RawCheck(
        "maintenance_costs_nothing",
        "bookings",
        "Maintenance bookings cost 0.",
        f"select id, cost from bookings where not ({_COUNTED_TYPES}) and coalesce(cost, 0) <> 0",
    ),
    RawCheck(
        "one_currency_per_equipment",
        "bookings",
        "All bookings of one piece of equipment are charged in one currency.",
        "select equipment_id, list(distinct currency) as currencies from bookings "
        "where currency is not null group by equipment_id having count(distinct currency) > 1",
    ),
    # A warning, never blocking: a lab without a usable zone is bucketed in
    # CALIRA_DEFAULT_TIMEZONE and its bookings are listed in booking_quality_issues.
    RawCheck(
        "lab_has_timezone",
        "accounts",
        "Every lab has a time zone DuckDB recognises. Bookings of any other lab are bucketed in "
        "CALIRA_DEFAULT_TIMEZONE (default UTC) and listed in booking_quality_issues.",
        "select id, name, timezone from accounts where lower(account_type) = 'lab' "
        "and (coalesce(trim(timezone), '') = '' or lower(trim(timezone)) not in "
        "(select lower(name) from pg_timezone_names()))",
        dg.AssetCheckSeverity.WARN,
    ),
]


def check_spec(check: RawCheck) -> dg.AssetCheckSpec:
    """The check as part of the raw step (`fetch_calira`), which evaluates it over staged files."""
    return dg.AssetCheckSpec(
        check.name,
        asset=check.table,
        description=check.description,
        blocking=check.severity == dg.AssetCheckSeverity.ERROR,
    )


def evaluate(
    check: RawCheck, con: duckdb.DuckDBPyConnection, tables: set[str]
) -> dg.AssetCheckResult:
    """Run `check` on `con`, which has a view per name in `tables` (staged or published)."""
    missing = [t for t in (check.table, *check.needs) if t not in tables]
    if missing:
        return _not_evaluated(check, missing)
    relation = con.sql(check.violations_sql)
    count_row = con.sql(f"select count(*) from ({check.violations_sql})").fetchone()
    failing = int(count_row[0]) if count_row else 0
    sample = relation.limit(SAMPLE_ROWS).fetchall()
    return dg.AssetCheckResult(
        asset_key=check.table,
        check_name=check.name,
        passed=failing == 0,
        severity=check.severity,
        metadata={
            "failing_rows": failing,
            "sample": dg.MetadataValue.json([list(map(str, r)) for r in sample]),
        },
    )


def _not_evaluated(check: RawCheck, missing: list[str]) -> dg.AssetCheckResult:
    # A fresh data directory (e.g. `dg launch --assets bookings` alone) has no referenced table
    # yet: say so instead of failing the run with a DuckDB "table does not exist" error.
    names = ", ".join(missing)
    return dg.AssetCheckResult(
        asset_key=check.table,
        check_name=check.name,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Not evaluated: {names} has not been materialised in this data directory yet; "
            f"materialise {names} and the check runs with the next materialisation."
        ),
        metadata={"evaluated": False, "missing_tables": dg.MetadataValue.json(missing)},
    )


# Evaluated inside the raw step, so a check sees exactly the data it is about to publish.
RAW_CHECKS: list[RawCheck] = [*_primary_key_checks(), *RULE_CHECKS]
