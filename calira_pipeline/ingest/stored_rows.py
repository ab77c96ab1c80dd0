"""The stored rows an incremental walk compares against, read from Parquet a row group at a time.

The hourly bookings job reads a few pages and asks, for each listed booking, whether the stored
row already holds its values. Loading the stored table for that (every column of every row, with
`raw_json`) made the job's memory grow with the table. `StoredRows` finds an id's row group from
the files' min/max statistics and reads only that group's compared columns (never `raw_json`),
keeping at most `cached_groups` of them; a stored `raw_json` is read only for the rare booking
whose list and detail disagreed. The ids of the whole table are read as one column.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.storage.schema import TableSpec

# Row groups kept: a walk's concurrent pages span one or two (pages arrive roughly in order).
CACHED_GROUPS = 4
_NEVER_HELD = frozenset({"raw_json"})  # read per row, only where the list and detail disagreed


@dataclass(frozen=True)
class _Group:
    path: Path
    index: int
    low: Any  # min and max id in the group (None when the file has no statistics)
    high: Any

    def may_hold(self, row_id: int) -> bool:
        return self.low is None or self.high is None or self.low <= row_id <= self.high


@dataclass(frozen=True)
class StoredRow:
    """One stored row: its compared columns' values, and its `raw_json` on demand."""

    values: dict[str, Any]
    group: _Group
    owner: StoredRows

    def raw_json(self) -> str | None:
        return self.owner.raw_json(self.group, int(self.values["id"]))


class StoredRows:
    """Stored rows by id, over a table's Parquet files, holding a few row groups at a time."""

    def __init__(
        self, files: Sequence[Path], spec: TableSpec, cached_groups: int = CACHED_GROUPS
    ) -> None:
        self.spec = spec
        self.cached_groups = cached_groups
        self.groups = [group for path in files for group in _row_groups(path)]
        # The stored table's columns: those of any file (a file that predates one reads nulls).
        present = {name for path in files for name in pq.read_schema(path).names}
        self.stored_columns = frozenset(present)
        self.columns = [c for c in spec.column_names if c in present and c not in _NEVER_HELD]
        self._cache: OrderedDict[_Group, tuple[pa.Table, dict[int, int]]] = OrderedDict()
        self.max_rows_held = 0  # high-water mark of stored rows held (tests bound it)
        self.columns_read: set[str] = set()  # every column ever read into memory

    def ids(self) -> frozenset[int]:
        """Every stored id (one column, one file at a time)."""
        found: set[int] = set()
        for path in dict.fromkeys(group.path for group in self.groups):
            found.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        self.columns_read.add("id")
        return frozenset(found)

    def find(self, row_id: Any) -> StoredRow | None:
        """The stored row with this id (the last one, as a whole-table index would give)."""
        if row_id.__class__ is not int:
            return None
        for group in reversed(self.groups):
            if not group.may_hold(row_id):
                continue
            table, index = self._load(group)
            position = index.get(row_id)
            if position is not None:
                values = {name: table.column(name)[position].as_py() for name in self.columns}
                return StoredRow(values, group, self)
        return None

    def raw_json(self, group: _Group, row_id: int) -> str | None:
        if "raw_json" not in pq.read_schema(group.path).names:
            return None
        self.columns_read.add("raw_json")
        table = pq.ParquetFile(group.path).read_row_group(group.index, columns=["id", "raw_json"])
        ids = table.column("id").to_pylist()
        text = table.column("raw_json")[len(ids) - 1 - ids[::-1].index(row_id)].as_py()
        return None if text is None else str(text)

    def _load(self, group: _Group) -> tuple[pa.Table, dict[int, int]]:
        cached = self._cache.get(group)
        if cached is not None:
            self._cache.move_to_end(group)
            return cached
        table = _read_group(group, self.columns, self.spec)
        self.columns_read.update(table.column_names)
        index = {row_id: i for i, row_id in enumerate(table.column("id").to_pylist())}
        self._cache[group] = (table, index)
        if len(self._cache) > self.cached_groups:
            self._cache.popitem(last=False)
        held = sum(cached_table.num_rows for cached_table, _ in self._cache.values())
        self.max_rows_held = max(self.max_rows_held, held)
        return table, index


def _row_groups(path: Path) -> Iterator[_Group]:
    metadata = pq.ParquetFile(path).metadata
    id_column = metadata.schema.to_arrow_schema().get_field_index("id")
    for index in range(metadata.num_row_groups):
        stats = metadata.row_group(index).column(id_column).statistics
        known = stats is not None and stats.has_min_max
        yield _Group(path, index, stats.min if known else None, stats.max if known else None)


def _read_group(group: _Group, columns: list[str], spec: TableSpec) -> pa.Table:
    """The group's `columns`; those its file predates are nulls (as a merged read would give)."""
    have = set(pq.read_schema(group.path).names)
    table = pq.ParquetFile(group.path).read_row_group(
        group.index, columns=[c for c in columns if c in have]
    )
    for name in columns:
        if name not in have:
            field = spec.arrow_schema.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table
