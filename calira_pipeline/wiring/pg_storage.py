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

A Celery run opens its instance per run, so its pool lives as long as the run; a process holds
at most `1 + MAX_OVERFLOW` connections per storage (run, event log, schedules) at once.
"""

from __future__ import annotations

from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# Connections a process may open beyond the one kept: the daemon's threads and a run's
# concurrent fetch each write events at once; more wait (SQLAlchemy's 30 s pool timeout).
MAX_OVERFLOW = 10
# A kept connection is replaced after this long, so a Postgres restart or a proxy's idle cut
# costs at most one failed query per storage in long-lived processes (daemon, webserver).
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
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            storage.optimize_for_webserver(
                statement_timeout=STATEMENT_TIMEOUT_MS,
                pool_recycle=POOL_RECYCLE_S,
                max_overflow=MAX_OVERFLOW,
            )

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
