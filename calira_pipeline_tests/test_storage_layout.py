"""Publishing by reference: what a commit writes, what switches together, what is kept."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calira_pipeline import connect
from calira_pipeline.storage import StorageError, Warehouse, write_parquet
from calira_pipeline.storage.snapshots import has_reader, locked_files

ROOT = Path(__file__).resolve().parent.parent


def _ints(n: int, offset: int = 0, column: str = "x") -> pa.Table:
    return pa.table({column: pa.array(range(offset, offset + n), pa.int64())})


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f'select count(*) from "{table}"').fetchone()
    assert row is not None
    return int(row[0])


def _data_files(data_dir: Path, table: str) -> list[Path]:
    return sorted((data_dir / "tables" / table).glob("*/*.parquet"))


def test_commit_writes_only_the_tables_it_changes(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"big": _ints(500_000), "small": _ints(10)})
    (big_file,) = _data_files(tmp_path, "big")
    before = big_file.stat()
    for n in range(3):
        warehouse.commit({"small": _ints(10 + n)})
    after = big_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _data_files(tmp_path, "big") == [big_file]
    # A publish costs the changed table plus a small snapshot, far less than the big table.
    snapshot = (tmp_path / "current").resolve()
    snapshot_bytes = sum(p.stat().st_size for p in snapshot.rglob("*") if not p.is_symlink())
    assert snapshot_bytes < before.st_size
    with connect(tmp_path) as con:
        assert (_count(con, "big"), _count(con, "small")) == (500_000, 12)


def test_all_tables_of_a_commit_switch_together_for_every_reader(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"left": _ints(1), "right": _ints(1)})
    reader = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    try:
        warehouse.commit({"left": _ints(2), "right": _ints(2)})
        assert (_count(reader, "left"), _count(reader, "right")) == (1, 1)
        parquet = tmp_path / "parquet"
        counts = [pq.read_table(parquet / f"{t}.parquet").num_rows for t in ("left", "right")]
        assert counts == [2, 2]
    finally:
        reader.close()


def test_failed_commit_publishes_nothing_and_leaves_no_files(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"labs": _ints(3)}, partition="lab=1")
    with pytest.raises(StorageError, match="labs: the new partition's columns differ"):
        warehouse.commit({"first": _ints(5), "labs": _ints(2, column="y")}, partition="lab=2")
    with connect(tmp_path) as con:
        assert _count(con, "labs") == 3
        assert con.execute("select count(*) from _calira_tables").fetchone() == (1,)
    assert not (tmp_path / "tables" / "first").exists()
    assert len(_data_files(tmp_path, "labs")) == 1
    assert list(tmp_path.glob(".tmp-*")) == []


def test_partitions_are_written_without_rewriting_each_other(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _ints(2)}, partition="lab=1")
    (lab1,) = _data_files(tmp_path, "bookings")
    inode = lab1.stat().st_ino
    warehouse.commit({"bookings": _ints(3, offset=100)}, partition="lab=2")
    assert lab1.exists() and lab1.stat().st_ino == inode
    with connect(tmp_path) as con:
        assert _count(con, "bookings") == 5
        files = con.execute("select files from _calira_tables where name = 'bookings'").fetchone()
        assert files is not None and len(files[0]) == 2
    folder = tmp_path / "parquet" / "bookings"
    assert sorted(p.name for p in folder.iterdir()) == ["lab=1.parquet", "lab=2.parquet"]
    warehouse.commit({"bookings": _ints(1)}, partition="lab=1")  # replaces lab=1 only
    assert warehouse.read_table("bookings").num_rows == 4
    with warehouse.scratch_connection() as con:
        assert con.execute("select list_sort(list(x)) from bookings").fetchone() == (
            [0, 100, 101, 102],
        )
    warehouse.commit({"bookings": _ints(7)})  # whole again: one file, the documented path
    assert pq.read_table(tmp_path / "parquet" / "bookings.parquet").num_rows == 7
    assert not folder.exists()


def test_files_no_reader_needs_are_removed_by_later_publishes(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    for n in range(1, 6):
        warehouse.commit({"bookings": _ints(n)})
    # The current snapshot and the one before it (a reader may have just resolved the link).
    assert len(list((tmp_path / "snapshots").iterdir())) == 2
    assert len(_data_files(tmp_path, "bookings")) == 2


def test_a_reader_in_another_process_keeps_its_snapshot_until_it_closes(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _ints(1)})
    script = textwrap.dedent(
        f"""
        import sys, duckdb
        con = duckdb.connect({str(warehouse.duckdb_path)!r}, read_only=True)
        print("open", flush=True)
        sys.stdin.readline()
        print(con.execute("select count(*) from bookings").fetchone()[0], flush=True)
        """
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdin is not None
    assert reader.stdout.readline().strip() == "open"
    held = (tmp_path / "current" / "calira.duckdb").resolve()
    assert has_reader(held, locked_files()) and has_reader(held)  # kernel table, and lock probe
    for n in range(2, 6):
        warehouse.commit({"bookings": _ints(n)})
    reader.stdin.write("query\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "1"
    assert reader.wait(timeout=60) == 0
    assert len(_data_files(tmp_path, "bookings")) == 3  # the reader's, previous, current
    warehouse.commit({"bookings": _ints(6)})
    assert len(_data_files(tmp_path, "bookings")) == 2


def test_a_kill_between_the_tables_of_one_commit_publishes_none_of_them(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"first": _ints(1), "second": _ints(1)})
    script = textwrap.dedent(
        f"""
        import numpy as np
        import pyarrow as pa
        from calira_pipeline.storage import Warehouse
        big = pa.table({{"x": np.random.default_rng(0).integers(0, 2**62, 8_000_000)}})
        Warehouse({str(tmp_path)!r}).commit({{"first": pa.table({{"x": [1, 2]}}), "second": big}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 120
        # `first` is written and in place; `second` is still being written: kill right there.
        while len(_data_files(tmp_path, "first")) < 2:
            assert writer.poll() is None, "the commit ended before it could be killed"
            assert time.monotonic() < deadline
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=60)
    with connect(tmp_path) as con:
        assert (_count(con, "first"), _count(con, "second")) == (1, 1)
    assert pq.read_table(tmp_path / "parquet" / "first.parquet").num_rows == 1
    warehouse.commit({"other": _ints(1)})  # the next writer removes what the kill left
    assert len(_data_files(tmp_path, "first")) == 1
    assert list(tmp_path.glob(".tmp-*")) == []


def test_a_data_dir_of_the_previous_layout_is_adopted_without_copying(tmp_path: Path) -> None:
    legacy = tmp_path / "parquet"
    legacy.mkdir()
    write_parquet(_ints(4), legacy / "bookings.parquet")
    with duckdb.connect(str(tmp_path / "calira.duckdb")) as con:
        con.execute("create table bookings as select * from range(4) t(x)")
        con.execute("create table _calira_schema as select 1 as version")
    old_reader = duckdb.connect(str(tmp_path / "calira.duckdb"), read_only=True)
    try:
        Warehouse(tmp_path).commit({"other": _ints(2)})
        assert _count(old_reader, "bookings") == 4
    finally:
        old_reader.close()
    assert (tmp_path / "calira.duckdb").is_symlink() and (tmp_path / "parquet").is_symlink()
    (adopted,) = _data_files(tmp_path, "bookings")
    assert adopted.stat().st_nlink == 1  # the old name is gone, the data was never copied
    with connect(tmp_path) as con:
        assert (_count(con, "bookings"), _count(con, "other")) == (4, 2)
    assert list(tmp_path.glob(".legacy-*")) == []


def test_repair_rebuilds_a_damaged_database_and_follows_a_moved_data_dir(tmp_path: Path) -> None:
    Warehouse(tmp_path / "a").commit({"bookings": _ints(3)})
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = Warehouse(tmp_path / "b")
    assert moved.repair() == ["bookings"]
    assert moved.repair() == []
    with connect(tmp_path / "b") as con:
        assert _count(con, "bookings") == 3
    (tmp_path / "b" / "current" / "calira.duckdb").write_bytes(b"damaged")
    assert moved.repair() == ["bookings"]
    with connect(tmp_path / "b") as con:
        assert _count(con, "bookings") == 3


def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain SQL identifier"):
        Warehouse(tmp_path).commit({'x"; drop table y; --': _ints(1)})
    with pytest.raises(ValueError, match="partition name"):
        Warehouse(tmp_path).commit({"bookings": _ints(1)}, partition="../escape")
    with pytest.raises(ValueError, match="reserved"):
        Warehouse(tmp_path).commit({"bookings": _ints(1)}, partition="all")
    assert not (tmp_path / "tables").exists()


def test_a_scratch_connection_pins_the_snapshot_it_reads(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _ints(1)})
    with warehouse.scratch_connection() as con:
        for n in range(2, 6):
            warehouse.commit({"bookings": _ints(n)})
        assert _count(con, "bookings") == 1
    warehouse.commit({"bookings": _ints(6)})
    assert len(_data_files(tmp_path, "bookings")) == 2


def test_a_copy_that_followed_the_links_keeps_working(tmp_path: Path) -> None:
    Warehouse(tmp_path / "a").commit({"bookings": _ints(3), "other": _ints(1)})
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # links become real files and folders
    copy = Warehouse(tmp_path / "b")
    copy.commit({"other": _ints(2)})
    assert (tmp_path / "b" / "current").is_symlink()
    assert (tmp_path / "b" / "calira.duckdb").is_symlink()
    with connect(tmp_path / "b") as con:
        assert (_count(con, "bookings"), _count(con, "other")) == (3, 2)
        files = con.execute("select unnest(files) from _calira_tables").fetchall()
        assert all(f.startswith(str(tmp_path / "b")) for (f,) in files)
    assert list((tmp_path / "b").glob(".legacy-*")) == []


def test_a_data_dir_damaged_from_outside_is_refused_not_wiped(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    warehouse.commit({"bookings": _ints(3)})
    shutil.rmtree(tmp_path / "snapshots")
    with pytest.raises(StorageError, match="Restore it from a backup"):
        warehouse.commit({"other": _ints(1)})
    assert len(_data_files(tmp_path, "bookings")) == 1
