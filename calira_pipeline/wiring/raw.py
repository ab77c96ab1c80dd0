"""Raw layer: one subsettable multi-asset (`fetch_calira`) for every table of the Calira API.

Like Dagster's own source integrations (dlt, Airbyte, Fivetran), one source is one step: the
selected collections are fetched at the same time through one client sharing one request budget,
streamed to staged Parquet files in bounded batches, checked, and published in one commit.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from calira_pipeline.api import CaliraClient, CollectionResult
from calira_pipeline.api.client import StreamingResults
from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.ingest import progress
from calira_pipeline.ingest.lock import ingestion_lock
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.ingest.progress import RunLogProgress
from calira_pipeline.storage import Warehouse
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.storage.writable import ensure_writable
from calira_pipeline.wiring.metadata import column_schema
from calira_pipeline.wiring.raw_checks import RAW_CHECKS, check_spec
from calira_pipeline.wiring.raw_step import (
    COUNT_CHECK,
    Staging,
    count_check,
    evaluate_checks,
    fetch_bookings_incremental,
    fetch_metadata,
    rows_in,
    staged_metadata,
)
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource
from calira_pipeline.wiring.retry import is_permanent, permanent_errors_fail_without_retry

RAW_GROUP = "raw"
RAW_OP = "fetch_calira"
OWNERS = ["team:facility-data"]
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


def _collection_of(table: str) -> str:
    return next(c for c, tables in COLLECTION_TABLES.items() if table in tables)


class FetchConfig(dg.Config):
    mode: Literal["full", "incremental"] = Field(
        default="full",
        description="full re-reads every selected collection; incremental reads new and changed "
        "bookings from the newest pages and merges them into the stored table (the other "
        "collections are always read in full).",
    )
    overlap_pages: int = Field(
        default=1, description="Extra pages read after the first page with nothing new."
    )


def _asset_spec(table: str) -> dg.AssetSpec:
    spec = RAW_TABLES[table]
    descriptions = {c.name: c.description for c in spec.columns}
    return dg.AssetSpec(
        key=table,
        group_name=RAW_GROUP,
        description=f"{spec.grain} Loaded from the Calira `{_collection_of(table)}` endpoint(s).",
        kinds={"python", "parquet", "duckdb"},
        owners=OWNERS,
        tags={"layer": "raw", "source": "calira_api"},
        metadata={"dagster/column_schema": column_schema(spec.arrow_schema, descriptions)},
        freshness_policy=FRESHNESS.get(table, DEFAULT_FRESHNESS),
    )


def _count_spec(collection: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        COUNT_CHECK,
        asset=COLLECTION_TABLES[collection][0],
        blocking=True,
        description="Rows loaded equal the API's X-Total-Records at the start of the walk (less "
        "records deleted meanwhile); blocking: nothing is published on a short load.",
    )


def build_fetch_calira(retry_policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    """The raw step over every endpoint registered now (`api.endpoints.ENDPOINTS`).

    The code location passes `retry.ingest_retry_policy()`, read as its definitions are built.
    """
    return dg.multi_asset(
        name=RAW_OP,
        specs=[_asset_spec(t) for tables in COLLECTION_TABLES.values() for t in tables],
        check_specs=[*(_count_spec(c) for c in COLLECTION_TABLES), *map(check_spec, RAW_CHECKS)],
        can_subset=True,
        pool="calira_api",
        retry_policy=retry_policy,
    )(_fetch_calira)


def _fetch_calira(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    calira: CaliraApiResource,
    warehouse: WarehouseResource,
) -> Iterator[Any]:
    """Every selected raw table, fetched concurrently and published in one commit."""
    store = warehouse.warehouse()
    ensure_writable(store.data_dir, store.parquet_dir)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    collections = [c for c, tables in COLLECTION_TABLES.items() if selected & set(tables)]
    # Files are staged where `commit_files` publishes them from, by a rename; the incoming
    # folder (with whatever was not published) goes when the block ends.
    with (
        ingestion_lock(store.data_dir, context.log.info),
        permanent_errors_fail_without_retry(", ".join(collections)),
        store.incoming() as folder,
    ):
        yield from _fetch_check_publish(context, config, calira, store, collections, folder)


def _fetch_check_publish(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    calira: CaliraApiResource,
    store: Warehouse,
    collections: list[str],
    folder: Path,
) -> Iterator[dg.MaterializeResult[Any]]:
    staging = Staging(folder, PiiPolicy.for_data_dir(calira.pii, store.data_dir))
    run_log = RunLogProgress(context.log.info, min_interval_s=PROGRESS_LOG_INTERVAL_S)
    client = calira.client(logger=context.log, on_progress=_progress_logger(run_log))
    context.log.info(f"reading {', '.join(collections)} from {calira.source} at the same time")
    fetched, extra = _fetch(context, config, client, store, staging, collections)
    results = fetched.results
    run_log.finish(results)  # what failed is in fetched.errors, never in results
    counts = {
        c: count_check(r, COLLECTION_TABLES[c][0], rows_in(staging.files[COLLECTION_TABLES[c][0]]))
        for c, r in results.items()
    }
    failures: dict[str, BaseException | str] = dict(fetched.errors)
    for collection, check in counts.items():
        if not check.passed and collection not in _EMPTY_BY_CONTRACT:
            failures[collection] = _short_load(check)
    selected_tables = {key.to_user_string() for key in context.selected_asset_keys}
    selected_checks = set(context.selected_asset_check_keys)
    publish = {
        t: path
        for t, path in staging.files.items()
        if t in selected_tables and _collection_of(t) not in failures
    }
    checks = [
        *(c for c in counts.values() if _key(c) in selected_checks),
        *evaluate_checks(store, publish, selected_checks),
    ]
    metadata = {t: staged_metadata(t, path) for t, path in publish.items()}
    if publish:
        store.commit_files(publish)  # every table of the run switches together, in one snapshot
    for table in publish:
        collection = _collection_of(table)
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={
                **metadata[table],
                **fetch_metadata(results[collection], calira.source, collection, table),
                **extra.get(collection, {"refresh_mode": "full"}),
            },
            check_results=[c for c in checks if c.asset_key == dg.AssetKey(table)],
        )
    if failures:
        _fail(failures, results, calira.source)


def _key(check: dg.AssetCheckResult) -> dg.AssetCheckKey:
    assert check.asset_key is not None and check.check_name is not None
    return dg.AssetCheckKey(check.asset_key, check.check_name)


def _fetch(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    client: CaliraClient,
    store: Warehouse,
    staging: Staging,
    collections: list[str],
) -> tuple[StreamingResults, dict[str, dict[str, Any]]]:
    """Fetch into staged files; the incremental bookings walk (if asked) follows the others."""
    incremental = "bookings" in collections and config.mode == "incremental"
    if incremental and not store.has_table("bookings"):
        context.log.info("bookings: nothing stored yet, so no incremental read; reading in full")
        incremental = False
    streamed = [c for c in collections if not (incremental and c == "bookings")]
    extra: dict[str, dict[str, Any]] = {}
    try:
        fetched = client.fetch_streaming({c: staging.sinks(c) for c in streamed})
        if incremental:
            try:
                result, fresh_rows = fetch_bookings_incremental(
                    client, store, staging, config.overlap_pages
                )
            except Exception as error:  # reported with the other collections' errors
                fetched.errors["bookings"] = error
            else:
                fetched.results["bookings"] = result
                extra["bookings"] = {
                    "refresh_mode": "incremental",
                    "new_or_changed_rows": fresh_rows,
                    # Which end of the list was newest and why the walk stopped (a full read
                    # when the order could not be told, or when the count showed a gap).
                    **{f"incremental/{key}": value for key, value in result.notes.items()},
                }
    except BaseException:
        staging.abort()
        raise
    for collection in fetched.errors:
        staging.discard(collection)
    staging.finish()
    return fetched, extra


def _short_load(check: dg.AssetCheckResult) -> str:
    return (
        f"{check.description}; nothing was written for it and its previous tables are intact. "
        "Re-run; if it persists, the API's X-Total-Records disagrees with its pages (see the "
        "fetch/* metadata)."
    )


def _fail(
    failures: dict[str, BaseException | str],
    results: dict[str, CollectionResult],
    source: str,
) -> None:
    """Fail the step after the other collections were published, naming each failed one."""
    permanent = all(isinstance(e, BaseException) and is_permanent(e) for e in failures.values())
    suffix = " (not retried: re-running cannot fix this)" if permanent else ""
    lines = [f"{c}: {error}{suffix}" for c, error in failures.items()]
    raise dg.Failure(
        description="\n".join(lines),
        metadata={
            f"{c}/{k}": v
            for c in failures
            if c in results
            for k, v in fetch_metadata(results[c], source).items()
        },
        allow_retries=not permanent,
    )


def _progress_logger(run_log: RunLogProgress) -> Any:
    def report(collection: str, pages_done: int, pages_total: int, records: int) -> None:
        progress.publish(collection, pages_done, pages_total, records)
        run_log(collection, pages_done, pages_total, records)

    return report


# Without step retries, so reading no setting on import: tests and benchmarks run the step once.
# The code location and the demo build theirs with the configured retries (`definitions.py`).
fetch_calira = build_fetch_calira()
RAW_ASSETS: list[dg.AssetsDefinition] = [fetch_calira]

__all__ = ["RAW_ASSETS", "RAW_GROUP", "RAW_OP", "build_fetch_calira", "fetch_calira"]
