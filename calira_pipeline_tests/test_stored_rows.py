"""The incremental walk's view of the stored bookings: a few row groups, never the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.ingest.incremental import stored_unchanged_predicate, unchanged_predicate
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.ingest.stored_rows import CACHED_GROUPS, StoredRows
from calira_pipeline.storage import rows_to_arrow
from calira_pipeline.storage.schema import BOOKINGS

START = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)
GROUP_ROWS = 100


def _row(booking_id: int, status: str = "Booked", **extra: Any) -> dict[str, Any]:
    return {
        "id": booking_id,
        "status": status,
        "start_time": START + timedelta(minutes=booking_id),
        "cost": Decimal("10.00"),
        "requester_email": f"user{booking_id % 7}@example.org",
        "raw_json": f'{{"id":{booking_id},"status":"{status}"}}',
        **extra,
    }


def _write(path: Path, rows: list[dict[str, Any]], policy: PiiPolicy) -> pa.Table:
    table = rows_to_arrow(BOOKINGS, policy.apply("bookings", rows))
    pq.write_table(table, path, row_group_size=GROUP_ROWS)
    return table


def test_a_walk_over_a_large_table_holds_a_few_row_groups_and_never_raw_json(
    tmp_path: Path,
) -> None:
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    path = tmp_path / "bookings.parquet"
    total = 5_000  # fifty row groups
    _write(path, [_row(i) for i in range(1, total + 1)], policy)
    stored = StoredRows([path], BOOKINGS)
    is_unchanged = stored_unchanged_predicate(stored, "bookings", policy)

    # A newest-first walk reading three pages, then an id that is not stored.
    for booking_id in range(total, total - 300, -1):
        assert is_unchanged(_row(booking_id))
    assert not is_unchanged(_row(total - 5, status="Cancelled"))
    assert not is_unchanged(_row(total + 1))

    assert stored.max_rows_held <= CACHED_GROUPS * GROUP_ROWS < total
    assert "raw_json" not in stored.columns_read
    assert stored.ids() == frozenset(range(1, total + 1))


def test_the_files_answer_exactly_as_the_loaded_table(tmp_path: Path) -> None:
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    disagreed = _row(
        150,
        list_detail_fields="status",
        raw_json='{"_list_values":{"status":"Completed"},"id":150,"status":"Booked"}',
    )
    rows = [_row(i) for i in range(1, 300) if i != 150] + [disagreed]
    # Two files, as a later partitioned layout writes them.
    first = _write(tmp_path / "a.parquet", [r for r in rows if r["id"] < 120], policy)
    second = _write(tmp_path / "b.parquet", [r for r in rows if r["id"] >= 120], policy)
    stored = StoredRows([tmp_path / "a.parquet", tmp_path / "b.parquet"], BOOKINGS)
    from_files = stored_unchanged_predicate(stored, "bookings", policy)
    loaded = unchanged_predicate(pa.concat_tables([first, second]), "bookings", policy)

    def listed(booking_id: int, status: str) -> dict[str, Any]:
        raw = f'{{"id":{booking_id},"status":"{status}"}}'
        return {**_row(booking_id, status), "cost": None, "raw_json": raw}

    probes = [
        _row(5),
        _row(130, status="Cancelled"),
        {**_row(7), "requester_email": "someone.else@example.org"},
        {**_row(8), "cost": Decimal("10.01")},
        listed(150, "Completed"),  # what the list said last time: unchanged
        listed(150, "Booked"),  # the list now agrees with the detail: changed
        _row(10_000),
    ]
    answers = [from_files(row) for row in probes]
    assert answers == [loaded(row) for row in probes]
    assert answers == [True, False, False, False, True, False, False]
    assert "raw_json" in stored.columns_read  # read for the one disagreeing booking only


def test_a_file_written_before_a_column_existed_compares_as_a_merged_read_would(
    tmp_path: Path,
) -> None:
    policy = PiiPolicy.for_data_dir("keep", tmp_path)
    old = rows_to_arrow(BOOKINGS, [_row(1), _row(2)]).drop_columns(["requester_sector"])
    new = rows_to_arrow(BOOKINGS, [_row(3, requester_sector="academia")])
    pq.write_table(old, tmp_path / "old.parquet")
    pq.write_table(new, tmp_path / "new.parquet")
    stored = StoredRows([tmp_path / "old.parquet", tmp_path / "new.parquet"], BOOKINGS)
    from_files = stored_unchanged_predicate(stored, "bookings", policy)
    merged = pa.concat_tables(
        [pq.read_table(tmp_path / "old.parquet"), pq.read_table(tmp_path / "new.parquet")],
        promote_options="default",
    )
    loaded = unchanged_predicate(merged, "bookings", policy)
    probes = [_row(1), _row(1, requester_sector="academia"), _row(3, requester_sector="academia")]
    assert [from_files(r) for r in probes] == [loaded(r) for r in probes] == [True, False, True]
