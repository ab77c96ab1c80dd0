"""Per-tenant storage on a local path and on S3 (moto on loopback): prefixes, atomic publish,
hive-partitioned reads, and a tenant's query never opening another tenant's files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from calira_pipeline.storage import write_parquet
from calira_pipeline.storage.tenant_store import (
    CONSORTIUM,
    TenantPublishConflict,
    TenantStore,
)
from calira_pipeline_tests.s3_support import moto_endpoint, s3_bucket

__all__ = ["moto_endpoint", "s3_bucket"]  # fixtures used below


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TenantStore:
    if request.param == "local":
        return TenantStore(str(tmp_path / "root"))
    root, fs = request.getfixturevalue("s3_bucket")
    return TenantStore(root, filesystem=fs)


def parquet(tmp_path: Path, name: str, ids: list[int]) -> list[Path]:
    path = tmp_path / f"{name}-{ids[0] if ids else 0}-{len(ids)}.parquet"
    write_parquet(pa.table({"id": pa.array(ids, pa.int64())}), path)
    return [path]


def test_each_tenant_writes_under_its_own_prefix_and_reads_only_its_rows(
    store: TenantStore, tmp_path: Path
) -> None:
    store.publish("a", {"bookings": parquet(tmp_path, "a", [1, 2, 3])})
    store.publish("b", {"bookings": parquet(tmp_path, "b", [1, 2])})
    for key in ("a", "b"):
        assert all(
            f.startswith(f"bookings/tenant={key}/g") for f in store.pointer(key).files("bookings")
        )
    assert store.tenants() == ["a", "b"]
    with store.connect(tenant="a") as con:
        assert con.sql("select tenant, count(*) from bookings group by all").fetchall() == [
            ("a", 3)
        ]
    with store.connect() as con:
        rows = con.sql("select tenant, count(*) from bookings group by all order by 1").fetchall()
    assert rows == [("a", 3), ("b", 2)]


def test_all_tables_of_a_publish_switch_together_and_others_stay(
    store: TenantStore, tmp_path: Path
) -> None:
    store.publish(
        "a", {"bookings": parquet(tmp_path, "b1", [1]), "equipment": parquet(tmp_path, "e1", [7])}
    )
    store.publish("a", {"bookings": parquet(tmp_path, "b2", [1, 2])})
    pointer = store.pointer("a")
    assert pointer.sequence == 2
    assert pointer.tables["bookings"]["rows"] == 2
    assert pointer.tables["equipment"]["generation"].startswith("g00000001-")
    with store.connect(tenant="a") as con:
        assert con.sql("select count(*) from equipment").fetchone() == (1,)


def test_a_publish_built_on_a_stale_pointer_loses_and_leaves_no_files(
    store: TenantStore, tmp_path: Path
) -> None:
    store.publish("a", {"bookings": parquet(tmp_path, "x", [1])})
    seen = store.pointer("a")
    store.publish("a", {"bookings": parquet(tmp_path, "y", [1, 2])}, expected=seen)
    with pytest.raises(TenantPublishConflict, match="tenant a: another run published it"):
        store.publish("a", {"bookings": parquet(tmp_path, "z", [1, 2, 3])}, expected=seen)
    assert store.pointer("a").tables["bookings"]["rows"] == 2
    listed = store.objects.fs.find(store.objects.url("bookings"))
    assert len(listed) == 2  # the first two generations; the loser's upload was removed


def test_a_first_publish_loses_to_another_first_publish(store: TenantStore, tmp_path: Path) -> None:
    empty = store.pointer("a")
    store.publish("a", {"bookings": parquet(tmp_path, "x", [1])}, expected=empty)
    with pytest.raises(TenantPublishConflict):
        store.publish("a", {"bookings": parquet(tmp_path, "y", [2])}, expected=empty)


def test_files_two_generations_old_are_removed(store: TenantStore, tmp_path: Path) -> None:
    firsts = []
    for n in range(3):
        firsts.append(store.publish("a", {"bookings": parquet(tmp_path, "g", list(range(n + 1)))}))
    files = {
        f.split(store.objects.root + "/", 1)[-1]
        for f in store.objects.fs.find(store.objects.url("bookings"))
    }
    files = {f[f.index("bookings/") :] for f in files}
    assert files == set(firsts[1].files("bookings")) | set(firsts[2].files("bookings"))


def test_a_query_for_one_tenant_never_opens_another_tenants_files(
    store: TenantStore, tmp_path: Path
) -> None:
    store.publish("a", {"bookings": parquet(tmp_path, "a", [1, 2])})
    store.publish("b", {"bookings": parquet(tmp_path, "b", [5])})
    # Damage tenant b's file: a query that opened it (even only to bind a schema) would fail.
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    store.objects.put_file(garbage, store.pointer("b").files("bookings")[0])
    with store.connect(tenant="a") as con:
        assert con.sql("select sum(id) from bookings").fetchone() == (3,)
    with pytest.raises(Exception, match="(?i)magic bytes"):  # the consortium does open it
        store.connect().sql("select count(*) from bookings").fetchall()


def test_consortium_tables_sit_beside_tenants_and_are_not_a_tenant(
    store: TenantStore, tmp_path: Path
) -> None:
    store.publish("a", {"bookings": parquet(tmp_path, "a", [1])})
    store.publish(CONSORTIUM, {"consortium_totals": parquet(tmp_path, "c", [9])})
    assert store.tenants() == ["a"]
    assert (
        store.pointer(CONSORTIUM)
        .files("consortium_totals")[0]
        .startswith("consortium_totals/_consortium/")
    )
    with store.connect() as con:
        assert con.sql("select id from consortium_totals").fetchall() == [(9,)]
    with store.connect(tenant="a") as con:
        names = {
            r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()
        }
    assert names == {"bookings"}


def test_a_plain_url_scheme_other_than_s3_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a local path nor s3://bucket/prefix"):
        TenantStore("gs://bucket/x")


def test_calira_pipeline_connect_opens_one_tenant_or_the_consortium(tmp_path: Path) -> None:
    import calira_pipeline
    from calira_pipeline.storage import StorageError

    store = TenantStore(str(tmp_path / "data" / "shared"))  # the default CALIRA_STORE_ROOT
    store.publish("a", {"bookings": parquet(tmp_path, "a", [1, 2])})
    store.publish("b", {"bookings": parquet(tmp_path, "b", [3])})
    with calira_pipeline.connect(tmp_path / "data", tenant="b") as con:
        assert con.sql("select tenant, id from bookings").fetchall() == [("b", 3)]
    with calira_pipeline.connect(tmp_path / "data", consortium=True) as con:
        assert con.sql("select count(distinct tenant), count(*) from bookings").fetchone() == (2, 3)
    with pytest.raises(StorageError, match=r"no published tables for tenant 'c' .*published: a, b"):
        calira_pipeline.connect(tmp_path / "data", tenant="c")
