"""Where data lands: Parquet files and one DuckDB file under CALIRA_DATA_DIR."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

import duckdb

from calira_pipeline.config import data_dir_setting
from calira_pipeline.storage.snapshots import DUCKDB_FILE
from calira_pipeline.storage.table_files import StorageError, write_parquet
from calira_pipeline.storage.tables import SchemaMismatchError, rows_to_arrow
from calira_pipeline.storage.warehouse import PublishedTable, Warehouse

DEFAULT_DATA_DIR = "data"


PROJECT_NAME = "calira_pipeline"


def data_dir_from_env() -> Path:
    return Path(data_dir_setting() or DEFAULT_DATA_DIR)


def project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above `start` (default: the working directory) whose
    pyproject.toml is this project's, else the one this package was installed from (editable)."""
    here = (start or Path.cwd()).resolve()
    package_parent = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, package_parent):
        if _is_project(folder / "pyproject.toml"):
            return folder
    return None


def _is_project(pyproject: Path) -> bool:
    try:
        with pyproject.open("rb") as handle:
            return bool(tomllib.load(handle).get("project", {}).get("name") == PROJECT_NAME)
    except (OSError, tomllib.TOMLDecodeError):
        return False


@lru_cache(maxsize=8)
def _resolved_data_dir(configured: str | None, cwd: str) -> tuple[Path, str]:
    root = project_root(Path(cwd))
    base = root if root is not None else Path(cwd)
    where = f"project root {root}" if root is not None else f"working directory {cwd}"
    if configured:
        path = Path(configured).expanduser()
        if path.is_absolute():
            return path, "CALIRA_DATA_DIR"
        return (base / path).resolve(), f"CALIRA_DATA_DIR relative to the {where}"
    return (base / DEFAULT_DATA_DIR).resolve(), f"default {DEFAULT_DATA_DIR}/ under the {where}"


def default_data_dir() -> tuple[Path, str]:
    """(absolute data directory, how it was found) for readers such as notebooks.

    A relative CALIRA_DATA_DIR (and the default `data/`) means relative to the project root (the
    folder with this project's pyproject.toml above the working directory), so a notebook in
    `notebooks/` finds the same files `tasks.py demo` wrote. Resolved once per setting.
    """
    return _resolved_data_dir(data_dir_setting(), str(Path.cwd()))


def connect(data_dir: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open the published DuckDB file read-only with a UTC session time zone (for notebooks).

    Without `data_dir`, finds the data directory as `default_data_dir` says. Runs never wait for
    this connection and it never sees a half-written table or tables from two commits: each commit
    publishes a new snapshot, and this connection keeps the one it opened.
    """
    if data_dir is not None:
        folder, found = Path(data_dir).resolve(), "the data_dir argument"
    else:
        folder, found = default_data_dir()
    path = folder / DUCKDB_FILE
    if not path.exists():
        raise StorageError(
            f"no published data at {path} (data directory from {found}); run "
            "`python3 tasks.py demo` in the project root, materialise the assets, or set "
            "CALIRA_DATA_DIR to the directory holding calira.duckdb"
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
    "default_data_dir",
    "project_root",
    "rows_to_arrow",
    "write_parquet",
]
