"""How one table's new file lands in `tables/<table>/<generation>/`: written from Arrow (`commit`)
or moved from an incoming folder (`commit_files`). Either way the file is complete and fsynced
before it is renamed into place, and the returned entry is what the next manifest records."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.storage import snapshots
from calira_pipeline.storage.manifest import WHOLE_TABLE, TableEntry
from calira_pipeline.storage.snapshots import TABLES, TMP_PREFIX

# DuckDB's own row-group size: a scan of one Parquet file splits across threads per row group,
# so a 1M-row table written as one group (pyarrow's default) is read on a single core.
PARQUET_ROW_GROUP_ROWS = 122_880


class StorageError(RuntimeError):
    """The data directory cannot be used as asked; the message says how to fix it."""


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet exactly as the pipeline writes it (zstd, DuckDB-sized row groups)."""
    pq.write_table(table, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP_ROWS)


def write_table_file(
    data_dir: Path,
    name: str,
    table: pa.Table,
    partition: str | None,
    generation: str,
    published_at: str,
    existing: TableEntry | None,
) -> TableEntry:
    """Write `table` as `name`'s new file (or its `partition`'s) and return its entry."""
    part = partition or WHOLE_TABLE
    staged = data_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}.parquet"
    target = data_dir / TABLES / name / generation / f"{part}.parquet"
    partitioned = existing is not None and set(existing.files) != {WHOLE_TABLE}
    try:
        write_parquet(table, staged)
        snapshots.fsync_path(staged)
        if partition and existing is not None and partitioned:
            _check_same_schema(data_dir, name, staged, existing)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    files = {part: snapshots.relative(data_dir, target)}
    rows = {part: table.num_rows}
    if partition is None or existing is None or not partitioned:
        return TableEntry(generation, published_at, table.num_rows, files, rows)
    return existing.with_partitions(generation, published_at, files, rows)


def adopt_file(data_dir: Path, name: str, path: Path, generation: str, at: str) -> TableEntry:
    """Move one incoming Parquet file into tables/ as `name`'s whole new content."""
    target = data_dir / TABLES / name / generation / f"{WHOLE_TABLE}.parquet"
    rows = pq.ParquetFile(path).metadata.num_rows
    snapshots.fsync_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    relative = snapshots.relative(data_dir, target)
    return TableEntry(generation, at, rows, {WHOLE_TABLE: relative}, {WHOLE_TABLE: rows})


def _check_same_schema(data_dir: Path, name: str, staged: Path, existing: TableEntry) -> None:
    new = pq.read_schema(staged).remove_metadata()
    old = pq.read_schema(data_dir / next(iter(existing.files.values()))).remove_metadata()
    if not new.equals(old):
        raise StorageError(
            f"table {name}: the new partition's columns differ from the stored partitions' "
            f"({new} vs {old}); write the whole table (no partition) to change its columns"
        )
