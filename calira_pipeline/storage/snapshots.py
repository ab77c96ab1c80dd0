"""Snapshots: one directory per publish, switched in by renaming one symlink.

    calira.duckdb -> current/calira.duckdb        (fixed links, made once)
    parquet       -> current/parquet
    current       -> snapshots/<id>               (the one rename that publishes)
    snapshots/<id>/manifest.json, calira.duckdb (views + metadata), parquet/<table>.parquet links
    tables/<table>/<generation>/<partition>.parquet   (immutable data files)

A snapshot costs a small DuckDB file of views and a few symlinks; data files are never copied.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from calira_pipeline.storage.manifest import (
    MANIFEST_FILE,
    WHOLE_TABLE,
    Manifest,
    TableEntry,
    read_manifest,
    write_manifest,
)
from calira_pipeline.storage.schema import SCHEMA_VERSION

DUCKDB_FILE = "calira.duckdb"
PARQUET_DIR = "parquet"
CURRENT = "current"
SNAPSHOTS = "snapshots"
TABLES = "tables"
TMP_PREFIX = ".tmp-"
LEGACY_PREFIX = ".legacy-"
META_TABLE = "_calira_tables"
VERSION_TABLE = "_calira_schema"
SNAPSHOT_TABLE = "_calira_snapshot"


def current_manifest(data_dir: Path) -> Manifest | None:
    path = data_dir / CURRENT / MANIFEST_FILE
    return read_manifest(path) if path.exists() else None


def publish(data_dir: Path, manifest: Manifest) -> None:
    """Build `manifest`'s snapshot, then switch `current` to it with one atomic rename."""
    folder = data_dir / SNAPSHOTS / manifest.snapshot
    folder.mkdir(parents=True)
    _build_views(folder / DUCKDB_FILE, manifest, data_dir)
    _link_parquet(folder / PARQUET_DIR, manifest, data_dir)
    write_manifest(manifest, folder / MANIFEST_FILE)
    fsync_path(folder)
    fsync_path(folder.parent)
    current = data_dir / CURRENT
    if current.is_dir() and not current.is_symlink():
        # A copy that followed the links (shutil.copytree, rsync -L) made it a real directory.
        current.rename(data_dir / f"{LEGACY_PREFIX}current-{uuid.uuid4().hex}")
    _replace_with_symlink(current, os.path.join(SNAPSHOTS, manifest.snapshot))
    ensure_entry_links(data_dir)


def ensure_entry_links(data_dir: Path) -> None:
    """Point `calira.duckdb` and `parquet` through `current` (replacing a pre-snapshot layout)."""
    database = data_dir / DUCKDB_FILE
    if not database.is_symlink():
        # A regular file from before snapshots: one atomic rename replaces it; readers holding
        # it open keep their (complete, native-table) copy.
        _replace_with_symlink(database, os.path.join(CURRENT, DUCKDB_FILE))
    parquet = data_dir / PARQUET_DIR
    if parquet.is_dir() and not parquet.is_symlink():
        # A directory cannot be renamed over; its files are already hard-linked into tables/.
        parquet.rename(data_dir / f"{LEGACY_PREFIX}parquet-{uuid.uuid4().hex}")
    if not parquet.is_symlink():
        _replace_with_symlink(parquet, os.path.join(CURRENT, PARQUET_DIR))
    fsync_path(data_dir)


def adopt_legacy(data_dir: Path) -> Manifest | None:
    """The tables of a pre-snapshot data directory (real `parquet/<table>.parquet` files), hard
    linked into `tables/` so they are never copied; None if there is no such directory."""
    folder = data_dir / PARQUET_DIR
    if folder.is_symlink() or not folder.is_dir():
        return None
    generation = f"legacy-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    entries = {}
    for path in sorted(folder.glob("*.parquet")):
        if path.name.startswith(TMP_PREFIX):
            continue
        target = data_dir / TABLES / path.stem / generation / f"{WHOLE_TABLE}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:  # a file system without hard links
            shutil.copyfile(path, target)
        rows = pq.read_metadata(target).num_rows
        files = {WHOLE_TABLE: relative(data_dir, target)}
        entries[path.stem] = TableEntry(generation, now, rows, files, {WHOLE_TABLE: rows})
    return Manifest(generation, 0, None, SCHEMA_VERSION, now, str(data_dir), entries)


def collect_garbage(data_dir: Path, current: Manifest | None) -> None:
    """Remove snapshots and data files no reader can still need.

    Kept: the current snapshot, the one it replaced (a reader may have resolved the link just
    before the switch), and every snapshot whose DuckDB file a reader holds open.
    """
    keep: set[str] = set()
    if current is not None:
        keep.add(current.snapshot)
        if current.previous:
            keep.add(current.previous)
    snapshots = data_dir / SNAPSHOTS
    folders = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.exists() else []
    locked = locked_files()
    keep.update(f.name for f in folders if has_reader(f / DUCKDB_FILE, locked))
    referenced: set[str] = set()
    for folder in folders:
        if folder.name in keep and (folder / MANIFEST_FILE).exists():
            referenced |= read_manifest(folder / MANIFEST_FILE).referenced_files()
        elif folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
    tables = data_dir / TABLES
    for path in sorted(tables.glob("*/*/*.parquet")) if tables.exists() else []:
        if path.relative_to(data_dir).as_posix() not in referenced:
            path.unlink(missing_ok=True)
    for folder in [*tables.glob("*/*"), *tables.glob("*")] if tables.exists() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for legacy in data_dir.glob(f"{LEGACY_PREFIX}*"):
        shutil.rmtree(legacy, ignore_errors=True)


def has_reader(database: Path, locked: set[tuple[int, int, int]] | None = None) -> bool:
    """Does any connection hold this DuckDB file open? (DuckDB locks every file it opens.)

    `locked` is `locked_files()`: on Linux the kernel's lock table, read without opening the
    file, because closing any descriptor of a file drops this process's own locks on it (a
    notebook that runs `materialize()` in-process would lose its lock to the probe).
    """
    try:
        st = database.stat()
    except OSError:
        return False
    if locked is not None:
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in locked
    try:
        fd = os.open(database, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def locked_files() -> set[tuple[int, int, int]] | None:
    """(major, minor, inode) of every file locked on this machine, or None off Linux."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    found = set()
    for line in lines:
        # "1: POSIX  ADVISORY  READ 11669 fe:00:2147025 0 EOF" (a "->" marks a blocked waiter)
        fields = line.split()
        device = next((f for f in fields if f.count(":") == 2), None)
        if device is not None:
            major, minor, inode = device.split(":")
            found.add((int(major, 16), int(minor, 16), int(inode)))
    return found


def relative(data_dir: Path, path: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sql_string(value: str) -> str:
    # DDL cannot take bound parameters; quote the path as a SQL string literal.
    return "'" + value.replace("'", "''") + "'"


def view_sql(name: str, files: list[Path]) -> str:
    paths = ", ".join(sql_string(str(p)) for p in files)
    return f'create or replace view "{name}" as select * from read_parquet([{paths}])'


def _build_views(path: Path, manifest: Manifest, data_dir: Path) -> None:
    # Metadata as views over constants too: a DuckDB file of views only is ~0.3 MB, a table
    # costs a 256 kB block or more, and every commit writes one of these files.
    tables = sorted(manifest.tables.items())
    files = {name: [data_dir / f for f in entry.files.values()] for name, entry in tables}
    statements = [
        _constant_view(VERSION_TABLE, [("version", "integer")], [(manifest.schema_version,)]),
        _constant_view(
            SNAPSHOT_TABLE,
            [
                ("snapshot", "varchar"),
                ("sequence", "bigint"),
                ("previous", "varchar"),
                ("published_at", "timestamptz"),
            ],
            [(manifest.snapshot, manifest.sequence, manifest.previous, manifest.published_at)],
        ),
        _constant_view(
            META_TABLE,
            [
                ("name", "varchar"),
                ("generation", "varchar"),
                ("row_count", "bigint"),
                ("published_at", "timestamptz"),
                ("files", "varchar[]"),
            ],
            [
                (name, e.generation, e.rows, e.published_at, [str(f) for f in files[name]])
                for name, e in tables
            ],
        ),
        *(view_sql(name, files[name]) for name, _ in tables),
    ]
    with duckdb.connect(str(path)) as con:
        con.execute(";\n".join(statements))
        con.execute("checkpoint")
    fsync_path(path)


def _constant_view(
    name: str, columns: list[tuple[str, str]], rows: list[tuple[object, ...]]
) -> str:
    selects = [
        "select "
        + ", ".join(
            f"cast({_literal(v)} as {t}) as {c}" for v, (c, t) in zip(row, columns, strict=True)
        )
        for row in rows
    ] or ["select " + ", ".join(f"cast(null as {t}) as {c}" for c, t in columns) + " where false"]
    return f"create view {name} as " + " union all ".join(selects)


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]::varchar[]"
    return sql_string(str(value))


def _link_parquet(folder: Path, manifest: Manifest, data_dir: Path) -> None:
    """`<table>.parquet` for a table stored whole, `<table>/<partition>.parquet` otherwise."""
    folder.mkdir()
    for name, entry in manifest.tables.items():
        if set(entry.files) == {WHOLE_TABLE}:
            links = {folder / f"{name}.parquet": entry.files[WHOLE_TABLE]}
        else:
            (folder / name).mkdir()
            links = {folder / name / f"{p}.parquet": f for p, f in entry.files.items()}
        for link, target in links.items():
            os.symlink(os.path.relpath(data_dir / target, link.parent), link)


def _replace_with_symlink(link: Path, target: str) -> None:
    tmp = link.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{link.name}"
    os.symlink(target, tmp)
    os.replace(tmp, link)
