from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from calira_pipeline import connect
from calira_pipeline.storage import SchemaMismatchError, StorageError, Warehouse, rows_to_arrow
from calira_pipeline.storage.schema import BOOKINGS, SCHEMA_VERSION


def _bookings(*ids: int) -> pa.Table:
    rows = [
        {
            "id": i,
            "start_time": datetime(2024, 1, 1, 9, tzinfo=UTC),
            "end_time": datetime(2024, 1, 1, 11, tzinfo=UTC),
            "cost": Decimal("150.00"),
            "status": "Booked",
        }
        for i in ids
    ]
    return rows_to_arrow(BOOKINGS, rows)


def test_rows_to_arrow_types_and_sorts_by_primary_key() -> None:
    table = _bookings(3, 1, 2)
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.schema.field("cost").type == pa.decimal128(18, 2)
    assert table.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert table.column("equipment_id").null_count == 3


def test_rows_to_arrow_names_table_and_column_on_bad_value() -> None:
    with pytest.raises(SchemaMismatchError, match="bookings: column cost"):
        rows_to_arrow(BOOKINGS, [{"id": 1, "cost": "abc"}])


def test_commit_publishes_typed_tables_readable_through_connect(tmp_path: Path) -> None:
    Warehouse(tmp_path).commit({"bookings": _bookings(1, 2)})
    with connect(tmp_path) as con:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'bookings'"
            ).fetchall()
        )
        assert types["id"] == "BIGINT"
        assert types["cost"] == "DECIMAL(18,2)"
        assert types["start_time"] == "TIMESTAMP WITH TIME ZONE"
        assert con.execute("select sum(cost) from bookings").fetchone() == (Decimal("300.00"),)
        assert con.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)


def test_reader_holding_the_file_open_sees_old_data_and_never_blocks(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _bookings(1)})
    reader = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    try:
        # Many publishes later the reader's snapshot (and the files its views read) still exist.
        for n in range(2, 6):
            warehouse.commit({"bookings": _bookings(*range(1, n + 1))})
            assert reader.execute("select count(*) from bookings").fetchone() == (1,)
    finally:
        reader.close()
    with connect(tmp_path) as con:
        assert con.execute("select count(*) from bookings").fetchone() == (5,)


def test_second_commit_keeps_other_tables(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _bookings(1)})
    warehouse.commit({"other": pa.table({"x": [1, 2]})})
    with connect(tmp_path) as con:
        assert con.execute("select count(*) from bookings").fetchone() == (1,)
        assert con.execute("select count(*) from other").fetchone() == (2,)


def test_rendered_artefacts_are_kept_for_their_publication_only(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    assert warehouse.rendered_for_current() is None  # nothing published yet
    first = warehouse.commit({"bookings": _bookings(1)})[0].generation
    warehouse.keep_rendered(first, b"drawn from the first")
    assert warehouse.rendered_for_current() == b"drawn from the first"
    second = warehouse.commit({"other": pa.table({"x": [1]})})[0].generation
    assert warehouse.rendered_for_current() is None  # a newer publication: draw again
    warehouse.keep_rendered(second, b"drawn from the second")
    assert warehouse.rendered_for_current() == b"drawn from the second"
    kept = list((tmp_path / "reports" / ".rendered").iterdir())
    assert [p.name for p in kept] == [f"{second}.json"]  # the older one is gone
    with pytest.raises(ValueError, match="not a snapshot name"):
        warehouse.keep_rendered("../escape", b"x")


def test_orphaned_temp_files_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _bookings(1)})
    orphan = warehouse.data_dir / ".tmp-bookings-dead.parquet"
    orphan.write_bytes(b"half a file")
    warehouse.commit({"bookings": _bookings(1)})
    assert not orphan.exists()


def test_newer_schema_version_is_refused_and_data_kept(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _bookings(1)})
    manifest = tmp_path / "current" / "manifest.json"
    body = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**body, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StorageError, match="newer calira_pipeline"):
        warehouse.commit({"bookings": _bookings(1, 2)})
    assert warehouse.read_table("bookings").num_rows == 1


def test_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="set CALIRA_DATA_DIR"):
        Warehouse(blocker / "data").commit({"bookings": _bookings(1)})


def test_connect_without_data_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="tasks.py demo") as raised:
        connect(tmp_path)
    assert str(tmp_path.resolve() / "calira.duckdb") in str(raised.value)


def _project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "calira_pipeline"\n')
    Warehouse(root / "data").commit({"bookings": _bookings(1, 2)})
    return root / "notebooks"


def test_connect_from_notebooks_finds_the_project_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_project(tmp_path / "clone"))
    with connect() as con:
        assert con.execute("select count(*) from bookings").fetchone() == (2,)


def test_relative_data_dir_setting_is_relative_to_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebooks = _project(tmp_path / "clone")
    Warehouse(tmp_path / "clone" / "elsewhere").commit({"bookings": _bookings(1, 2)})
    monkeypatch.chdir(notebooks)
    monkeypatch.setenv("CALIRA_DATA_DIR", "elsewhere")
    with connect() as con:
        assert con.execute("select count(*) from bookings").fetchone() == (2,)
    monkeypatch.setenv("CALIRA_DATA_DIR", "missing")
    with pytest.raises(StorageError) as raised:
        connect()
    # The absolute path it looked in, and how it got there.
    assert str((tmp_path / "clone" / "missing" / "calira.duckdb").resolve()) in str(raised.value)
    assert "CALIRA_DATA_DIR" in str(raised.value)
