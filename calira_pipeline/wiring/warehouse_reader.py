"""The `duckdb` resource: Dagster's own DuckDBResource, read-only on the published warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from calira_pipeline.storage import DEFAULT_DATA_DIR, DUCKDB_FILE, StorageError


class WarehouseDuckDBResource(DuckDBResource):
    """Read-only connections to `$CALIRA_DATA_DIR/calira.duckdb` with a UTC session time zone.

    Every publish renames a new `calira.duckdb` into place, so a table created in it would vanish
    at the next run; this resource cannot write there. Write your own results to your own file
    (e.g. `COPY (...) TO 'data/mine/x.parquet'`).
    """

    database: str = Field(
        default="",
        description="Path of the DuckDB file; empty means calira.duckdb in data_dir.",
    )
    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="CALIRA_DATA_DIR.")

    def database_path(self) -> Path:
        return Path(self.database) if self.database else Path(self.data_dir) / DUCKDB_FILE

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.database_path()
        if not path.exists():
            raise StorageError(
                f"{path.resolve()} does not exist yet: materialise the raw and mart assets "
                "first (or point CALIRA_DATA_DIR at the data directory that holds it)"
            )
        config = {"custom_user_agent": "dagster", **self.connection_config}
        con = duckdb.connect(str(path), read_only=True, config=config)
        try:
            con.execute("set TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
