"""Merging an incremental bookings read into the stored table (pure Arrow, no Dagster)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from calira_pipeline.pii import PiiPolicy
from calira_pipeline.schema import TableSpec

_NOT_COMPARED = {"raw_json"}  # a slim list item's JSON never equals the stored detail's


def unchanged_predicate(
    stored: pa.Table, table: str, policy: PiiPolicy
) -> Callable[[dict[str, Any]], bool]:
    """True when the stored row with the same id already holds every value the new row carries.

    Values the new row lacks (None: the slim list shape has no cost, labs, …) are not compared;
    the new row is masked with the same personal-data policy as the stored one first.
    """
    index = {row_id: i for i, row_id in enumerate(stored.column("id").to_pylist())}
    columns = {name: stored.column(name) for name in stored.column_names}

    def is_unchanged(row: dict[str, Any]) -> bool:
        position = index.get(row.get("id"))
        if position is None:
            return False
        masked = policy.apply(table, [row])[0]
        return all(
            columns[name][position].as_py() == value
            for name, value in masked.items()
            if value is not None and name in columns and name not in _NOT_COMPARED
        )

    return is_unchanged


def merge_by_id(stored: pa.Table, fresh: pa.Table, spec: TableSpec) -> pa.Table:
    """Stored rows replaced by fresh rows with the same id, plus the new ones, sorted by id."""
    if fresh.num_rows == 0:
        return stored
    keep = pc.invert(pc.is_in(stored.column("id"), value_set=fresh.column("id")))
    merged = pa.concat_tables([stored.filter(keep).cast(spec.arrow_schema), fresh])
    return merged.sort_by([(key, "ascending") for key in spec.primary_key])
