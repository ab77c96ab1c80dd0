"""Where data lands: Parquet files and one DuckDB file under CALIRA_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from calira_pipeline.storage.snapshots import DUCKDB_FILE
from calira_pipeline.storage.tables import SchemaMismatchError, rows_to_arrow
from calira_pipeline.storage.warehouse import (
    PublishedTable,
    StorageError,
    Warehouse,
    write_parquet,
)

DEFAULT_DATA_DIR = "data"


def data_dir_from_env() -> Path:
    return Path(os.environ.get("CALIRA_DATA_DIR") or DEFAULT_DATA_DIR)


def connect(data_dir: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open the published DuckDB file read-only with a UTC session time zone (for notebooks).

    Runs never wait for this connection and it never sees a half-written table: each run publishes
    a new file and renames it over the old one.
    """
    path = Path(data_dir if data_dir is not None else data_dir_from_env()) / DUCKDB_FILE
    if not path.exists():
        raise StorageError(
            f"{path} does not exist yet; run `make demo` or materialise the assets first"
        )
    con = duckdb.connect(str(path), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    return con


__all__ = [
    "DEFAULT_DATA_DIR",
    "DUCKDB_FILE",
    "PublishedTable",
    "SchemaMismatchError",
    "StorageError",
    "Warehouse",
    "connect",
    "data_dir_from_env",
    "rows_to_arrow",
    "write_parquet",
]
