"""Marts layer: one asset per SQL mart, built by DuckDB over the published Parquet files.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

from datetime import timedelta
from typing import Any

import dagster as dg

from calira_pipeline import reports
from calira_pipeline.assets.metadata import table_metadata
from calira_pipeline.marts import MART_SPECS, MartSpec, build_mart, mart_check_failures
from calira_pipeline.marts.build import build_order
from calira_pipeline.marts.checks import check_names
from calira_pipeline.marts_config import MartConfigResource
from calira_pipeline.resources import WarehouseResource

MARTS_GROUP = "marts"
OWNERS = ["team:facility-data"]

# Charts attached to a mart's materialisation: mart name -> (title, renderer).
CHARTS = {
    "equipment_utilisation_monthly": (
        "Instruments ranked by utilisation",
        reports.utilisation_ranking,
    ),
    "equipment_hour_of_week": ("Hour-of-week occupancy by lab", reports.hour_of_week_heatmaps),
    "booking_cost_monthly": ("Monthly cost by requester lab", reports.cost_by_requester),
}


# Managers read the marts the morning after the nightly refresh: warn when a mart misses one night,
# fail when it misses two (the raw tables carry the same windows).
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=50), warn_window=timedelta(hours=26)
)


def _severity(value: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if value == "error" else dg.AssetCheckSeverity.WARN


def build_mart_asset(spec: MartSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name=MARTS_GROUP,
        deps=[*spec.depends_on_raw, *spec.depends_on_marts],
        description=f"{spec.grain} {spec.description}",
        kinds={"sql", "duckdb", "parquet"},
        owners=OWNERS,
        tags={"layer": "marts"},
        automation_condition=dg.AutomationCondition.eager(),
        freshness_policy=MART_FRESHNESS,
        check_specs=[dg.AssetCheckSpec(n, asset=spec.name) for n in check_names(spec.name)],
    )
    def _mart(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        mart_config: MartConfigResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        settings = mart_config.settings()
        store = warehouse.warehouse()
        metadata: dict[str, Any] = {}
        with store.scratch_connection() as con:
            table = build_mart(con, spec.name, settings)
            # The checks and the chart read the new table under its own name before it is stored
            # (not under the marts' "mart__" scratch prefix, which the checks drop when done).
            con.register("built_mart", table)
            con.execute(f'create or replace view "{spec.name}" as select * from built_mart')
            checks = mart_check_failures(con, spec.name, settings)
            if spec.name in CHARTS and table.num_rows:
                title, render = CHARTS[spec.name]
                metadata["chart"] = dg.MetadataValue.md(reports.markdown_image(render(con), title))
        store.commit({spec.name: table})
        metadata.update(table_metadata(spec.name, table, spec.column_descriptions))
        context.log.info(f"{spec.name}: {table.num_rows} rows")
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=c.check_name,
                    passed=c.passed,
                    severity=_severity(c.severity),
                    description=c.description,
                    metadata={"failing_rows": c.failing_rows},
                )
                for c in checks
            ],
        )

    return _mart


@dg.asset(
    group_name="reports",
    deps=list(CHARTS),
    kinds={"html"},
    owners=OWNERS,
    tags={"layer": "reports"},
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=MART_FRESHNESS,
)
def facility_report(warehouse: WarehouseResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """One self-contained HTML report (and a PNG per chart) under $CALIRA_DATA_DIR/reports/."""
    store = warehouse.warehouse()
    with store.scratch_connection() as con:
        charts = {title: render(con) for title, render in CHARTS.values()}
    paths = store.write_report("report.html", reports.html_report(charts), charts)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(paths[0])),
            "charts": len(charts),
            "dagster/row_count": len(charts),
        }
    )


MART_ASSETS: list[dg.AssetsDefinition] = [
    *(build_mart_asset(MART_SPECS[name]) for name in build_order()),
    facility_report,
]
