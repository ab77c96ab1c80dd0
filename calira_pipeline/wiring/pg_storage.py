"""Dagster's Postgres storage with pooled connections, for the scale-out instance.

`dagster-postgres` opens a new connection for every query (SQLAlchemy's `NullPool`), so each
event a run writes costs a Postgres server process started and torn down: measured on the local
cluster, one `small` tenant run opened about a thousand connections, and Postgres spent two
thirds as much CPU on them as the run used itself (benchmarks/RESULTS.md, "Tenants on Celery
workers"). Only `dagster-webserver` holds connections open, through the storages' own
`optimize_for_webserver`; this class applies that same setting in every process that loads the
instance from `dagster.yaml` (daemon, Celery workers, runs, CLI), named there as

    storage:
      custom:
        module: calira_pipeline.wiring.pg_storage
        class: PooledPostgresStorage
        config: {postgres_db: {...}}        # exactly the `postgres:` block's fields

A Celery run opens its instance per run, so its pool lives as long as that instance (until Python
collects it: `DagsterInstance.dispose` does not dispose storages' engines); a process holds
at most `1 + MAX_OVERFLOW` connections per storage (run, event log, schedules) at once.

Kept connections are checked before each use (`_guard_connections`): dagster-postgres retries only
*opening* a connection, so without the check a connection Postgres dropped (a restart, a
failover, a proxy's idle cut) fails the next query, and with it the run writing an event; and a
connection inherited through `fork` (a Celery prefork child, a forked step) is never used by the
child, whose queries would interleave on the parent's socket.
"""

from __future__ import annotations

import os
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

# Connections a process may open beyond the one kept: the daemon's threads and a run's
# concurrent fetch each write events at once; more wait (SQLAlchemy's 30 s pool timeout).
MAX_OVERFLOW = 10
# A kept connection is replaced after this long (long-lived processes: daemon, webserver); one
# the server dropped sooner is caught by the check before each use (`_check_before_use`).
POOL_RECYCLE_S = 600
# What `SET statement_timeout` the pool applies: 0, no limit (runs' event writes and the
# daemon's queries are never cut short; the webserver sets its own when it starts).
STATEMENT_TIMEOUT_MS = 0


class PooledPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` whose run, event-log and schedule storages keep connections."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any | None = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(
                statement_timeout=STATEMENT_TIMEOUT_MS,
                pool_recycle=POOL_RECYCLE_S,
                max_overflow=MAX_OVERFLOW,
            )
            # The pooled engine optimize_for_webserver just made (dagster-postgres exposes no
            # other handle on it); it has opened no connection yet.
            _guard_connections(storage._engine)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


def _guard_connections(engine: Engine) -> None:
    """SQLAlchemy's recipes for pessimistic disconnect handling and for pools across `fork`."""
    event.listen(engine, "connect", _remember_process)
    event.listen(engine, "checkout", _check_before_use)


def _remember_process(dbapi_connection: Any, record: Any) -> None:
    record.info["pid"] = os.getpid()


def _check_before_use(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # A DisconnectionError here makes the pool discard this connection and open a new one.
    if record.info.get("pid") != os.getpid():
        # Inherited through fork: the parent still owns the socket, so it is dropped from this
        # process's pool without being closed (closing it would end the parent's session).
        record.dbapi_connection = proxy.dbapi_connection = None
        raise exc.DisconnectionError("connection opened by another process")
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # psycopg2's OperationalError / InterfaceError on a dead socket
        raise exc.DisconnectionError("kept connection was closed by the server") from error
