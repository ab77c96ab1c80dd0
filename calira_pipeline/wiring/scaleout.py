"""The Dagster instance of a scale-out deployment: Postgres storage, Celery run launcher on a
Redis broker, one run per tenant. Written as files every process (webserver, daemon, workers)
reads: `$DAGSTER_HOME/dagster.yaml` and the `dagster_celery_config` module the workers import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CELERY_CONFIG_MODULE = "dagster_celery_config"
POOLED_STORAGE = ("calira_pipeline.wiring.pg_storage", "PooledPostgresStorage")


@dataclass(frozen=True)
class ClusterConfig:
    postgres_host: str
    postgres_port: int
    redis_url: str  # redis://host:port (databases 0 and 1 are used)
    postgres_user: str = "postgres"
    postgres_db: str = "dagster"
    # The password is never written here: dagster.yaml names the variable that holds it.
    postgres_password_variable: str | None = None
    max_concurrent_runs: int = 8
    # Kombu redelivers a message nobody acknowledged after this long, whatever the reason: it
    # must exceed the longest run, or a healthy run gets a duplicate (README "Scale-out").
    visibility_timeout_s: int = 6 * 3600
    # Keep Postgres connections open in every process (`pg_storage.PooledPostgresStorage`)
    # instead of one per query; False writes dagster-postgres's own `postgres:` block.
    pooled_connections: bool = True

    @property
    def broker(self) -> str:
        return f"{self.redis_url.rstrip('/')}/0"

    @property
    def backend(self) -> str:
        return f"{self.redis_url.rstrip('/')}/1"

    def celery_settings(self) -> dict[str, object]:
        return {
            # A worker that dies mid-run leaves its message unacknowledged, so it is redelivered
            # and the run's retry starts on another worker (README "what breaks").
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "broker_transport_options": {
                "visibility_timeout": self.visibility_timeout_s,
                "unacked_restore_interval": 2,
                "unacked_restore_throttle": 1,
            },
        }

    def instance(self) -> dict[str, object]:
        database: dict[str, object] = {
            "username": self.postgres_user,
            "hostname": self.postgres_host,
            "port": self.postgres_port,
            "db_name": self.postgres_db,
            # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
            "scheme": "postgresql+psycopg2",
        }
        if self.postgres_password_variable:
            database["password"] = {"env": self.postgres_password_variable}
        storage: dict[str, object] = {"postgres": {"postgres_db": database}}
        if self.pooled_connections:
            storage = {
                "custom": {
                    "module": POOLED_STORAGE[0],
                    "class": POOLED_STORAGE[1],
                    "config": {"postgres_db": database},
                }
            }
        return {
            "storage": storage,
            "run_launcher": {
                "module": "dagster_celery.launcher",
                "class": "CeleryRunLauncher",
                "config": {
                    "broker": self.broker,
                    # The default rpc:// backend cannot be polled by the daemon's health check.
                    "backend": self.backend,
                    "config_source": self.celery_settings(),
                },
            },
            "concurrency": {
                "runs": {
                    "max_concurrent_runs": self.max_concurrent_runs,
                    # One run per tenant at a time; different tenants side by side.
                    "tag_concurrency_limits": [
                        {
                            "key": "dagster/partition",
                            "value": {"applyLimitPerUniqueValue": True},
                            "limit": 1,
                        }
                    ],
                },
            },
            # Off: with it on, a run whose worker died stays "started" forever (the redelivered
            # task is ignored); off, the redelivery fails the run and run_retries resumes it.
            "run_monitoring": {"enabled": False},
            "run_retries": {"enabled": True, "max_retries": 1},
            "telemetry": {"enabled": False},
        }

    def write(self, dagster_home: Path, celery_config_dir: Path) -> None:
        """Write dagster.yaml and the workers' Celery config module (JSON is valid YAML)."""
        dagster_home.mkdir(parents=True, exist_ok=True)
        celery_config_dir.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(json.dumps(self.instance(), indent=2) + "\n")
        lines = [
            f"broker_url = {self.broker!r}",
            f"result_backend = {self.backend!r}",
            "worker_prefetch_multiplier = 1",
            *(f"{key} = {value!r}" for key, value in self.celery_settings().items()),
        ]
        (celery_config_dir / f"{CELERY_CONFIG_MODULE}.py").write_text("\n".join(lines) + "\n")
