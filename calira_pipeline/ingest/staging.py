"""Streaming parsed rows to Parquet in bounded batches (no Dagster, no whole tables in memory).

A fetch appends rows to one `StagedTableWriter` per table; every `batch_rows` rows the batch is
masked (personal data), typed by the table's declared schema and appended to a Parquet file in
the run's `Warehouse.incoming()` folder. `finish` sorts the file by primary key in DuckDB (which
spills to disk, so a table of any size is sorted in bounded memory) and returns the file, ready
for `Warehouse.commit_files` to publish by renaming it. Only the rows of the current batch are
ever held as Python objects.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.storage import rows_to_arrow
from calira_pipeline.storage.schema import TableSpec
from calira_pipeline.storage.warehouse import PARQUET_ROW_GROUP_ROWS

DEFAULT_BATCH_ROWS = 10_000
# DuckDB's sort spills beyond this, so sorting a large table does not grow the run's memory.
SORT_MEMORY_LIMIT = "256MB"
# Rows sorted at a time (one key range; see `write_query`), which is also the written files'
# row-group size. A third of DuckDB's own row group: sorting 1M bookings this way peaks ~250 MB
# above the process's baseline (a whole row group per range: ~500 MB; one sort of every row
# under this limit fails). Measured on 1M bookings rows with ~0.7 KB of raw_json each.
SORT_RANGE_ROWS = 40_960


class StagedTableWriter:
    """Collects one table's rows and writes them to Parquet every `batch_rows` rows."""

    def __init__(
        self,
        spec: TableSpec,
        folder: Path,
        policy: PiiPolicy,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        sort_range_rows: int = SORT_RANGE_ROWS,
    ) -> None:
        self.spec = spec
        self.sort_range_rows = sort_range_rows
        self.policy = policy
        self.batch_rows = batch_rows
        self.path = folder / f"{spec.name}.unsorted.parquet"
        self.rows_written = 0
        self.max_buffered_rows = 0  # the high-water mark of rows held as Python objects
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._batches = 0
        # Parquet encoding and compression run in C++ without the GIL: one batch is written on
        # this thread while the fetch parses the next (at most one write in flight).
        self._io: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

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
        self._wait()  # the previous batch is written (and its error, if any, raised) first
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.spec.arrow_schema, compression="zstd")
            self._io = ThreadPoolExecutor(1, thread_name_prefix=f"stage-{self.spec.name}")
        assert self._io is not None
        self._pending = self._io.submit(
            self._writer.write_table, batch, row_group_size=PARQUET_ROW_GROUP_ROWS
        )
        self.rows_written += batch.num_rows
        self._batches += 1

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _close(self) -> None:
        try:
            self._wait()
        finally:
            if self._io is not None:
                self._io.shutdown()
                self._io = None
            if self._writer is not None:
                self._writer.close()

    def finish(self) -> Path:
        """Close the file and return it sorted by primary key (one sorted batch is kept as is)."""
        self._flush()
        assert self._writer is not None
        self._close()
        if self._batches <= 1:
            return self.path
        sorted_path = self.path.with_name(f"{self.spec.name}.parquet")
        sort_parquet(self.path, sorted_path, self.spec, self.path.parent, self.sort_range_rows)
        self.path.unlink()
        return sorted_path

    def abort(self) -> None:
        self._buffer = []
        with contextlib.suppress(Exception):  # the run is failing already: its error wins
            self._close()


def sort_parquet(
    source: Path, target: Path, spec: TableSpec, temp_dir: Path, range_rows: int = SORT_RANGE_ROWS
) -> None:
    """`source` sorted by `spec`'s primary key into `target`, with `spec`'s exact Arrow types."""
    sql = f"select * from read_parquet('{_quote(source)}')"
    write_query(sql, target, spec, temp_dir, range_rows)


def write_query(
    sql: str, target: Path, spec: TableSpec, temp_dir: Path, range_rows: int = SORT_RANGE_ROWS
) -> int:
    """Stream a DuckDB query's rows into `target` sorted by `spec`'s primary key, as `spec`'s
    schema; returns the row count.

    DuckDB's sort of wide rows (every `raw_json`) needs several times their size: one sort of
    1M bookings under a 256 MB limit fails ("failed to pin block") and takes ~1 GB with twice
    that. So rows are sorted one key range at a time, ranges of about a row group cut at the
    first key column's quantiles (about `range_rows` each), each read with the key filter pushed
    into the scan; each range is one row group of the file.

    Rows come back as Arrow and are cast to the declared types, so the file is typed exactly
    like one written from parsed rows (DuckDB's own Parquet writer would not always keep, e.g.,
    the declared integer widths).
    """
    con = duckdb.connect()
    rows = 0
    try:
        con.execute(f"set memory_limit = '{SORT_MEMORY_LIMIT}'")
        con.execute(f"set temp_directory = '{_quote(temp_dir / 'duckdb-spill')}'")
        con.execute("set preserve_insertion_order = false")
        con.execute(f"create temp view unsorted as {sql}")
        order = ", ".join(f'"{key}"' for key in spec.primary_key)
        with pq.ParquetWriter(target, spec.arrow_schema, compression="zstd") as writer:
            for where, params in _key_ranges(con, f'"{spec.primary_key[0]}"', range_rows):
                query = f"select * from unsorted where {where} order by {order}"
                table = con.execute(query, params).to_arrow_table()
                if table.num_rows:
                    table = table.select(spec.column_names).cast(spec.arrow_schema)
                    writer.write_table(table, row_group_size=PARQUET_ROW_GROUP_ROWS)
                    rows += table.num_rows
    finally:
        con.close()
    return rows


def _key_ranges(
    con: duckdb.DuckDBPyConnection, key: str, rows_per_range: int
) -> list[tuple[str, list[Any]]]:
    """Filters that split the view `unsorted` into key ranges of about `rows_per_range` rows."""
    count = con.execute("select count(*) from unsorted").fetchone()
    parts = -(-int(count[0] if count else 0) // rows_per_range)
    bounds: list[Any] = []
    if parts > 1:
        quantiles = [i / parts for i in range(1, parts)]
        found = con.execute(f"select quantile_disc({key}, {quantiles}) from unsorted").fetchone()
        bounds = sorted({b for b in (found[0] if found else []) if b is not None})
    if not bounds:
        return [("true", [])]
    ranges = [(f"{key} < ?", [bounds[0]])]
    ranges += [(f"{key} >= ? and {key} < ?", [lo, hi]) for lo, hi in itertools.pairwise(bounds)]
    ranges.append((f"({key} >= ? or {key} is null)", [bounds[-1]]))
    return ranges


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
