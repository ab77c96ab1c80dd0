"""One tenant's warehouse on a worker: a local working copy kept in step with the shared store.

The shared store (`TenantStore`, a path or `s3://`) is the truth every worker sees. A run works
on the worker's local copy exactly as a single-organisation run works on its data directory
(same locks, staging, DuckDB builds); each commit is then published to the tenant's prefix in
the store with one conditional pointer write. A run that lands on a worker whose copy is behind
the store (another worker ran the tenant last) first replaces the copy with the store's tables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calira_pipeline.storage import snapshots
from calira_pipeline.storage.objects import PreconditionFailed
from calira_pipeline.storage.table_files import write_parquet
from calira_pipeline.storage.tenant_store import Pointer, TenantStore
from calira_pipeline.storage.warehouse import PublishedTable, Warehouse, _WriteEntry

SYNC_FILE = ".store-generation.json"  # which store generation the local copy holds
SHARED_FILES = "_shared/{owner}/{name}"


class TenantWarehouse(Warehouse):
    """`Warehouse` on `work_dir` whose every commit also lands in `store` under `tenant`."""

    def __init__(self, work_dir: str | os.PathLike[str], store: TenantStore, tenant: str) -> None:
        super().__init__(work_dir)
        self.store = store
        self.tenant = tenant
        self._pulling = False

    def sync(self) -> Pointer:
        """Bring the local copy to the store's generation (downloading only if it is behind)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pointer = self.store.pointer(self.tenant)
        if pointer.generation and pointer.generation != self._local_generation():
            self._pull(pointer)
        return pointer

    def _publish(self, names: list[str], write: _WriteEntry) -> list[PublishedTable]:
        published = super()._publish(names, write)
        if self._pulling or not names:
            return published
        manifest = snapshots.current_manifest(self.data_dir)
        assert manifest is not None  # just published
        files = {n: [self.data_dir / f for f in manifest.tables[n].files.values()] for n in names}
        expected = self.store.pointer(self.tenant)
        if (expected.generation or None) != self._local_generation():
            # Published locally over an old copy: publishing that to the store would undo
            # another worker's tables. The next run starts from the store's copy.
            self._forget_generation()
            raise RuntimeError(
                f"tenant {self.tenant}: the shared store changed while this run ran (generation "
                f"{expected.generation}); nothing of this run was shared, run it again"
            )
        pointer = self.store.publish(self.tenant, files, expected=expected)
        self._remember_generation(pointer.generation)
        return published

    # -- internals -----------------------------------------------------------------------------

    def _pull(self, pointer: Pointer) -> None:
        with self.incoming() as folder:
            local: dict[str, Path] = {}
            for table in pointer.tables:
                files = pointer.files(table)
                target = folder / f"{table}.parquet"
                if len(files) == 1:
                    self.store.objects.get_file(files[0], target)
                else:
                    _concatenate(self.store, files, target)
                local[table] = target
            self._pulling = True
            try:
                self.commit_files(local)
            finally:
                self._pulling = False
        self._remember_generation(pointer.generation)

    def share_file(self, name: str, create: Callable[[Path], object]) -> None:
        """Make the data directory's file `name` the same on every worker of this tenant (e.g.
        the personal-data salt, so hashes agree): the first worker's copy wins, by a
        create-only write; `create(data_dir)` makes it when no worker has one yet."""
        shared = SHARED_FILES.format(owner=self.tenant, name=name)
        found = self.store.objects.read(shared)
        path = self.data_dir / name
        if found is None:
            if not path.exists():
                create(self.data_dir)
            try:
                self.store.objects.put_if(shared, path.read_bytes(), None)
                return
            except PreconditionFailed:
                found = self.store.objects.read(shared)  # another worker's copy won
                assert found is not None
        if not path.exists() or path.read_bytes() != found.data:
            partial = path.with_name(f"{name}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(found.data)
            os.replace(partial, path)

    def _local_generation(self) -> str | None:
        path = self.data_dir / SYNC_FILE
        if not path.exists() or snapshots.current_manifest(self.data_dir) is None:
            return None
        return str(json.loads(path.read_text())["generation"])

    def _remember_generation(self, generation: str) -> None:
        partial = self.data_dir / f"{SYNC_FILE}.partial"
        partial.write_text(json.dumps({"generation": generation}))
        os.replace(partial, self.data_dir / SYNC_FILE)

    def _forget_generation(self) -> None:
        (self.data_dir / SYNC_FILE).unlink(missing_ok=True)


def _concatenate(store: TenantStore, files: list[str], target: Path) -> None:
    """A table stored as several files (partitions) pulled as one local file."""
    parts = []
    for number, relative in enumerate(files):
        part = target.with_name(f"{target.stem}-{number}.parquet")
        store.objects.get_file(relative, part)
        parts.append(part)
    tables = [pq.read_table(p) for p in parts]
    write_parquet(pa.concat_tables(tables, promote_options="default"), target)
    for part in parts:
        part.unlink()
