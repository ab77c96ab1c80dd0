"""Publishing Parquet files DuckDB wrote itself (commit by reference) and incoming folders."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from calira_pipeline import connect
from calira_pipeline.storage import StorageError, Warehouse


def _copy_numbers(path: Path, rows: int) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT range AS n FROM range({rows})) TO '{path}' (FORMAT parquet)")


def test_commit_files_publishes_duckdb_written_files_by_moving_them(tmp_path: Path) -> None:
    store = Warehouse(tmp_path)
    store.commit({"kept": pa.table({"x": [1, 2]})})
    with store.incoming() as folder:
        path = folder / "numbers.parquet"
        _copy_numbers(path, 1000)
        inode = path.stat().st_ino
        published = store.commit_files({"numbers": path})
        assert not path.exists()  # moved, not copied
    assert [(p.name, p.rows) for p in published] == [("numbers", 1000)]
    [stored] = store.table_files()["numbers"]
    assert stored.stat().st_ino == inode
    with connect(tmp_path) as con:
        assert con.execute("select count(*), sum(n) from numbers").fetchone() == (1000, 499500)
        assert con.execute("select count(*) from kept").fetchone() == (2,)
    assert list((tmp_path / "incoming").iterdir()) == []


def test_commit_files_refuses_a_file_outside_an_incoming_folder(tmp_path: Path) -> None:
    store = Warehouse(tmp_path)
    store.commit({"numbers": pa.table({"n": [7]})})
    stray = tmp_path / "stray.parquet"
    _copy_numbers(stray, 3)
    with pytest.raises(StorageError, match="not in an incoming folder"):
        store.commit_files({"numbers": stray})
    assert stray.exists()
    assert store.read_table("numbers").column("n").to_pylist() == [7]


def test_a_killed_runs_incoming_folder_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    store = Warehouse(tmp_path)
    abandoned = tmp_path / "incoming" / "dead"
    abandoned.mkdir(parents=True)
    (abandoned / "half.parquet").write_bytes(b"PAR1")
    live = tmp_path / "incoming" / "live"
    live.mkdir()
    fd = os.open(live / ".in-use.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a run in another process holds
        with store.incoming() as folder:
            assert folder.is_dir()
            assert not abandoned.exists()
            assert live.exists()
        assert not folder.exists()
    finally:
        os.close(fd)
