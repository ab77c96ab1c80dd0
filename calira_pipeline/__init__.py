"""calira_pipeline: the Calira (Clustermarket) booking API to Parquet and DuckDB, with Dagster.

Importing the package loads nothing heavy: `connect` imports DuckDB when it is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


def connect(data_dir: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open the published warehouse read-only (see `calira_pipeline.storage.connect`)."""
    from calira_pipeline.storage import connect as open_published

    return open_published(data_dir)


__all__ = ["connect"]
