"""The scale-out instance keeps its Postgres connections (`wiring/pg_storage.py`), checked on a
real throwaway Postgres: one run's events go through a handful of connections, where
dagster-postgres's own storage opens one per query; and a Celery worker, which rebuilds the
instance from the launcher's reference, gets the pooled storage too."""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation.

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from calira_pipeline.wiring.pg_storage import PooledPostgresStorage
from calira_pipeline.wiring.scaleout import ClusterConfig
from calira_pipeline_tests.scaleout.processes import ProcessGroup
from calira_pipeline_tests.scaleout.servers import start_postgres

pytestmark = [pytest.mark.integration]

LOGGED_LINES = 40  # each one an event the run writes to Postgres


@pytest.fixture(scope="module")
def postgres_port() -> Iterator[int]:
    # Under /tmp: Postgres runs as `nobody` under root and must traverse every parent folder.
    root = Path(tempfile.mkdtemp(prefix="calira-pg-", dir="/tmp"))
    root.chmod(0o711)
    (root / "logs").mkdir()
    group = ProcessGroup(root / "logs")
    try:
        yield start_postgres(group, root, database="dagster")
    finally:
        group.stop_all()


def sessions(port: int) -> int:
    """Connections Postgres has accepted so far (PostgreSQL 14+ counts them)."""
    import psycopg2

    with (
        contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        ) as con,
        con.cursor() as cursor,
    ):
        cursor.execute("select sum(sessions) from pg_stat_database")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@dg.asset
def chatty(context: dg.AssetExecutionContext) -> int:
    for line in range(LOGGED_LINES):
        context.log.info(f"line {line}")
    return LOGGED_LINES


def instance_config(port: int, pooled: bool, folder: Path) -> Path:
    # A schema per configuration would need two databases; both share one, migrated once.
    home = folder / ("pooled" if pooled else "plain")
    ClusterConfig("127.0.0.1", port, "redis://127.0.0.1:1", pooled_connections=pooled).write(
        home, folder / "celery"
    )
    return home


def connections_for_one_run(port: int, home: Path) -> tuple[int, Any]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        before = sessions(port)
        result = dg.materialize([chatty], instance=instance)
        opened = sessions(port) - before - 1  # the count's own connection
        storage = instance.get_ref().storage
    assert result.success
    return opened, storage


def test_a_run_writes_its_events_through_a_few_kept_connections(
    postgres_port: int, tmp_path: Path
) -> None:
    plain, _ = connections_for_one_run(
        postgres_port, instance_config(postgres_port, False, tmp_path)
    )
    pooled, _ = connections_for_one_run(
        postgres_port, instance_config(postgres_port, True, tmp_path)
    )
    # dagster-postgres alone: at least one connection per logged line.
    assert plain > LOGGED_LINES
    # Pooled: the three storages' kept connections, plus a few opened while loading.
    assert pooled <= 10, pooled
    assert pooled * 5 < plain


def test_a_worker_rebuilding_the_instance_from_its_reference_gets_the_pooled_storage(
    postgres_port: int, tmp_path: Path
) -> None:
    home = instance_config(postgres_port, True, tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ref = instance.get_ref()  # what CeleryRunLauncher sends with each run
    assert isinstance(ref.storage, PooledPostgresStorage)
    with dg.DagsterInstance.from_ref(ref) as rebuilt:
        assert rebuilt.get_runs_count() >= 0
