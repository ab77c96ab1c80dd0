from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from calira_pipeline.ingest.incremental import merge_by_id, merge_files_by_id, unchanged_predicate
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.storage import rows_to_arrow, write_parquet
from calira_pipeline.storage.schema import BOOKINGS

START = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)


def _row(booking_id: int, status: str, cost: str | None = "10.00") -> dict[str, object]:
    return {
        "id": booking_id,
        "status": status,
        "start_time": START,
        "cost": Decimal(cost) if cost else None,
        "requester_email": "ada@example.org",
        "raw_json": "{}",
    }


def test_unchanged_compares_only_the_values_the_list_item_carries(tmp_path: Path) -> None:
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    stored = rows_to_arrow(
        BOOKINGS, policy.apply("bookings", [_row(1, "Booked"), _row(2, "Booked")])
    )
    is_unchanged = unchanged_predicate(stored, "bookings", policy)
    assert is_unchanged(_row(1, "Booked"))
    assert is_unchanged(_row(1, "Booked", cost=None))  # slim item: no cost to compare
    assert not is_unchanged(_row(1, "Cancelled"))
    assert not is_unchanged(_row(3, "Booked"))  # new id
    assert not is_unchanged({**_row(1, "Booked"), "requester_email": "grace@example.org"})


def test_merge_replaces_by_id_adds_new_and_keeps_the_rest_sorted() -> None:
    stored = rows_to_arrow(BOOKINGS, [_row(1, "Booked"), _row(2, "Booked"), _row(4, "Booked")])
    fresh = rows_to_arrow(BOOKINGS, [_row(2, "Cancelled"), _row(3, "Requested")])
    merged = merge_by_id(stored, fresh, BOOKINGS)
    assert merged.column("id").to_pylist() == [1, 2, 3, 4]
    assert merged.column("status").to_pylist() == ["Booked", "Cancelled", "Requested", "Booked"]
    assert merged.schema == BOOKINGS.arrow_schema
    assert merge_by_id(stored, rows_to_arrow(BOOKINGS, []), BOOKINGS).equals(stored)


def test_a_booking_whose_list_always_disagrees_is_unchanged_until_the_list_changes(
    tmp_path: Path,
) -> None:
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    detail = {
        **_row(1, "Booked"),
        "list_detail_fields": "status",
        "raw_json": '{"_list_values":{"status":"Completed"},"id":1,"status":"Booked"}',
    }
    stored = rows_to_arrow(BOOKINGS, policy.apply("bookings", [detail]))
    is_unchanged = unchanged_predicate(stored, "bookings", policy)

    def listed(status: str) -> dict[str, object]:
        return {**_row(1, status, cost=None), "raw_json": f'{{"id":1,"status":"{status}"}}'}

    assert is_unchanged(listed("Completed"))  # what the list said last time
    assert not is_unchanged(listed("Cancelled"))
    assert not is_unchanged(listed("Booked"))  # the list now agrees: worth a fresh detail


def test_merge_fills_columns_added_since_the_stored_table_was_written() -> None:
    stored = rows_to_arrow(BOOKINGS, [_row(1, "Booked"), _row(2, "Booked")])
    old = stored.drop_columns(["list_detail_fields"])
    merged = merge_by_id(old, rows_to_arrow(BOOKINGS, [_row(3, "Booked")]), BOOKINGS)
    assert merged.schema == BOOKINGS.arrow_schema
    assert merged.column("list_detail_fields").null_count == 3
    assert merge_by_id(old, rows_to_arrow(BOOKINGS, []), BOOKINGS).equals(stored)


def test_merging_files_in_key_ranges_gives_the_in_memory_merge(tmp_path: Path) -> None:
    stored = rows_to_arrow(BOOKINGS, [_row(i, "Booked") for i in range(1, 200, 2)])
    fresh = rows_to_arrow(BOOKINGS, [_row(i, "Cancelled") for i in range(150, 260, 3)])
    files = [tmp_path / "stored-a.parquet", tmp_path / "stored-b.parquet"]  # two partitions
    write_parquet(stored.slice(0, 40), files[0])
    write_parquet(stored.slice(40), files[1])
    write_parquet(fresh, tmp_path / "fresh.parquet")

    target = tmp_path / "merged.parquet"
    rows = merge_files_by_id(files, tmp_path / "fresh.parquet", target, BOOKINGS, range_rows=16)

    expected = merge_by_id(stored, fresh, BOOKINGS)
    assert rows == expected.num_rows
    assert pq.read_table(target).equals(expected)
    assert pq.ParquetFile(target).metadata.num_row_groups >= expected.num_rows // 32
