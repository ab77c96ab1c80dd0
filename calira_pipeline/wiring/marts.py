"""Staging and marts layers: one subsettable step per layer builds the selected tables in one
DuckDB session over the published Parquet files; DuckDB writes every file itself.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from calira_pipeline.marts import MART_SPECS, STAGING, build_tables
from calira_pipeline.marts.build import build_order
from calira_pipeline.reporting import charts, reports
from calira_pipeline.storage import Warehouse
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.metadata import markdown_preview, table_metadata
from calira_pipeline.wiring.previews import mart_preview
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource

MARTS_GROUP = "marts"
STAGING_GROUP = "staging"
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


def data_source(context: dg.AssetExecutionContext, configured: CaliraApiResource) -> str:
    """Where the stored bookings came from (`sandbox` or the API host), as their asset said; the
    configured API when this instance never loaded them (e.g. a throwaway CLI instance).

    In a tenant's run, its own partition's bookings: the latest of the asset overall may be
    another tenant's, loaded while this run was running."""
    key = dg.AssetKey("bookings")
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(key, asset_partitions=[context.partition_key])
        if context.has_partition_key
        else key,
        limit=1,
    ).records
    materialization = found[0].asset_materialization if found else None
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


def _table_metadata(
    con: duckdb.DuckDBPyConnection, name: str, path: Path, rows: int
) -> dict[str, Any]:
    """What Dagster shows for a table DuckDB just wrote: schema and row count from the Parquet
    footer and a preview read through the session's view over the file."""
    spec = MART_SPECS[name]
    metadata = table_metadata(name, pq.read_schema(path).empty_table(), spec.column_descriptions)
    metadata["dagster/row_count"] = rows
    metadata["bytes_written"] = path.stat().st_size
    metadata["preview"] = dg.MetadataValue.md(markdown_preview(mart_preview(con, name)))
    return metadata


class ChartDrawer:
    """Draws each chart on one worker thread, over its own DuckDB cursor, as soon as its mart is
    written: DuckDB releases the GIL while it builds the next tables, so drawing (~1.3 s of
    CPU at 1M bookings, benchmarks/charts.py) mostly fills the time DuckDB leaves a core idle.
    One thread: pyplot and the rcParams a chart sets while drawing are not thread-safe, and
    only this thread uses them during a build."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        source: Callable[[], str],
        renders: dict[str, Callable[[duckdb.DuckDBPyConnection, str], charts.Chart]] | None = None,
    ) -> None:
        self._con = con
        self._source = source
        self._renders = CHARTS if renders is None else renders
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")
        self._futures: dict[str, Future[charts.Chart]] = {}

    def submit(self, name: str) -> None:
        # A cursor is a second connection to the same in-memory database: it sees the views over
        # the published tables and the one write_table just created over the new file.
        cursor = self._con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        self._futures[name] = self._pool.submit(
            self._draw, self._renders[name], cursor, self._source()
        )

    @staticmethod
    def _draw(
        render: Callable[[duckdb.DuckDBPyConnection, str], charts.Chart],
        cursor: duckdb.DuckDBPyConnection,
        source: str,
    ) -> charts.Chart:
        with cursor:
            return render(cursor, source)

    def drawn(self) -> dict[str, charts.Chart]:
        """Every chart submitted (waits for them; a drawing error is raised here)."""
        return {name: future.result() for name, future in self._futures.items()}

    def __enter__(self) -> "ChartDrawer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Also on a failed build: the thread's cursor must be done before the connection closes.
        self._pool.shutdown(wait=True, cancel_futures=True)


def _require_inputs(store: Warehouse, selected: list[str]) -> None:
    """Fail before any work, naming what is missing and how to get it, when a table the build
    reads was never published here (instead of DuckDB's "Table with name ... does not exist")."""
    published = set(store.table_files())
    needed = {
        table
        for name in selected
        for table in (*MART_SPECS[name].depends_on_raw, *MART_SPECS[name].upstream)
        if table not in selected
    }
    missing = sorted(needed - published)
    if not missing:
        return
    # Every step of the fix: raw tables alone would leave a marts-only run failing again on
    # the staging tables it reads.
    command = "dagster asset materialize -m calira_pipeline.definitions --select"
    raw = [t for t in missing if t not in MART_SPECS]
    built = [t for t in missing if t in MART_SPECS]
    steps = [f"materialise the raw group first ({command} 'group:raw')"] if raw else []
    if built:
        steps.append(
            f"{'then ' if raw else ''}materialise {', '.join(built)}{'' if raw else ' first'} "
            f"({command} '{','.join(built)}')"
        )
    fix = ", ".join(steps)
    raise dg.Failure(
        description=f"{', '.join(selected)} read(s) {', '.join(missing)}, not published in "
        f"{store.data_dir} yet: {fix}.",
        allow_retries=False,
    )


def run_build(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mart_config: MartConfigResource,
    calira: CaliraApiResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    """Build the selected tables in one DuckDB session over the published ones; DuckDB writes
    each file and the warehouse publishes them all by reference in one snapshot."""
    selected = [n for n in build_order() if dg.AssetKey(n) in context.selected_asset_keys]
    settings = mart_config.settings()
    store = warehouse.warehouse()
    _require_inputs(store, selected)
    source = functools.cache(lambda: data_source(context, calira))
    metadata: dict[str, dict[str, Any]] = {}
    with store.incoming() as folder:
        files: dict[str, Path] = {}
        with store.scratch_connection() as con:
            mart_config.limits().apply(con, folder / "spill")
            with ChartDrawer(con, source) as drawer:
                for name, path, rows in build_tables(con, selected, folder, settings):
                    context.log.info(f"{name}: {rows} rows, {path.stat().st_size} bytes")
                    files[name] = path
                    metadata[name] = _table_metadata(con, name, path, rows)
                    if name in CHARTS and rows:
                        drawer.submit(name)
                drawn = drawer.drawn()
            for name, chart in drawn.items():
                metadata[name].update(chart_metadata(chart))
        published = store.commit_files(files)
    if drawn and published:
        # The report of this publication reuses these charts instead of drawing them again.
        store.keep_rendered(published[0].generation, charts.charts_to_json(drawn))
    for name in selected:
        yield dg.MaterializeResult(asset_key=name, metadata=metadata[name])


def _asset_spec(name: str, group: str) -> dg.AssetSpec:
    spec = MART_SPECS[name]
    return dg.AssetSpec(
        name,
        group_name=group,
        deps=[*spec.depends_on_raw, *spec.upstream],
        description=f"{spec.grain} {spec.description}",
        kinds={"sql", "duckdb", "parquet"},
        owners=OWNERS,
        tags={"layer": group},
        automation_condition=dg.AutomationCondition.eager(),
        freshness_policy=FRESHNESS,
        skippable=True,
    )


def build_tables_asset(op_name: str, group: str, names: list[str]) -> dg.AssetsDefinition:
    """One subsettable step building `names` (a layer) in one DuckDB session."""

    @dg.multi_asset(
        name=op_name,
        specs=[_asset_spec(name, group) for name in names],
        can_subset=True,
    )
    def _build(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        mart_config: MartConfigResource,
        calira: CaliraApiResource,
    ) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
        yield from run_build(context, warehouse, mart_config, calira)

    return _build


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
    source = data_source(context, calira)
    kept = store.rendered_for_current()
    drawn = charts.charts_from_json(kept) if kept else {}
    reusable = {name for name, chart in drawn.items() if name in CHARTS and chart.source == source}
    if len(reusable) < len(CHARTS):
        with store.scratch_connection() as con:
            drawn.update(
                {n: render(con, source) for n, render in CHARTS.items() if n not in reusable}
            )
    rendered = [drawn[name] for name in CHARTS]
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
            # Charts the marts step drew from this same publication, not drawn again here.
            "charts_reused": len(reusable),
        }
    )


MART_NAMES = [name for name in build_order() if name not in STAGING]
build_staging = build_tables_asset("build_staging", STAGING_GROUP, list(STAGING))
build_marts = build_tables_asset("build_marts", MARTS_GROUP, MART_NAMES)
MART_ASSETS: list[dg.AssetsDefinition] = [build_staging, build_marts, facility_report]
