"""Marts layer: one asset per SQL mart, built by DuckDB over the published Parquet files.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dagster as dg
import duckdb

from calira_pipeline import charts, reports
from calira_pipeline.assets.metadata import markdown_preview, table_metadata
from calira_pipeline.assets.previews import mart_preview
from calira_pipeline.marts import MART_SPECS, MartSpec, build_mart, mart_check_failures
from calira_pipeline.marts.build import build_order
from calira_pipeline.marts.checks import check_descriptions
from calira_pipeline.marts_config import MartConfigResource
from calira_pipeline.resources import CaliraApiResource, WarehouseResource

MARTS_GROUP = "marts"
OWNERS = ["team:facility-data"]

# Charts attached to a mart's materialisation (and drawn in the facility report).
CHARTS: dict[str, Callable[[duckdb.DuckDBPyConnection, str], charts.Chart]] = {
    "equipment_utilisation_monthly": charts.utilisation_ranking,
    "equipment_hour_of_week": charts.hour_of_week_heatmaps,
    "booking_cost_monthly": charts.cost_by_requester,
}
# Marts follow their inputs (the sensor); the nightly full refresh rewrites them all, so a mart
# older than a day means automation is off or failing.
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
)


def _severity(value: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if value == "error" else dg.AssetCheckSeverity.WARN


def data_source(instance: dg.DagsterInstance, configured: CaliraApiResource) -> str:
    """Where the stored bookings came from (`sandbox` or the API host), as their asset said; the
    configured API when this instance never loaded them (e.g. a throwaway CLI instance)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("bookings"))
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get("data_source") if materialization else None
    return str(value.value) if value is not None else configured.source


def chart_metadata(chart: charts.Chart) -> dict[str, Any]:
    """The chart as markdown plus every figure it draws, as data Dagster shows and tests read."""
    metadata: dict[str, Any] = {
        "chart": dg.MetadataValue.md(
            (f"**{charts.SANDBOX_LABEL}**\n\n" if chart.is_sandbox else "")
            + reports.markdown_image(chart.png, chart.title)
        ),
        "chart/window": chart.window,
        "data_source": chart.source,
    }
    for name, rows in chart.tables.items():
        if not rows:  # Dagster needs a schema for an empty table; say what is missing instead
            metadata[f"chart/{name}"] = dg.MetadataValue.md(f"_no rows in {chart.window}_")
            continue
        metadata[f"chart/{name}"] = dg.MetadataValue.table(
            records=[dg.TableRecord(row) for row in rows],
            schema=dg.TableSchema(
                columns=[dg.TableColumn(column, _column_type(rows, column)) for column in rows[0]]
            ),
        )
    metadata.update({f"chart/{k}": v for k, v in chart.facts.items() if v is not None})
    return metadata


def _column_type(rows: list[dict[str, charts.Cell]], column: str) -> str:
    values = [row[column] for row in rows if row[column] is not None]
    if values and all(isinstance(v, int) for v in values):
        return "int"
    return "float" if values and all(isinstance(v, int | float) for v in values) else "string"


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
        freshness_policy=FRESHNESS,
        check_specs=[
            dg.AssetCheckSpec(n, asset=spec.name, description=d)
            for n, d in check_descriptions(spec.name).items()
        ],
    )
    def _mart(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        mart_config: MartConfigResource,
        calira: CaliraApiResource,
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
                chart = CHARTS[spec.name](con, data_source(context.instance, calira))
                metadata.update(chart_metadata(chart))
            preview = markdown_preview(mart_preview(con, spec.name))
        store.commit({spec.name: table})
        metadata.update(table_metadata(spec.name, table, spec.column_descriptions))
        metadata["preview"] = dg.MetadataValue.md(preview)  # names beside ids, newest first
        context.log.info(f"{spec.name}: {table.num_rows} rows")
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=c.check_name,
                    passed=c.passed,
                    severity=_severity(c.severity),
                    description=c.description,
                    metadata={"failing_rows": c.failing_rows, **c.metadata},
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
    freshness_policy=FRESHNESS,
)
def facility_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, calira: CaliraApiResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """The facility report: $CALIRA_DATA_DIR/reports/report.html (header with source, periods
    and definitions; each chart with its table of numbers) and a PNG per chart."""
    store = warehouse.warehouse()
    source = data_source(context.instance, calira)
    with store.scratch_connection() as con:
        rendered = [render(con, source) for render in CHARTS.values()]
    paths = store.write_report(
        "report.html",
        reports.html_report(rendered, source),
        {chart.title: chart.png for chart in rendered},
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.url(paths[0].as_uri()),  # clickable in the UI
            "path": dg.MetadataValue.path(str(paths[0])),
            "data_source": source,
            "periods": dg.MetadataValue.md(
                "\n".join(f"- {chart.title}: {chart.window}" for chart in rendered)
            ),
            "charts": len(rendered),
            "dagster/row_count": len(rendered),
        }
    )


MART_ASSETS: list[dg.AssetsDefinition] = [
    *(build_mart_asset(MART_SPECS[name]) for name in build_order()),
    facility_report,
]
