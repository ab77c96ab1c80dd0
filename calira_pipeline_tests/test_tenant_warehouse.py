"""A tenant's working copy on each worker, kept in step with the shared store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from calira_pipeline.ingest.pii import SALT_FILE, PiiPolicy
from calira_pipeline.storage.tenant_store import TenantStore
from calira_pipeline.storage.tenant_warehouse import TenantWarehouse


def table(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


def ids_in(store: TenantStore, tenant: str, name: str) -> list[int]:
    with store.connect(tenant=tenant) as con:
        return [r[0] for r in con.sql(f"select id from {name} order by id").fetchall()]


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    return TenantStore(str(tmp_path / "shared"))


def test_a_commit_on_one_worker_is_what_the_next_worker_starts_from(
    store: TenantStore, tmp_path: Path
) -> None:
    first = TenantWarehouse(tmp_path / "w1", store, "a")
    first.sync()
    first.commit({"bookings": table([1, 2]), "equipment": table([7])})
    assert ids_in(store, "a", "bookings") == [1, 2]

    second = TenantWarehouse(tmp_path / "w2", store, "a")
    second.sync()  # w2 has nothing yet: it pulls the store's tables
    assert second.read_table("equipment").column("id").to_pylist() == [7]
    second.commit({"bookings": table([1, 2, 3])})
    for house in (first, second):
        house.share_file(SALT_FILE, lambda folder: PiiPolicy.for_data_dir("hash", folder))
    assert store.pointer("a").sequence == 2
    assert ids_in(store, "a", "bookings") == [1, 2, 3]
    assert ids_in(store, "a", "equipment") == [7]

    first.sync()  # w1 is behind now: it pulls, then builds on the newest tables
    assert first.read_table("bookings").num_rows == 3
    assert (tmp_path / "w1" / SALT_FILE).read_bytes() == (tmp_path / "w2" / SALT_FILE).read_bytes()


def test_a_commit_over_a_stale_copy_is_refused_and_the_store_keeps_its_tables(
    store: TenantStore, tmp_path: Path
) -> None:
    first = TenantWarehouse(tmp_path / "w1", store, "a")
    first.sync()
    first.commit({"bookings": table([1])})
    other = TenantWarehouse(tmp_path / "w2", store, "a")
    other.sync()
    other.commit({"bookings": table([1, 2])})
    with pytest.raises(RuntimeError, match="tenant a: the shared store changed while this run"):
        first.commit({"bookings": table([9])})  # no sync: built on generation 1
    assert ids_in(store, "a", "bookings") == [1, 2]
    first.sync()
    assert first.read_table("bookings").column("id").to_pylist() == [1, 2]


def test_tenants_never_share_files_or_salts(store: TenantStore, tmp_path: Path) -> None:
    a = TenantWarehouse(tmp_path / "a", store, "a")
    b = TenantWarehouse(tmp_path / "b", store, "b")
    for house, ids in ((a, [1]), (b, [1, 2])):
        house.share_file(SALT_FILE, lambda folder: PiiPolicy.for_data_dir("hash", folder))
        house.sync()
        house.commit({"bookings": table(ids)})
    assert ids_in(store, "a", "bookings") == [1]
    assert ids_in(store, "b", "bookings") == [1, 2]
    assert (tmp_path / "a" / SALT_FILE).read_bytes() != (tmp_path / "b" / SALT_FILE).read_bytes()
    assert all("tenant=b" in f for f in store.pointer("b").files("bookings"))
