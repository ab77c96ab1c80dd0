"""Streaming parsed rows to Parquet in bounded batches (no Dagster, no whole tables in memory).

A fetch appends rows to one `StagedTableWriter` per table; every `batch_rows` rows the batch is
masked (personal data), typed by the table's declared schema and appended to a Parquet file in
the staging folder. `finish` sorts the file by primary key in DuckDB (which spills to disk, so a
table of any size is sorted in bounded memory) and returns the file, ready to be published by
reference. Only the rows of the current batch are ever held as Python objects.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.storage import rows_to_arrow
from calira_pipeline.storage.schema import TableSpec
from calira_pipeline.storage.warehouse import PARQUET_ROW_GROUP_ROWS

DEFAULT_BATCH_ROWS = 10_000
STAGING_DIR = ".staging"
# DuckDB's sort spills beyond this, so sorting a large table does not grow the run's memory.
SORT_MEMORY_LIMIT = "256MB"


def new_staging_folder(data_dir: Path) -> Path:
    """A fresh folder for one run's staged files (same file system as the published tables).

    Not under the warehouse's temp-file prefix: a concurrent commit sweeps those as orphans.
    """
    folder = data_dir / STAGING_DIR / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def remove_stale_staging(data_dir: Path) -> None:
    """Drop staging folders of killed runs; call only while holding the ingestion lock."""
    shutil.rmtree(data_dir / STAGING_DIR, ignore_errors=True)


class StagedTableWriter:
    """Collects one table's rows and writes them to Parquet every `batch_rows` rows."""

    def __init__(
        self,
        spec: TableSpec,
        folder: Path,
        policy: PiiPolicy,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.spec = spec
        self.policy = policy
        self.batch_rows = batch_rows
        self.path = folder / f"{spec.name}.unsorted.parquet"
        self.rows_written = 0
        self.max_buffered_rows = 0  # the high-water mark of rows held as Python objects
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._batches = 0

    def __len__(self) -> int:
        return self.rows_written + len(self._buffer)

    def append(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        self.max_buffered_rows = max(self.max_buffered_rows, len(self._buffer))
        if len(self._buffer) >= self.batch_rows:
            self._flush()

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def _flush(self) -> None:
        if not self._buffer and self._writer is not None:
            return
        batch = rows_to_arrow(self.spec, self.policy.apply(self.spec.name, self._buffer))
        self._buffer = []
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.spec.arrow_schema, compression="zstd")
        self._writer.write_table(batch, row_group_size=PARQUET_ROW_GROUP_ROWS)
        self.rows_written += batch.num_rows
        self._batches += 1

    def finish(self) -> Path:
        """Close the file and return it sorted by primary key (one sorted batch is kept as is)."""
        self._flush()
        assert self._writer is not None
        self._writer.close()
        if self._batches <= 1:
            return self.path
        sorted_path = self.path.with_name(f"{self.spec.name}.parquet")
        sort_parquet(self.path, sorted_path, self.spec, self.path.parent)
        self.path.unlink()
        return sorted_path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._buffer = []


def sort_parquet(source: Path, target: Path, spec: TableSpec, temp_dir: Path) -> None:
    """`source` sorted by `spec`'s primary key into `target`, with `spec`'s exact Arrow types."""
    order = ", ".join(f'"{key}"' for key in spec.primary_key)
    sql = f"select * from read_parquet('{_quote(source)}') order by {order}"
    write_query(sql, target, spec, temp_dir)


def write_query(sql: str, target: Path, spec: TableSpec, temp_dir: Path) -> int:
    """Stream a DuckDB query's rows into `target` as `spec`'s schema; returns the row count.

    Rows come back as Arrow record batches and are cast to the declared types, so the file is
    typed exactly like one written from parsed rows (DuckDB's own Parquet writer would not
    always keep, e.g., the declared integer widths).
    """
    con = duckdb.connect()
    rows = 0
    try:
        con.execute(f"set memory_limit = '{SORT_MEMORY_LIMIT}'")
        con.execute(f"set temp_directory = '{_quote(temp_dir / 'duckdb-spill')}'")
        con.execute("set preserve_insertion_order = false")
        reader = con.execute(sql).to_arrow_reader(PARQUET_ROW_GROUP_ROWS)
        with pq.ParquetWriter(target, spec.arrow_schema, compression="zstd") as writer:
            for batch in reader:
                table = pa.Table.from_batches([batch]).select(spec.column_names)
                writer.write_table(table.cast(spec.arrow_schema))
                rows += batch.num_rows
    finally:
        con.close()
    return rows


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
