"""The scale-out deployment end to end, on loopback: Redis, a throwaway Postgres, moto's S3
server, three sandbox API processes as three tenants, `dagster-daemon` and two Celery workers.

One backfill runs one run per tenant through the CeleryRunLauncher; then the data, the rollups,
tenant isolation and the one-run-per-tenant limit are checked; then a worker is killed mid-run.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline.storage.tenant_store import TenantStore
from calira_pipeline_tests.scaleout.cluster import LOCATION, Cluster, running_cluster, wait_for
from calira_pipeline_tests.scaleout.rollups import counted_cost_per_tenant

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("scaleout")]

TENANTS = {"alpha": 31, "beta": 32, "gamma": 33}
# alpha authenticates with a rotating refresh token kept in the instance's Postgres; it runs
# twice, on whichever workers take the runs.
REFRESH_TENANTS = ("alpha",)
PARTITION = "dagster/partition"
# Longer than any healthy run here (kombu redelivers by age alone; runs take 20-35 s on a loaded
# two-core machine), short enough for the kill test to see the redelivery.
VISIBILITY_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(
        TENANTS,
        workers=2,
        latency_ms=100,
        visibility_timeout_s=VISIBILITY_TIMEOUT_S,
        refresh_tenants=REFRESH_TENANTS,
    ) as running:
        yield running


def runs(cluster: Cluster, job: str) -> list[Any]:
    import dagster as dg

    with cluster.instance() as instance:
        return list(instance.get_run_records(filters=dg.RunsFilter(job_name=job)))  # type: ignore[attr-defined]


def all_finished(cluster: Cluster, job: str, count: int) -> bool:
    found = runs(cluster, job)
    return len(found) >= count and all(r.dagster_run.is_finished for r in found)


def launch(cluster: Cluster, job: str, tenant: str | None = None) -> None:
    tags = ["--tags", json.dumps({PARTITION: tenant})] if tenant else []
    cluster.dagster("job", "launch", *LOCATION, "-j", job, *tags)


@functools.cache
def sandbox_dataset(tenant: str) -> Any:
    # The same data the tenant's sandbox process serves (deterministic per seed and scale).
    return Sandbox(SandboxConfig(seed=TENANTS[tenant], scale="tiny")).dataset


def diagnosis(cluster: Cluster) -> str:
    """Every run's state and the tail of every log, for a failure message."""
    lines = [
        f"{r.dagster_run.run_id[:8]} {r.dagster_run.status.value} "
        f"{ {k: v for k, v in r.dagster_run.tags.items() if k.startswith('dagster')} }"
        for r in runs(cluster, "tenant_refresh")
    ]
    for log in sorted((cluster.root / "logs").glob("*.log")):
        if log.stem.startswith(("w", "daemon")):
            lines.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(lines)


def expected_ids(tenant: str, collection: str) -> list[int]:
    dataset = sandbox_dataset(tenant)
    return sorted(int(record["id"]) for record in getattr(dataset, collection))


def ids(store: TenantStore, tenant: str, table: str) -> list[int]:
    with store.connect(tenant=tenant) as con:
        return [r[0] for r in con.sql(f"select id from {table} order by id").fetchall()]


@pytest.fixture(scope="module")
def backfilled(cluster: Cluster) -> list[Any]:
    # The backfill (one run per tenant) and a second alpha run are submitted together.
    backfill = cluster.dagster_async(
        "job", "backfill", *LOCATION, "-j", "tenant_refresh", "--all", "y", "--noprompt"
    )
    launch(cluster, "tenant_refresh", "alpha")
    output, _ = backfill.communicate(timeout=300)
    assert backfill.returncode == 0, output
    wait_for("four tenant runs", lambda: all_finished(cluster, "tenant_refresh", 4), 300)
    launch(cluster, "consortium_rollups")
    wait_for("the rollups", lambda: all_finished(cluster, "consortium_rollups", 1), 180)
    return runs(cluster, "tenant_refresh")


def test_backfill_runs_one_run_per_tenant_on_the_workers(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    statuses = sorted(
        (r.dagster_run.tags[PARTITION], r.dagster_run.status.value) for r in backfilled
    )
    assert statuses == [
        ("alpha", "SUCCESS"),
        ("alpha", "SUCCESS"),
        ("beta", "SUCCESS"),
        ("gamma", "SUCCESS"),
    ]
    assert all("dagster-celery/task_id" in r.dagster_run.tags for r in backfilled)
    # Shown with -s: how long a healthy run takes next to the visibility timeout.
    print({r.dagster_run.run_id[:8]: round(r.end_time - r.start_time, 1) for r in backfilled})
    rollups = runs(cluster, "consortium_rollups")
    assert [r.dagster_run.status.value for r in rollups] == ["SUCCESS"]


def test_per_tenant_rows_equal_each_sandboxs_records(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    store = cluster.store()
    assert store.tenants() == sorted(TENANTS)
    for tenant in TENANTS:
        assert ids(store, tenant, "bookings") == expected_ids(tenant, "bookings")
        assert ids(store, tenant, "equipment") == expected_ids(tenant, "equipment")
        assert ids(store, tenant, "accounts") == expected_ids(tenant, "accounts")


def test_consortium_rollups_equal_the_sum_of_the_tenants(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    store = cluster.store()
    per_tenant = counted_cost_per_tenant(store, TENANTS)
    bookings = 0
    for tenant in TENANTS:
        with store.connect(tenant=tenant) as con:
            row = con.sql("select sum(booking_count) from organisation_utilisation_monthly")
            bookings += int(row.fetchone()[0])  # type: ignore[index]
    with store.connect() as con:
        rollup = {
            (tenant, currency): cost
            for tenant, currency, cost in con.sql(
                "select tenant, currency, sum(counted_cost) "
                "from consortium_cost_by_tenant_currency group by all"
            ).fetchall()
        }
        total = con.sql("select sum(booking_count) from consortium_utilisation_by_organisation")
        assert int(total.fetchone()[0]) == bookings  # type: ignore[index]
    assert rollup == per_tenant
    assert {tenant for tenant, _ in rollup} == set(TENANTS)


def test_a_query_for_one_tenant_never_reads_another_tenants_files(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    import s3fs

    opened: list[str] = []

    class RecordingS3(s3fs.S3FileSystem):  # type: ignore[misc]
        def _open(self, path: str, *args: Any, **kwargs: Any) -> Any:
            opened.append(path)
            return super()._open(path, *args, **kwargs)

    fs = RecordingS3(
        key="testing",
        secret="testing",
        endpoint_url=cluster.s3_endpoint,
        client_kwargs={"region_name": "us-east-1"},
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    store = TenantStore(cluster.store_root, filesystem=fs)
    with store.connect(tenant="beta") as con:
        tables = [
            r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()
        ]
        for table in tables:
            con.sql(f'select count(*) from "{table}"').fetchall()
    data_files = [p for p in opened if p.endswith(".parquet")]
    assert len(tables) > 10 and data_files
    assert all("/tenant=beta/" in path for path in data_files), data_files
    opened.clear()
    with store.connect() as con:
        con.sql("select count(*) from bookings").fetchall()
    assert {p.split("/tenant=")[1].split("/")[0] for p in opened if "/tenant=" in p} == set(TENANTS)


def test_a_second_run_for_a_tenant_waits_while_another_tenant_runs(
    backfilled: list[Any],
) -> None:
    intervals = {
        r.dagster_run.run_id: (
            r.dagster_run.tags[PARTITION],
            r.create_timestamp.timestamp(),
            r.start_time,
            r.end_time,
        )
        for r in backfilled
    }
    for run_id, (tenant, _, start, end) in intervals.items():
        for other_id, (other_tenant, _, other_start, other_end) in intervals.items():
            if other_id != run_id and other_tenant == tenant:
                assert end <= other_start or other_end <= start, "one tenant ran twice at once"
    alpha = sorted((v for v in intervals.values() if v[0] == "alpha"), key=lambda v: v[2])
    first, second = alpha
    assert second[2] >= first[3]  # it started only after the first alpha run had ended
    waited = (second[1], second[2])  # created .. started: queued behind the first alpha run
    assert any(
        tenant != "alpha" and start < waited[1] and end > waited[0]
        for tenant, _, start, end in intervals.values()
    ), "no other tenant ran while the second alpha run waited"


def test_the_refresh_token_tenant_rotated_once_in_the_instance_postgres(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    import psycopg2

    con = psycopg2.connect(cluster.postgres_dsn)
    try:
        with con.cursor() as cursor:
            cursor.execute("select tenant, refresh_token, version from calira_refresh_tokens")
            rows = cursor.fetchall()
    finally:
        con.close()
    # Both alpha runs succeeded with one rotation: the first seeded the row from the variable
    # and rotated, the second (whatever worker took it) used the tokens the first stored.
    assert [(tenant, version) for tenant, _, version in rows] == [("alpha", 1)]
    assert rows[0][1] != cluster.refresh_seeds["alpha"]
    assert not list(cluster.root.glob("*-data/**/.calira-token.json"))  # no worker's own file


def test_a_worker_killed_mid_run_leaves_the_tenants_tables_and_a_rerun_completes(
    cluster: Cluster, backfilled: list[Any]
) -> None:
    import dagster as dg

    store = cluster.store()
    before = store.pointer("gamma")
    rows_before = {t: before.tables[t]["rows"] for t in before.tables}
    known = {r.dagster_run.run_id for r in runs(cluster, "tenant_refresh")}
    launch(cluster, "tenant_refresh", "gamma")
    run = next(
        r.dagster_run for r in runs(cluster, "tenant_refresh") if r.dagster_run.run_id not in known
    )

    started: list[Any] = []

    def fetching() -> bool:
        with cluster.instance() as instance:
            started[:] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)  # type: ignore[attr-defined]
        return bool(started)

    wait_for("the gamma run's first step", fetching, 180)
    # Each worker leads its own process group (the harness starts it in a new session) and is
    # killed as a group, so the worker to kill is the one whose group holds the step's process.
    group = os.getpgid(started[0].dagster_event.pid)
    holder = next((name for name, w in cluster.workers.items() if w.process.pid == group), None)
    assert holder is not None, f"no worker's process group ({group}) holds the step"
    cluster.group.kill(cluster.workers.pop(holder))
    cluster.start_worker("w3")

    with cluster.instance() as instance:
        assert not instance.get_run_by_id(run.run_id).is_finished  # type: ignore[attr-defined]
    # Intact: the pointer names a whole generation (the one before, or one the killed run
    # published before it died), every table of it opens with exactly its recorded rows.
    after_kill = store.pointer("gamma")
    assert after_kill.sequence >= before.sequence
    assert set(after_kill.tables) == set(before.tables)
    with store.connect(tenant="gamma") as con:
        for table, entry in after_kill.tables.items():
            assert con.sql(f'select count(*) from "{table}"').fetchone() == (entry["rows"],)
    assert after_kill.tables["bookings"]["rows"] == rows_before["bookings"]

    def retried() -> bool:
        children = [
            r
            for r in runs(cluster, "tenant_refresh")
            if r.dagster_run.tags.get("dagster/parent_run_id") == run.run_id
        ]
        return any(r.dagster_run.status.value == "SUCCESS" for r in children)

    try:
        wait_for("the retry of the killed run", retried, VISIBILITY_TIMEOUT_S + 240)
    except TimeoutError as exc:
        raise AssertionError(diagnosis(cluster)) from exc
    with cluster.instance() as instance:
        assert instance.get_run_by_id(run.run_id).status.value == "FAILURE"  # type: ignore[attr-defined]
    assert store.pointer("gamma").sequence > before.sequence
    assert ids(store, "gamma", "bookings") == expected_ids("gamma", "bookings")
