"""The parts of the raw step that are not Dagster wiring: staging, checks over staged files,
the incremental bookings read and the metadata of a staged table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from calira_pipeline.api import CaliraClient, CollectionResult
from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.ingest.incremental import merge_files_by_id, stored_unchanged_predicate
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.ingest.staging import DEFAULT_BATCH_ROWS, StagedTableWriter
from calira_pipeline.ingest.stored_rows import StoredRows
from calira_pipeline.storage import Warehouse
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.storage.snapshots import sql_string, view_sql
from calira_pipeline.wiring.metadata import column_schema, markdown_preview
from calira_pipeline.wiring.raw_checks import RAW_CHECKS, evaluate

COUNT_CHECK = "loaded_count_matches_api_total"
_PREVIEW_KEYS = ("start_time", "created_at", "id")  # newest first by the first one present


class Staging:
    """One run's staged writers: one per table of each collection fetched."""

    def __init__(
        self, folder: Path, policy: PiiPolicy, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> None:
        self.folder = folder
        self.policy = policy
        self.batch_rows = batch_rows
        self.writers: dict[str, StagedTableWriter] = {}
        self.files: dict[str, Path] = {}

    def sinks(self, collection: str) -> dict[str, StagedTableWriter]:
        for table in COLLECTION_TABLES[collection]:
            self.writers[table] = StagedTableWriter(
                RAW_TABLES[table], self.folder, self.policy, self.batch_rows
            )
        return {t: self.writers[t] for t in COLLECTION_TABLES[collection]}

    def discard(self, collection: str) -> None:
        """Drop a failed collection's writers (their files go with the staging folder)."""
        for table in COLLECTION_TABLES[collection]:
            writer = self.writers.pop(table, None)
            if writer is not None:
                writer.abort()

    def finish(self) -> dict[str, Path]:
        try:
            for table, writer in self.writers.items():
                self.files[table] = writer.finish()
        except BaseException:
            # The tables after the failing one still have open files and writer threads.
            self.abort()
            raise
        return self.files

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def fetch_bookings_incremental(
    client: CaliraClient, store: Warehouse, staging: Staging, overlap_pages: int
) -> tuple[CollectionResult, int]:
    """New and changed bookings, merged with the stored ones in DuckDB into a staged file.

    Returns the walk's result and the number of new or changed rows.
    """
    # The stored table is never loaded: ids as one column, and the rows the walk compares read
    # a row group at a time (without raw_json) from the published files.
    stored = StoredRows(store.table_files()["bookings"], RAW_TABLES["bookings"])
    is_unchanged = stored_unchanged_predicate(stored, "bookings", staging.policy)
    known_ids = stored.ids()
    result = client.fetch_bookings_incremental(is_unchanged, overlap_pages, known_ids)
    fresh = staging.sinks("bookings")["bookings"]
    fresh.extend(result.rows["bookings"])
    result.rows = {}
    fresh_path = fresh.finish()
    del staging.writers["bookings"]
    merged = staging.folder / "bookings.merged.parquet"
    merge_files_by_id(store.table_files()["bookings"], fresh_path, merged, RAW_TABLES["bookings"])
    staging.files["bookings"] = merged
    return result, len(fresh)


# Shown where a collection has no X-Total-Records (the current user): -1 read as a count.
NO_API_TOTAL = "none (one record, no X-Total-Records)"


def count_check(result: CollectionResult, table: str, loaded: int) -> dg.AssetCheckResult:
    expected = result.api_total
    # Records deleted between listing and detail fetch are reported as warnings by the client;
    # records created during the walk may appear on top of the walk-start total. An incremental
    # merge also keeps bookings deleted upstream until the nightly full refresh drops them.
    if expected is None:  # one record (GET /me): no X-Total-Records to compare with
        return dg.AssetCheckResult(
            asset_key=table,
            check_name=COUNT_CHECK,
            passed=True,
            metadata={"loaded": loaded, "api_total": NO_API_TOTAL},
            description=f"the API reports no total for {table} (one record): nothing to compare",
        )
    passed = loaded >= expected - result.stats.deleted_during_fetch
    return dg.AssetCheckResult(
        asset_key=table,
        check_name=COUNT_CHECK,
        passed=passed,
        metadata={"loaded": loaded, "api_total": expected},
        description=None if passed else f"loaded {loaded} {table} but the API reported {expected}",
    )


def rows_in(path: Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


def evaluate_checks(
    store: Warehouse, staged: dict[str, Path], selected: set[dg.AssetCheckKey]
) -> list[dg.AssetCheckResult]:
    """The selected raw checks over the staged tables (published ones for the other tables)."""
    chosen = [c for c in RAW_CHECKS if dg.AssetCheckKey(dg.AssetKey(c.table), c.name) in selected]
    if not chosen:
        return []
    with store.scratch_connection() as con:
        for table, path in staged.items():
            con.execute(view_sql(table, [path]))
        tables = set(store.table_files()) | set(staged)
        return [evaluate(check, con, tables) for check in chosen]


def staged_metadata(table: str, path: Path) -> dict[str, Any]:
    """Row count, schema and a newest-first preview, read from the file (never loaded whole)."""
    spec = RAW_TABLES[table]
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        key = next((k for k in _PREVIEW_KEYS if k in spec.column_names), None)
        order = f'order by "{key}" desc nulls last' if key else ""
        source = f"read_parquet({sql_string(str(path))})"
        # A top-5 over the file: DuckDB keeps five rows, never the table.
        preview = con.sql(f"select * from {source} {order} limit 5").to_arrow_table()
    return {
        "dagster/row_count": rows_in(path),
        "dagster/column_schema": column_schema(
            spec.arrow_schema, {c.name: c.description for c in spec.columns}
        ),
        "dagster/table_name": f"calira.main.{table}",
        "preview": dg.MetadataValue.md(markdown_preview(preview)),
    }


def fetch_metadata(
    result: CollectionResult, source: str, collection: str = "", table: str = ""
) -> dict[str, Any]:
    """The fetch's figures; on a table filled from another collection's records (funding codes
    from projects), the API's total is labelled as that collection's, not a count of this one."""
    stats = result.stats.as_metadata()
    total: int | str = result.api_total if result.api_total is not None else NO_API_TOTAL
    if isinstance(total, int) and table and table != COLLECTION_TABLES[collection][0]:
        total = f"{total:,} {collection} (this table's rows come from them)"
    return {
        "data_source": source,
        "api_total": total,
        **{f"fetch/{k}": v for k, v in stats.items()},
        "unknown_fields": dg.MetadataValue.json(dict(sorted(result.unknown_fields.items()))),
        "warnings": dg.MetadataValue.json(result.warnings[:50]),
    }
