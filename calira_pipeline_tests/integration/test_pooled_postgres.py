"""The scale-out instance keeps its Postgres connections (`wiring/pg_storage.py`), checked on a
real throwaway Postgres: one run's events go through a handful of connections, where
dagster-postgres's own storage opens one per query; and a Celery worker, which rebuilds the
instance from the launcher's reference, gets the pooled storage too."""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation.

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from calira_pipeline.wiring.pg_storage import PooledPostgresStorage
from calira_pipeline.wiring.scaleout import ClusterConfig
from calira_pipeline_tests.integration.token_support import sql
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


def admin_dsn(port: int) -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname=postgres"


def sessions(port: int) -> int:
    """Connections Postgres has accepted so far (PostgreSQL 14+ counts them)."""
    [(count,)] = sql(admin_dsn(port), "select sum(sessions) from pg_stat_database")
    return int(count)


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


def drop_every_other_session(port: int) -> int:
    """What a Postgres restart, a failover or a proxy's idle cut does to kept connections."""
    [(ended,)] = sql(
        admin_dsn(port),
        "select count(pg_terminate_backend(pid)) from pg_stat_activity "
        "where backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    return int(ended)


def test_kept_connections_the_server_dropped_are_replaced_not_failed(
    postgres_port: int, tmp_path: Path
) -> None:
    home = instance_config(postgres_port, True, tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs_count()  # the module's database holds other tests' runs
        assert dg.materialize([chatty], instance=instance).success  # every storage keeps one
        assert drop_every_other_session(postgres_port) >= 1
        # dagster-postgres retries only connecting, so a dead kept connection must be noticed
        # before a query: otherwise a run's next event write fails the run.
        assert dg.materialize([chatty], instance=instance).success
        assert instance.get_runs_count() == runs + 2


def test_a_forked_child_opens_its_own_connections(postgres_port: int, tmp_path: Path) -> None:
    import os

    home = instance_config(postgres_port, True, tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs_count()  # the run storage now keeps a connection in its pool
        before = sessions(postgres_port)
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports by its exit status
            code = 1
            try:
                instance.get_runs_count()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # A socket shared across processes interleaves their queries' bytes: the child must
        # leave the parent's connection alone and open its own.
        assert sessions(postgres_port) - before - 1 >= 1
        assert instance.get_runs_count() >= 0
