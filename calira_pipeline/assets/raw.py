"""Raw layer: one asset per API collection table, written as Parquet and a DuckDB table.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from calira_pipeline import progress
from calira_pipeline.api import CollectionResult
from calira_pipeline.assets.metadata import column_schema, markdown_preview, table_metadata
from calira_pipeline.assets.previews import newest_first
from calira_pipeline.assets.retry import INGEST_RETRY_POLICY, permanent_errors_fail_without_retry
from calira_pipeline.incremental import merge_by_id, unchanged_predicate
from calira_pipeline.ingest_lock import ingestion_lock
from calira_pipeline.pii import PiiPolicy, mask_tables
from calira_pipeline.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.schema import COLLECTION_TABLES, RAW_TABLES, TableSpec
from calira_pipeline.storage import Warehouse, rows_to_arrow
from calira_pipeline.storage.writable import ensure_writable

RAW_GROUP = "raw"
OWNERS = ["team:facility-data"]
COUNT_CHECK = "loaded_count_matches_api_total"
_EMPTY_BY_CONTRACT = {"current_user"}  # client-credentials tokens have no user: 0 rows is right
PROGRESS_LOG_INTERVAL_S = 5.0


# Bookings refresh hourly (incremental) and everything nightly; warn before the next run is due.
FRESHNESS = {
    "bookings": dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)
    ),
}
DEFAULT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
)


class FetchConfig(dg.Config):
    mode: Literal["full", "incremental"] = Field(
        default="full",
        description="full re-reads the collection; incremental (bookings only) reads new and "
        "changed records from the newest pages and merges them into the stored table.",
    )
    overlap_pages: int = Field(
        default=1, description="Extra pages read after the first page with nothing new."
    )


def _descriptions(spec: TableSpec) -> dict[str, str]:
    return {c.name: c.description for c in spec.columns}


def _asset_spec(table: str, collection: str) -> dg.AssetSpec:
    spec = RAW_TABLES[table]
    empty_schema = pa.table({f.name: pa.array([], f.type) for f in spec.arrow_schema})
    return dg.AssetSpec(
        key=table,
        group_name=RAW_GROUP,
        description=f"{spec.grain} Loaded from the Calira `{collection}` endpoint(s).",
        kinds={"python", "parquet", "duckdb"},
        owners=OWNERS,
        tags={"layer": "raw", "source": "calira_api"},
        metadata={"dagster/column_schema": column_schema(empty_schema, _descriptions(spec))},
        freshness_policy=FRESHNESS.get(table, DEFAULT_FRESHNESS),
    )


def _count_check(result: CollectionResult, table: str, loaded: int) -> dg.AssetCheckResult:
    expected = result.api_total
    # Records deleted between listing and detail fetch are reported as warnings by the client;
    # records created during the walk may appear on top of the walk-start total. An incremental
    # merge also keeps bookings deleted upstream until the nightly full refresh drops them.
    passed = expected is None or loaded >= expected - result.stats.deleted_during_fetch
    return dg.AssetCheckResult(
        asset_key=table,
        check_name=COUNT_CHECK,
        passed=passed,
        metadata={"loaded": loaded, "api_total": expected if expected is not None else -1},
        description=None if passed else f"loaded {loaded} {table} but the API reported {expected}",
    )


def _fetch_metadata(result: CollectionResult, source: str) -> dict[str, Any]:
    stats = result.stats.as_metadata()
    return {
        "data_source": source,
        "api_total": result.api_total if result.api_total is not None else -1,
        **{f"fetch/{k}": v for k, v in stats.items()},
        "unknown_fields": dg.MetadataValue.json(dict(sorted(result.unknown_fields.items()))),
        "warnings": dg.MetadataValue.json(result.warnings[:50]),
    }


def build_collection_asset(collection: str) -> dg.AssetsDefinition:
    tables = COLLECTION_TABLES[collection]
    primary = tables[0]

    @dg.multi_asset(
        name=f"fetch_{collection}",
        specs=[_asset_spec(t, collection) for t in tables],
        check_specs=[
            dg.AssetCheckSpec(
                COUNT_CHECK,
                asset=primary,
                blocking=True,
                description="Rows loaded equal the API's X-Total-Records at the start of the "
                "walk (less records deleted meanwhile); blocking: nothing downstream runs on a "
                "short load.",
            )
        ],
        can_subset=False,
        pool="calira_api",
        retry_policy=INGEST_RETRY_POLICY,
    )
    def _fetch(
        context: dg.AssetExecutionContext,
        config: FetchConfig,
        calira: CaliraApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult[Any]]:
        store = warehouse.warehouse()
        ensure_writable(store.data_dir, store.parquet_dir)
        policy = PiiPolicy.for_data_dir(calira.pii, store.data_dir)
        incremental = config.mode == "incremental"
        if incremental and (collection != "bookings" or not store.has_table("bookings")):
            context.log.info(f"{collection}: no incremental read possible here; reading in full")
            incremental = False
        mode = "incremental" if incremental else "full"
        with (
            ingestion_lock(store.data_dir, context.log.info),
            permanent_errors_fail_without_retry(collection),
        ):
            yield from _fetch_and_store(context, config, calira, store, policy, mode)

    def _fetch_and_store(
        context: dg.AssetExecutionContext,
        config: FetchConfig,
        calira: CaliraApiResource,
        store: Warehouse,
        policy: PiiPolicy,
        mode: str,
    ) -> Iterator[dg.MaterializeResult[Any]]:
        client = calira.client(logger=context.log, on_progress=_progress_logger(context))
        incremental = mode == "incremental"
        context.log.info(f"reading {collection} from {calira.source} ({mode})")
        if incremental:
            stored = store.read_table(primary)
            result = client.fetch_bookings_incremental(
                unchanged_predicate(stored, primary, policy),
                config.overlap_pages,
                known_ids=frozenset(stored.column("id").to_pylist()),
            )
            fresh = rows_to_arrow(RAW_TABLES[primary], policy.apply(primary, result.rows[primary]))
            arrow = {primary: merge_by_id(stored, fresh, RAW_TABLES[primary])}
            extra = {
                "refresh_mode": "incremental",
                "new_or_changed_rows": fresh.num_rows,
                # Which end of the list was newest and why the walk stopped (a full read when
                # the order could not be told, or when the count showed an unread gap).
                **{f"incremental/{key}": value for key, value in result.notes.items()},
            }
        else:
            result = client.fetch(collection)
            rows = mask_tables(policy, {t: result.rows.get(t, []) for t in tables})
            arrow = {t: rows_to_arrow(RAW_TABLES[t], rows[t]) for t in tables}
            extra = {"refresh_mode": "full"}
        count_check = _count_check(result, primary, arrow[primary].num_rows)
        fetch_meta = {**_fetch_metadata(result, calira.source), **extra}
        if not count_check.passed and collection not in _EMPTY_BY_CONTRACT:
            raise dg.Failure(
                description=(
                    f"{collection}: {count_check.description}; nothing was written and the "
                    "previous tables are intact. Re-run; if it persists, the API's "
                    "X-Total-Records disagrees with its pages (see the fetch/* metadata)."
                ),
                metadata=fetch_meta,
            )
        store.commit(arrow)
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=table,
                metadata={
                    **table_metadata(table, arrow[table], _descriptions(RAW_TABLES[table])),
                    "preview": dg.MetadataValue.md(markdown_preview(newest_first(arrow[table]))),
                    **fetch_meta,
                },
                check_results=[count_check] if table == primary else [],
            )

    return _fetch


def _progress_logger(context: dg.AssetExecutionContext) -> Any:
    started = time.monotonic()
    last_logged: dict[str, tuple[int, float]] = {}

    def report(collection: str, pages_done: int, pages_total: int, records: int) -> None:
        progress.publish(collection, pages_done, pages_total, records)
        # About ten lines per collection however long it is, plus the last page; and never more
        # than one per PROGRESS_LOG_INTERVAL_S: past the reported total every page is "the last".
        step = max(1, pages_total // 10)
        pages_then, logged_at = last_logged.get(collection, (0, float("-inf")))
        due = pages_done == pages_total or pages_done - pages_then >= step
        now = time.monotonic()
        if not due or now - logged_at < PROGRESS_LOG_INTERVAL_S:
            return
        last_logged[collection] = (pages_done, now)
        elapsed = max(time.monotonic() - started, 1e-6)
        eta = elapsed / pages_done * (pages_total - pages_done) if pages_done else 0.0
        context.log.info(
            f"{collection}: {pages_done}/{pages_total} pages, {records} records, "
            f"{records / elapsed:,.0f} records/s, ETA {eta:,.0f} s"
        )

    return report


RAW_ASSETS: list[dg.AssetsDefinition] = [build_collection_asset(c) for c in COLLECTION_TABLES]

__all__ = ["RAW_ASSETS", "RAW_GROUP", "build_collection_asset"]
