"""Merging an incremental bookings read into the stored table (Arrow or DuckDB, no Dagster)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from calira_pipeline.api.merge import LIST_VALUES_KEY, same_value
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.ingest.staging import SORT_RANGE_ROWS, write_query
from calira_pipeline.ingest.stored_rows import StoredRows
from calira_pipeline.storage.schema import TableSpec
from calira_pipeline.storage.snapshots import sql_string

_NOT_COMPARED = {"raw_json"}  # a slim list item's JSON never equals the stored detail's
_DISAGREED = "list_detail_fields"


# A stored row as the predicate sees it: a value getter by column, and its raw_json on demand.
Found = tuple[Callable[[str], Any], Callable[[], str | None]]


def unchanged_predicate(
    stored: pa.Table, table: str, policy: PiiPolicy
) -> Callable[[dict[str, Any]], bool]:
    """True when the stored row with the same id already holds every value the new row carries.

    Values the new row lacks (None: the slim list shape has no cost, labs, …) are not compared;
    the new row is masked with the same personal-data policy as the stored one first. Where the
    stored booking's list item disagreed with its detail (``list_detail_fields``), the stored
    columns hold the detail's values, so the list's value is compared with the list value kept
    in the stored ``raw_json`` instead: a booking the list always reports differently is not
    "changed" on every run.
    """
    index = {row_id: i for i, row_id in enumerate(stored.column("id").to_pylist())}
    columns = {name: stored.column(name) for name in stored.column_names}

    def find(row_id: Any) -> Found | None:
        position = index.get(row_id)
        if position is None:
            return None

        def raw() -> str | None:
            return columns["raw_json"][position].as_py() if "raw_json" in columns else None

        return (lambda name: columns[name][position].as_py()), raw

    return _predicate(find, frozenset(columns), table, policy)


def stored_unchanged_predicate(
    stored: StoredRows, table: str, policy: PiiPolicy
) -> Callable[[dict[str, Any]], bool]:
    """`unchanged_predicate` over the stored Parquet files, a few row groups at a time: the
    hourly walk never loads the stored table (`StoredRows`)."""

    def find(row_id: Any) -> Found | None:
        row = stored.find(row_id)
        return None if row is None else (row.values.__getitem__, row.raw_json)

    return _predicate(find, stored.stored_columns, table, policy)


def _predicate(
    find: Callable[[Any], Found | None],
    stored_columns: frozenset[str],
    table: str,
    policy: PiiPolicy,
) -> Callable[[dict[str, Any]], bool]:
    def is_unchanged(row: dict[str, Any]) -> bool:
        found = find(row.get("id"))
        if found is None:
            return False
        value_of, stored_raw = found
        masked = policy.apply(table, [row])[0]
        disagreed = _disagreed_fields(value_of, stored_columns)
        if disagreed and not _same_list_values(stored_raw(), masked, disagreed):
            return False
        return all(
            value_of(name) == value
            for name, value in masked.items()
            if value is not None
            and name in stored_columns
            and name not in _NOT_COMPARED
            and not _from_fields(name, disagreed)
        )

    return is_unchanged


def _disagreed_fields(value_of: Callable[[str], Any], stored_columns: frozenset[str]) -> list[str]:
    if _DISAGREED not in stored_columns:
        return []
    text = value_of(_DISAGREED)
    return [field.strip() for field in text.split(",")] if text else []


def _from_fields(column: str, fields: list[str]) -> bool:
    """``requester_email`` comes from API field ``requester``; ``status`` from ``status``."""
    return any(column == field or column.startswith(f"{field}_") for field in fields)


def _same_list_values(stored_raw: str | None, row: dict[str, Any], fields: list[str]) -> bool:
    if not stored_raw or not row.get("raw_json"):
        return False
    kept = json.loads(stored_raw).get(LIST_VALUES_KEY) or {}
    listed = json.loads(row["raw_json"])
    return all(
        field in listed and field in kept and same_value(listed[field], kept[field])
        for field in fields
    )


def merge_by_id(stored: pa.Table, fresh: pa.Table, spec: TableSpec) -> pa.Table:
    """Stored rows replaced by fresh rows with the same id, plus the new ones, sorted by id.

    Columns added to the schema since the stored table was written are filled with nulls.
    """
    for field in spec.arrow_schema:
        if field.name not in stored.column_names:
            stored = stored.append_column(field, pa.nulls(stored.num_rows, field.type))
    stored = stored.select(spec.column_names)
    if fresh.num_rows == 0:
        return stored
    keep = pc.invert(pc.is_in(stored.column("id"), value_set=fresh.column("id")))
    merged = pa.concat_tables([stored.filter(keep).cast(spec.arrow_schema), fresh])
    return merged.sort_by([(key, "ascending") for key in spec.primary_key])


def merge_files_by_id(
    stored: list[Path],
    fresh: Path,
    target: Path,
    spec: TableSpec,
    range_rows: int = SORT_RANGE_ROWS,
) -> int:
    """`merge_by_id` over Parquet files, in DuckDB: the stored table is never loaded into Python.

    Writes `target` (sorted by primary key, `spec`'s exact types) and returns its row count.
    """
    have = set(pq.read_schema(stored[0]).names) if stored else set()
    # Columns added to the schema since the stored files were written are filled with nulls.
    columns = ", ".join(
        f'"{name}"' if name in have else f'null as "{name}"' for name in spec.column_names
    )
    files = ", ".join(sql_string(str(path)) for path in stored)
    fresh_file = sql_string(str(fresh))
    key = ", ".join(f'"{k}"' for k in spec.primary_key)
    sql = (
        f"select {columns} from read_parquet([{files}], union_by_name = true) "
        f"where ({key}) not in (select ({key}) from read_parquet({fresh_file})) "
        f"union all select * from read_parquet({fresh_file})"
    )
    return write_query(sql, target, spec, target.parent, range_rows)
