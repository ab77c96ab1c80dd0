"""Staging and mart checks as Dagster asset checks: they run after the build step (or alone, from
`dagster asset check` or the UI's "Execute checks"), and ERROR ones block what reads the table.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

from collections.abc import Iterator

import dagster as dg

from calira_pipeline.marts import STAGING
from calira_pipeline.marts.checks import check_descriptions, check_marts, check_severities
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.marts import MART_NAMES
from calira_pipeline.wiring.resources import WarehouseResource


def _severity(value: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if value == "error" else dg.AssetCheckSeverity.WARN


def _specs(names: list[str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check,
            asset=name,
            description=description,
            # A failed ERROR check fails its step, so steps reading the table are skipped.
            blocking=check_severities(name)[check] == "error",
        )
        for name in names
        for check, description in check_descriptions(name).items()
    ]


def _run_checks(
    context: dg.AssetCheckExecutionContext,
    names: list[str],
    warehouse: WarehouseResource,
    mart_config: MartConfigResource,
) -> Iterator[dg.AssetCheckResult]:
    wanted: dict[str, set[str]] = {}
    for key in context.selected_asset_check_keys:
        wanted.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    store = warehouse.warehouse()
    settings = mart_config.settings()
    with store.incoming() as folder, store.scratch_connection() as con:
        mart_config.limits().apply(con, folder / "spill")
        built = [n for n in names if n in wanted and store.has_table(n)]
        results = check_marts(con, built, settings) if built else {}
        for name in (n for n in names if n in wanted):
            if name not in results:
                yield from _not_built(name, wanted[name])
                continue
            for result in results[name]:
                if result.check_name in wanted[name]:
                    yield dg.AssetCheckResult(
                        asset_key=name,
                        check_name=result.check_name,
                        passed=result.passed,
                        severity=_severity(result.severity),
                        description=result.description,
                        metadata={"failing_rows": result.failing_rows, **result.metadata},
                    )


def _not_built(name: str, checks: set[str]) -> Iterator[dg.AssetCheckResult]:
    for check in sorted(checks):
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name=check,
            passed=False,
            severity=_severity(check_severities(name)[check]),
            description=f"{name} has not been materialised yet; materialise it first",
        )


def checks_for(op_name: str, names: list[str]) -> dg.AssetChecksDefinition:
    """Every check of `names` in one subsettable step (one DuckDB session)."""

    @dg.multi_asset_check(name=op_name, specs=_specs(names), can_subset=True)
    def _checks(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        mart_config: MartConfigResource,
    ) -> Iterator[dg.AssetCheckResult]:
        yield from _run_checks(context, names, warehouse, mart_config)

    return _checks


staging_checks = checks_for("staging_checks", list(STAGING))
mart_checks = checks_for("mart_checks", MART_NAMES)
MART_CHECKS: list[dg.AssetChecksDefinition] = [staging_checks, mart_checks]
# The checks alone over what is published (Dagster 1.13's CLI has no `asset check` command):
# `dagster job execute -m calira_pipeline.definitions -j run_mart_checks`.
run_mart_checks = dg.define_asset_job(
    "run_mart_checks",
    selection=dg.AssetSelection.checks_for_assets(*STAGING, *MART_NAMES),
    description="Every staging and mart check over the published tables; rebuilds nothing.",
)
