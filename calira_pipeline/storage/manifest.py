"""What one published snapshot holds: every table's files, generation and row count.

A snapshot's `manifest.json` is the writer's record of the published state; the DuckDB file of
the same snapshot is built from it for readers. Paths are relative to the data directory, so a
moved data directory still knows its files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
WHOLE_TABLE = "all"  # the partition name of a table written in one piece
_PARTITION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_=.-]{0,99}$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class TableEntry:
    """One published table: its files by partition (paths relative to the data directory)."""

    generation: str
    published_at: str
    rows: int
    files: dict[str, str]
    partition_rows: dict[str, int] = field(default_factory=dict)

    def with_partitions(
        self, generation: str, published_at: str, files: dict[str, str], rows: dict[str, int]
    ) -> TableEntry:
        """This table with `files` replacing only the partitions they name."""
        merged_files = {**self.files, **files}
        merged_rows = {**self.partition_rows, **rows}
        return replace(
            self,
            generation=generation,
            published_at=published_at,
            files=dict(sorted(merged_files.items())),
            partition_rows=dict(sorted(merged_rows.items())),
            rows=sum(merged_rows.values()),
        )


@dataclass(frozen=True)
class Manifest:
    snapshot: str
    sequence: int
    previous: str | None
    schema_version: int
    published_at: str
    root: str  # the absolute data directory the snapshot's DuckDB views were built for
    tables: dict[str, TableEntry]

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "snapshot": self.snapshot,
            "sequence": self.sequence,
            "previous": self.previous,
            "schema_version": self.schema_version,
            "published_at": self.published_at,
            "root": self.root,
            "tables": {
                name: {
                    "generation": t.generation,
                    "published_at": t.published_at,
                    "rows": t.rows,
                    "files": t.files,
                    "partition_rows": t.partition_rows,
                }
                for name, t in sorted(self.tables.items())
            },
        }
        return json.dumps(body, indent=1)

    def referenced_files(self) -> set[str]:
        return {path for entry in self.tables.values() for path in entry.files.values()}


def read_manifest(path: Path) -> Manifest:
    body = json.loads(path.read_text(encoding="utf-8"))
    return Manifest(
        snapshot=str(body["snapshot"]),
        sequence=int(body["sequence"]),
        previous=body.get("previous"),
        schema_version=int(body["schema_version"]),
        published_at=str(body["published_at"]),
        root=str(body["root"]),
        tables={
            name: TableEntry(
                generation=str(t["generation"]),
                published_at=str(t["published_at"]),
                rows=int(t["rows"]),
                files={str(k): str(v) for k, v in t["files"].items()},
                partition_rows={str(k): int(v) for k, v in t.get("partition_rows", {}).items()},
            )
            for name, t in body["tables"].items()
        },
    )


def write_manifest(manifest: Manifest, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())


def check_table_name(name: str) -> None:
    if not _TABLE_NAME.match(name):
        raise ValueError(
            f"table name {name!r} is not a plain SQL identifier (letters, digits, underscores)"
        )


def check_partition_name(name: str) -> None:
    if name == WHOLE_TABLE:
        raise ValueError(f"partition name {name!r} is reserved for a table stored whole")
    if not _PARTITION_NAME.match(name):
        raise ValueError(
            f"partition name {name!r} must be 1-100 letters, digits or _ = . - "
            "(e.g. 'organisation=42'), not starting with a dot"
        )
