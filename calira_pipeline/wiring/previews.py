"""Previews a person can read: names beside ids, and the newest rows first."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from calira_pipeline.wiring.metadata import PREVIEW_ROWS

# id column -> (name column shown beside it, lookup table)
_NAMES = {
    "equipment_id": ("equipment_name", "equipment"),
    "lab_id": ("lab_name", "accounts"),
    "provider_lab_id": ("provider_lab_name", "accounts"),
    "requester_lab_id": ("requester_lab_name", "accounts"),
    "department_id": ("department_name", "accounts"),
    "organisation_id": ("organisation_name", "accounts"),
}
# The first of these a table has orders its preview, newest first.
_NEWEST = ("month", "day", "start_time", "start_utc", "requested_at", "created_at", "id")


def newest_first(table: pa.Table, rows: int = PREVIEW_ROWS) -> pa.Table:
    """The `rows` newest rows (by the first time-like column, else the id), newest first."""
    key = next((c for c in _NEWEST if c in table.column_names), None)
    if key is None or table.num_rows == 0:
        return table.slice(0, rows)
    # Selecting k rows is linear; sorting a million-row table for five would not be.
    picked = pc.select_k_unstable(table, k=min(rows, table.num_rows),
                                  sort_keys=[(key, "descending")])
    return table.take(picked)


def mart_preview(con: duckdb.DuckDBPyConnection, name: str, rows: int = PREVIEW_ROWS) -> pa.Table:
    """Newest rows of the table `name` on `con`, with a name column before each id it has."""
    columns = [
        r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_name = ? "
            "order by ordinal_position", [name]).fetchall()
    ]
    views = {r[0] for r in con.execute(
        "select table_name from information_schema.tables").fetchall()}
    names, joins = [], []
    for i, (id_column, (name_column, lookup)) in enumerate(_NAMES.items()):
        if id_column in columns and name_column not in columns and lookup in views:
            names.append(f"n{i}.name as {name_column}")
            joins.append(f'left join "{lookup}" n{i} on n{i}.id = t."{id_column}"')
    key = next((c for c in _NEWEST if c in columns), None)
    order = f'order by t."{key}" desc nulls last' if key else ""
    select = ", ".join([*names, "t.*"])
    # The newest rows first, then their names: joining names onto every row of a million-row
    # table before keeping five costs more than the preview. Identifiers come from the mart's own
    # columns and this module's constants.
    newest = f'(select * from "{name}" t {order} limit {int(rows)})'
    return con.sql(
        f"select {select} from {newest} t {' '.join(joins)} {order} limit {int(rows)}"
    ).to_arrow_table()
