"""The data directory: Parquet files plus a DuckDB file, replaced atomically by a single writer.

Why not the stock DuckDB I/O manager: it deletes then inserts without a transaction and holds the
database read-write, so a crash leaves an empty table and a notebook holding the file open makes
runs fail. Here every write goes to a temporary file that is renamed into place, and the DuckDB
file is rebuilt as a copy and renamed over the old one. Readers that already have the old file open
keep reading the old inode; new readers see the new file. Nobody ever waits for anybody.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.schema import SCHEMA_VERSION

DUCKDB_FILE = "calira.duckdb"
GENERATION_KEY = b"calira_generation"
_TMP_PREFIX = ".tmp-"
# DuckDB's own row-group size: a scan of one Parquet file splits across threads per row group,
# so a 1M-row table written as one group (pyarrow's default) is read on a single core.
PARQUET_ROW_GROUP_ROWS = 122_880
_META_TABLE = "_calira_tables"
_VERSION_TABLE = "_calira_schema"


class StorageError(RuntimeError):
    """The data directory cannot be used as asked; the message says how to fix it."""


@dataclass(frozen=True)
class PublishedTable:
    name: str
    rows: int
    generation: str


class Warehouse:
    """Owns every path under the data directory; assets only call its verbs."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.parquet_dir = self.data_dir / "parquet"
        self.duckdb_path = self.data_dir / DUCKDB_FILE

    def parquet_path(self, table: str) -> Path:
        return self.parquet_dir / f"{table}.parquet"

    def has_table(self, table: str) -> bool:
        return self.parquet_path(table).exists()

    def read_table(self, table: str) -> pa.Table:
        path = self.parquet_path(table)
        if not path.exists():
            raise StorageError(
                f"table {table!r} has not been materialised yet ({path} is missing); "
                f"materialise the {table} asset first"
            )
        return pq.read_table(path)

    def scratch_connection(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB (UTC session) with a view over every published Parquet file."""
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        for name, path in self._parquet_files().items():
            con.execute(
                f'create view "{name}" as select * from read_parquet({_sql_string(str(path))})'
            )
        return con

    def commit(self, tables: Mapping[str, pa.Table]) -> list[PublishedTable]:
        """Write `tables` as Parquet and publish them to DuckDB.

        The DuckDB file switches to all of `tables` at once or not at all. Each Parquet file is
        replaced whole; a run killed between two Parquet renames leaves some files of this commit
        new and the rest old, and the next commit or `repair` reloads them (the next run of the
        asset rewrites all of its tables).
        """
        with self._writer_lock():
            generation = uuid.uuid4().hex
            staged: dict[str, Path] = {}
            try:
                for name, table in tables.items():
                    staged[name] = self._stage_parquet(name, table, generation)
                db_tmp = self._build_database(staged)
                # Parquet first: if killed between the renames, `repair` reloads DuckDB from it.
                for name, tmp in staged.items():
                    os.replace(tmp, self.parquet_path(name))
                os.replace(db_tmp, self.duckdb_path)
            finally:
                for leftover in self.data_dir.glob(f"{_TMP_PREFIX}*"):
                    leftover.unlink(missing_ok=True)
                for leftover in staged.values():
                    leftover.unlink(missing_ok=True)
            _fsync_dir(self.parquet_dir)
            _fsync_dir(self.data_dir)
            return [PublishedTable(n, t.num_rows, generation) for n, t in tables.items()]

    def write_report(self, name: str, html: str, images: Mapping[str, bytes]) -> list[Path]:
        """Write reports/<name> and one PNG per image, each atomically; return their paths."""
        folder = self.data_dir / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        files = {name: html.encode()}
        for title, png in images.items():
            slug = "".join(ch if ch.isalnum() else "_" for ch in title.lower()).strip("_")
            files[f"{slug}.png"] = png
        written = []
        for file_name, content in files.items():
            tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{file_name}"
            tmp.write_bytes(content)
            os.replace(tmp, folder / file_name)
            written.append(folder / file_name)
        return written

    def repair(self) -> list[str]:
        """Reload every Parquet file the DuckDB file does not match; return their names."""
        with self._writer_lock():
            stale = self._stale_tables()
            if stale or not self.duckdb_path.exists():
                db_tmp = self._build_database({})
                os.replace(db_tmp, self.duckdb_path)
                _fsync_dir(self.data_dir)
            return stale

    def schema_version(self) -> int | None:
        if not self.duckdb_path.exists():
            return None
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            return _read_schema_version(con)

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        try:
            self.parquet_dir.mkdir(parents=True, exist_ok=True)
            lock_file = open(self.data_dir / ".writer.lock", "a+")  # noqa: SIM115
        except OSError as exc:
            raise StorageError(
                f"cannot write to the data directory {self.data_dir}: {exc.strerror}; "
                "set CALIRA_DATA_DIR to a writable directory"
            ) from exc
        with lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                # Holding the only writer lock means any temp file left here is from a killed run.
                for folder in (self.data_dir, self.parquet_dir):
                    for orphan in folder.glob(f"{_TMP_PREFIX}*"):
                        orphan.unlink(missing_ok=True)
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _stage_parquet(self, name: str, table: pa.Table, generation: str) -> Path:
        tmp = self.parquet_dir / f"{_TMP_PREFIX}{name}-{generation}.parquet"
        meta = dict(table.schema.metadata or {})
        meta[GENERATION_KEY] = generation.encode()
        write_parquet(table.replace_schema_metadata(meta), tmp)
        _fsync_file(tmp)
        return tmp

    def _stale_tables(self) -> list[str]:
        published = self._published_generations()
        return sorted(
            name
            for name, path in self._parquet_files().items()
            if published.get(name) != _parquet_generation(path)
        )

    def _parquet_files(self) -> dict[str, Path]:
        if not self.parquet_dir.exists():
            return {}
        return {
            p.stem: p
            for p in sorted(self.parquet_dir.glob("*.parquet"))
            if not p.name.startswith(_TMP_PREFIX)
        }

    def _published_generations(self) -> dict[str, str]:
        if not self.duckdb_path.exists():
            return {}
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            if not _has_table(con, _META_TABLE):
                return {}
            rows = con.execute(f"select name, generation from {_META_TABLE}").fetchall()
        return {str(n): str(g) for n, g in rows}

    def _build_database(self, staged: Mapping[str, Path]) -> Path:
        """Copy the DuckDB file, replace `staged` and any stale tables, return the copy."""
        db_tmp = self.data_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}.duckdb"
        if self.duckdb_path.exists():
            shutil.copyfile(self.duckdb_path, db_tmp)
        sources = {**self._parquet_files(), **staged}
        with duckdb.connect(str(db_tmp)) as con:
            version = _read_schema_version(con)
            if version is not None and version > SCHEMA_VERSION:
                db_tmp.unlink(missing_ok=True)
                raise StorageError(
                    f"{self.duckdb_path} was written by a newer calira_pipeline (schema version "
                    f"{version}, this one knows {SCHEMA_VERSION}); upgrade calira_pipeline or "
                    "point CALIRA_DATA_DIR at another directory"
                )
            _ensure_meta(con)
            published = dict(con.execute(f"select name, generation from {_META_TABLE}").fetchall())
            for name, path in sorted(sources.items()):
                generation = _parquet_generation(path)
                if name in staged or published.get(name) != generation:
                    _load_table(con, name, path, generation)
            con.execute("checkpoint")
        _fsync_file(db_tmp)
        return db_tmp


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet exactly as the pipeline writes it (zstd, DuckDB-sized row groups)."""
    pq.write_table(table, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP_ROWS)


def _load_table(con: duckdb.DuckDBPyConnection, name: str, path: Path, generation: str) -> None:
    con.execute("begin")
    con.execute(f'create or replace table "{name}" as select * from read_parquet(?)', [str(path)])
    rows = con.execute(f'select count(*) from "{name}"').fetchone()
    con.execute(
        f"insert or replace into {_META_TABLE} values (?, ?, ?, ?)",
        [name, generation, rows[0] if rows else 0, datetime.now(UTC)],
    )
    con.execute("commit")


def _ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"create table if not exists {_META_TABLE} (name varchar primary key, generation varchar, "
        "row_count bigint, published_at timestamptz)"
    )
    con.execute(f"create table if not exists {_VERSION_TABLE} (version integer)")
    con.execute(f"delete from {_VERSION_TABLE}")
    con.execute(f"insert into {_VERSION_TABLE} values (?)", [SCHEMA_VERSION])


def _read_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    if not _has_table(con, _VERSION_TABLE):
        return None
    row = con.execute(f"select max(version) from {_VERSION_TABLE}").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _parquet_generation(path: Path) -> str:
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(GENERATION_KEY)
    return value.decode() if value else json.dumps([path.stat().st_size, path.stat().st_mtime_ns])


def _sql_string(value: str) -> str:
    # DDL cannot take bound parameters; quote the path as a SQL string literal.
    return "'" + value.replace("'", "''") + "'"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)
