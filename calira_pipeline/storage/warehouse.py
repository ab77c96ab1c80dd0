"""The data directory: immutable Parquet files published by reference, one writer at a time.

Why not the stock DuckDB I/O manager: it deletes then inserts without a transaction and holds the
database read-write, so a crash leaves an empty table and a notebook holding the file open makes
runs fail. Why not a DuckDB file of native tables rebuilt per commit (this project's first
design): every commit copied the whole warehouse. Here a commit writes only the tables it
changes, as new files, and publishes a new snapshot (a small DuckDB file of views over every
table's files) by renaming one symlink: all tables of a commit switch together, readers never
wait, and a reader holding an old snapshot keeps it (see `snapshots.collect_garbage`).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.storage import rendered, snapshots
from calira_pipeline.storage.incoming import incoming_folder, is_incoming
from calira_pipeline.storage.manifest import (
    MANIFEST_FILE,
    Manifest,
    TableEntry,
    check_partition_name,
    check_table_name,
    read_manifest,
)
from calira_pipeline.storage.schema import SCHEMA_VERSION
from calira_pipeline.storage.snapshots import DUCKDB_FILE, TABLES, TMP_PREFIX

# Re-exported: writers elsewhere import these from here.
from calira_pipeline.storage.table_files import PARQUET_ROW_GROUP_ROWS as PARQUET_ROW_GROUP_ROWS
from calira_pipeline.storage.table_files import StorageError as StorageError
from calira_pipeline.storage.table_files import adopt_file, write_table_file

_WriteEntry = Callable[[str, str, str, TableEntry | None], TableEntry]


@dataclass(frozen=True)
class PublishedTable:
    name: str
    rows: int
    generation: str


class Warehouse:
    """Owns every path under the data directory; assets only call its verbs."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.duckdb_path = self.data_dir / DUCKDB_FILE
        self.parquet_dir = self.data_dir / snapshots.PARQUET_DIR  # readers' stable paths

    # -- reading -------------------------------------------------------------------------------

    def table_files(self) -> dict[str, list[Path]]:
        """Every published table's data files (absolute), as of now."""
        manifest = snapshots.current_manifest(self.data_dir)
        if manifest is None:
            return {}
        return {
            name: [self.data_dir / f for f in entry.files.values()]
            for name, entry in sorted(manifest.tables.items())
        }

    def has_table(self, table: str) -> bool:
        return table in self.table_files()

    def read_table(self, table: str) -> pa.Table:
        files = self.table_files().get(table)
        if files is None:
            raise StorageError(
                f"table {table!r} has not been materialised yet in {self.data_dir}; "
                f"materialise the {table} asset first"
            )
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    def scratch_connection(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB (UTC session) with a view over every published table.

        It also attaches the snapshot's DuckDB file read-only, which pins that snapshot: its
        files are not removed by later publishes while this connection is open.
        """
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        folder = (self.data_dir / snapshots.CURRENT).resolve()
        if not (folder / MANIFEST_FILE).exists():
            return con
        manifest = read_manifest(folder / MANIFEST_FILE)
        pinned = snapshots.sql_string(str(folder / DUCKDB_FILE))
        con.execute(f"attach {pinned} as calira_snapshot (read_only)")
        for name, entry in sorted(manifest.tables.items()):
            con.execute(snapshots.view_sql(name, [self.data_dir / f for f in entry.files.values()]))
        return con

    def schema_version(self) -> int | None:
        """The schema version of the published data (None before the first publish)."""
        manifest = snapshots.current_manifest(self.data_dir)
        if manifest is not None:
            return manifest.schema_version
        if not self.duckdb_path.exists():
            return None
        # A data directory of the pre-snapshot layout keeps its version in the DuckDB file. (Never
        # opened once snapshots exist: closing a second handle on a file a connection in this
        # process holds would drop that connection's lock, and with it the snapshot's pin.)
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            return _read_schema_version(con)

    # -- writing -------------------------------------------------------------------------------

    def commit(
        self, tables: Mapping[str, pa.Table], partition: str | None = None
    ) -> list[PublishedTable]:
        """Write `tables` as new Parquet files and publish them all in one snapshot.

        (Files already written, e.g. by a streaming fetch or DuckDB, are published with
        `commit_files` instead: moved into place, never read or copied.)

        Without `partition` each table is replaced whole. With it, only that partition's file of
        each table is replaced and the table's other partitions stay as they are (a table stored
        whole becomes partitioned: its whole-table file is dropped). Costs the size of `tables`.
        """
        if partition is not None:
            check_partition_name(partition)

        def write(name: str, snapshot: str, at: str, existing: TableEntry | None) -> TableEntry:
            return write_table_file(
                self.data_dir, name, tables[name], partition, snapshot, at, existing
            )

        return self._publish(list(tables), write)

    def incoming(self) -> AbstractContextManager[Path]:
        """A fresh folder in the data directory for files DuckDB writes (tables, spills); removed
        on exit. Publish its table files with `commit_files`."""
        return incoming_folder(self.data_dir)

    def commit_files(self, files: Mapping[str, Path]) -> list[PublishedTable]:
        """Publish Parquet files already written in an `incoming()` folder, each as its table's
        whole new content, in one snapshot. The files are moved, never read or rewritten."""
        for name, path in files.items():
            if not is_incoming(self.data_dir, Path(path)):
                raise StorageError(
                    f"table {name}: {path} is not in an incoming folder of {self.data_dir}; "
                    "write it inside Warehouse.incoming() (a rename cannot cross file systems)"
                )

        def adopt(name: str, snapshot: str, at: str, existing: TableEntry | None) -> TableEntry:
            return adopt_file(self.data_dir, name, Path(files[name]), snapshot, at)

        return self._publish(list(files), adopt)

    def _publish(self, names: list[str], write: _WriteEntry) -> list[PublishedTable]:
        for name in names:
            check_table_name(name)
        with self._writer_lock():
            current = self._current_or_legacy()
            sequence = current.sequence + 1 if current else 1
            snapshot = f"{sequence:08d}-{uuid.uuid4().hex[:8]}"
            published_at = datetime.now(UTC).isoformat()
            entries = dict(current.tables) if current else {}
            try:
                for name in names:
                    entries[name] = write(name, snapshot, published_at, entries.get(name))
                manifest = Manifest(
                    snapshot=snapshot,
                    sequence=sequence,
                    previous=current.snapshot if current else None,
                    schema_version=SCHEMA_VERSION,
                    published_at=published_at,
                    root=str(self.data_dir),
                    tables=entries,
                )
                snapshots.publish(self.data_dir, manifest)
            finally:
                # Also removes this commit's files if it failed before the switch.
                snapshots.collect_garbage(self.data_dir, snapshots.current_manifest(self.data_dir))
            return [PublishedTable(n, entries[n].rows, snapshot) for n in names]

    def repair(self) -> list[str]:
        """Republish the current tables if the DuckDB file is missing, damaged or was built for
        another location of the data directory; remove leftovers. Returns the tables republished.
        """
        with self._writer_lock():
            manifest = self._current_or_legacy()
            if manifest is None:
                return []
            if manifest.root == str(self.data_dir) and self._database_intact():
                snapshots.ensure_entry_links(self.data_dir)
                snapshots.collect_garbage(self.data_dir, manifest)
                return []
        self.commit({})
        return sorted(manifest.tables)

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
            tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}-{file_name}"
            tmp.write_bytes(content)
            os.replace(tmp, folder / file_name)
            written.append(folder / file_name)
        return written

    def keep_rendered(self, snapshot: str, content: bytes) -> None:
        """Keep what a step rendered from the publication `snapshot` (e.g. charts) for later
        steps; a newer snapshot's replaces it."""
        rendered.write_rendered(self.data_dir, snapshot, content)

    def rendered_for_current(self) -> bytes | None:
        """What was kept for the current publication, if anything was rendered from it."""
        manifest = snapshots.current_manifest(self.data_dir)
        return rendered.read_rendered(self.data_dir, manifest.snapshot) if manifest else None

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        try:
            (self.data_dir / TABLES).mkdir(parents=True, exist_ok=True)
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
                for orphan in self.data_dir.glob(f"{TMP_PREFIX}*"):
                    orphan.unlink(missing_ok=True)
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _current_or_legacy(self) -> Manifest | None:
        current = snapshots.current_manifest(self.data_dir)
        link = self.data_dir / snapshots.CURRENT
        if current is None and link.is_symlink():
            # Publishing never leaves this state; starting afresh would delete every table.
            raise StorageError(
                f"{link} points to {os.readlink(link)}, which is missing or has no manifest: "
                "something outside calira_pipeline changed the data directory. Restore it from "
                "a backup, or point CALIRA_DATA_DIR at an empty directory to start afresh"
            )
        try:
            newest = self.schema_version() or 0
        except duckdb.Error:
            newest = 0  # a damaged DuckDB file of the old layout; its Parquet files are adopted
        if newest > SCHEMA_VERSION:
            raise StorageError(
                f"{self.duckdb_path} was written by a newer calira_pipeline (schema version "
                f"{newest}, this one knows {SCHEMA_VERSION}); upgrade calira_pipeline or "
                "point CALIRA_DATA_DIR at another directory"
            )
        return current if current is not None else snapshots.adopt_legacy(self.data_dir)

    def _database_intact(self) -> bool:
        # DuckDB's magic bytes, checked without opening the file in DuckDB (see schema_version).
        try:
            with open(self.duckdb_path, "rb") as handle:
                return handle.read(12)[8:12] == b"DUCK"
        except OSError:
            return False


def _read_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    row = con.execute(
        "select count(*) from information_schema.tables where table_name = ?",
        [snapshots.VERSION_TABLE],
    ).fetchone()
    if not row or not row[0]:
        return None
    version = con.execute(f"select max(version) from {snapshots.VERSION_TABLE}").fetchone()
    return int(version[0]) if version and version[0] is not None else None
