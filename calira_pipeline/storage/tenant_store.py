"""Per-tenant storage for many writers on a local path or an object store.

    <root>/<table>/tenant=<key>/<generation>/data.parquet   immutable files, one prefix per tenant
    <root>/<table>/_consortium/<generation>/data.parquet    consortium rollups (no tenant)
    <root>/_pointers/tenant=<key>.json                      which generation of each table is live

A publish uploads new files under a fresh generation folder, then replaces the tenant's pointer
with a conditional write (S3 `If-Match`; a lock and a rename on a local path): every table of
the publish switches together, and two writers of one tenant can never both win. Generation
folders have no `=` in their name, so DuckDB's hive partitioning sees only `tenant`.

Readers resolve pointers first and pass DuckDB an explicit file list: a glob with a `tenant`
filter would still open another tenant's file to bind the schema.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from calira_pipeline.storage.objects import ObjectRoot, PreconditionFailed
from calira_pipeline.storage.snapshots import sql_string

POINTERS = "_pointers"
CONSORTIUM = "_consortium"
DATA_FILE = "data.parquet"
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class TenantPublishConflict(RuntimeError):
    """Another run published the same tenant meanwhile; nothing of this publish is visible."""


@dataclass(frozen=True)
class Pointer:
    """A tenant's live tables: name -> files (relative to the root) and rows."""

    owner: str
    generation: str = ""
    sequence: int = 0
    published_at: str = ""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)  # the generation before, kept for readers
    tag: str | None = None  # what a conditional write must match (None: no pointer yet)

    def files(self, table: str) -> list[str]:
        return list(self.tables[table]["files"])

    def to_json(self) -> bytes:
        body = {k: v for k, v in self.__dict__.items() if k != "tag"}
        return json.dumps(body, indent=1, sort_keys=True).encode()


def owner_prefix(owner: str) -> str:
    """The folder a tenant (or the consortium) writes under, inside each table's folder."""
    return CONSORTIUM if owner == CONSORTIUM else f"tenant={owner}"


class TenantStore:
    """Every tenant's tables under one root; each tenant reads and writes only its own prefix."""

    def __init__(self, root: str, filesystem: Any | None = None) -> None:
        self.objects = ObjectRoot(root, filesystem)

    @property
    def root(self) -> str:
        return self.objects.root

    # -- pointers ------------------------------------------------------------------------------

    def pointer(self, owner: str) -> Pointer:
        found = self.objects.read(f"{POINTERS}/{owner_prefix(owner)}.json")
        if found is None:
            return Pointer(owner)
        body = json.loads(found.data)
        return Pointer(tag=found.tag, **body)

    def tenants(self) -> list[str]:
        """Every tenant with a published pointer, in key order."""
        names = self.objects.list_names(POINTERS)
        return sorted(
            n[len("tenant=") : -len(".json")]
            for n in names
            if n.startswith("tenant=") and n.endswith(".json")
        )

    # -- writing -------------------------------------------------------------------------------

    def publish(
        self, owner: str, files: Mapping[str, list[Path]], expected: Pointer | None = None
    ) -> Pointer:
        """Upload `files` (table -> local Parquet files) as a new generation of `owner`'s tables
        and switch them all at once; other tables of `owner` stay as they are.

        `expected` is the pointer the caller built on (default: the current one); if another
        publish landed since, `TenantPublishConflict` is raised and nothing changes.
        """
        base = expected if expected is not None else self.pointer(owner)
        sequence = base.sequence + 1
        generation = f"g{sequence:08d}-{uuid.uuid4().hex[:8]}"
        tables = dict(base.tables)
        uploaded: list[str] = []
        try:
            for table, paths in files.items():
                if not _TABLE_NAME.match(table):
                    raise ValueError(f"table name {table!r} is not a plain lower-case identifier")
                keys = [
                    f"{table}/{owner_prefix(owner)}/{generation}/{i:04d}-{DATA_FILE}"
                    for i in range(len(paths))
                ]
                for path, key in zip(paths, keys, strict=True):
                    self.objects.put_file(path, key)
                    uploaded.append(key)
                rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
                tables[table] = {"files": keys, "rows": rows, "generation": generation}
            replaced = [f for t in files if t in base.tables for f in base.files(t)]
            pointer = Pointer(
                owner=owner,
                generation=generation,
                sequence=sequence,
                published_at=datetime.now(UTC).isoformat(),
                tables=tables,
                retired=replaced,
            )
            self.objects.put_if(
                f"{POINTERS}/{owner_prefix(owner)}.json", pointer.to_json(), base.tag
            )
        except PreconditionFailed as exc:
            self.objects.remove(uploaded)
            raise TenantPublishConflict(
                f"tenant {owner}: another run published it while this one ran, so this publish "
                "was dropped (its tables stay as that run left them); run it again"
            ) from exc
        except BaseException:
            self.objects.remove(uploaded)
            raise
        # Files two generations old: a reader that resolved the previous pointer still has its
        # files (the ones just retired), so only the generation before that goes.
        self.objects.remove([f for f in base.retired if f not in _all_files(pointer)])
        return pointer

    # -- reading -------------------------------------------------------------------------------

    def connect(self, tenant: str | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB (UTC) with one view per table: one tenant's files, or (no
        `tenant`) every tenant's, each row with its `tenant` column from the hive folder."""
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        # DuckDB must never download an extension at run time; S3 goes through fsspec.
        con.execute("set autoinstall_known_extensions = false")
        con.execute("set autoload_known_extensions = false")
        if self.objects.is_s3:
            con.register_filesystem(self.objects.fs)
        owners = [tenant] if tenant is not None else self.tenants()
        files: dict[str, list[str]] = {}
        for owner in owners:
            pointer = self.pointer(owner)
            for table in pointer.tables:
                files.setdefault(table, []).extend(
                    self.objects.url(f) for f in pointer.files(table)
                )
        if tenant is None:
            consortium = self.pointer(CONSORTIUM)
            for table in consortium.tables:
                con.execute(_view(table, [self.objects.url(f) for f in consortium.files(table)]))
        for table, urls in sorted(files.items()):
            con.execute(_view(table, urls, hive=True))
        return con


def _view(table: str, urls: list[str], hive: bool = False) -> str:
    listed = ", ".join(sql_string(u) for u in urls)
    options = ", hive_partitioning = true, hive_types = {'tenant': varchar}" if hive else ""
    return (
        f'create or replace view "{table}" as select * from read_parquet([{listed}], '
        f"union_by_name = true{options})"
    )


def _all_files(pointer: Pointer) -> set[str]:
    return {f for t in pointer.tables for f in pointer.files(t)}
