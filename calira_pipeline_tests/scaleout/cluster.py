"""A whole scale-out cluster on loopback: Redis, Postgres, an S3 server, one sandbox API per
tenant, `dagster-daemon` and Celery workers, all sharing one Dagster instance and one store.

`running_cluster()` stops every process it started, whatever happens, and then checks that no
process of the cluster is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from calira_pipeline.storage.tenant_store import TenantStore
from calira_pipeline.wiring.scaleout import ClusterConfig
from calira_pipeline_tests.scaleout.processes import ProcessGroup, Started, wait_until
from calira_pipeline_tests.scaleout.servers import (
    BIN,
    S3_KEY,
    sandbox_refresh_token,
    start_moto,
    start_postgres,
    start_redis,
    start_sandbox,
)

REPO = Path(__file__).resolve().parents[2]
BUCKET = "calira-shared"
LOCATION = ["-m", "calira_pipeline.definitions"]


@dataclass
class Cluster:
    root: Path
    group: ProcessGroup
    env: dict[str, str]
    s3_endpoint: str
    tenant_urls: dict[str, str]
    worker_slots: int = 1
    workers: dict[str, Started] = field(default_factory=dict)
    postgres_port: int = 0
    refresh_seeds: dict[str, str] = field(default_factory=dict)  # tenant -> its first token

    @property
    def postgres_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.postgres_port} user=postgres dbname=dagster"

    @property
    def store_root(self) -> str:
        return self.env["CALIRA_STORE_ROOT"]

    def store(self) -> TenantStore:
        import s3fs

        fs = s3fs.S3FileSystem(
            key=S3_KEY,
            secret=S3_KEY,
            endpoint_url=self.s3_endpoint,
            client_kwargs={"region_name": "us-east-1"},
            use_listings_cache=False,
        )
        return TenantStore(self.store_root, filesystem=fs)

    def start_worker(self, name: str, wait: bool = True) -> Started:
        """A Celery worker with its own local data directory (as on its own machine)."""
        running = self.workers.get(name)
        if running is not None and running.process.poll() is None:
            # A second worker under one name would take runs the tests cannot attribute.
            raise RuntimeError(f"worker {name} is already running (pid {running.process.pid})")
        env = dict(self.env, CALIRA_DATA_DIR=str(self.root / f"{name}-data"))
        entry = self.group.start(
            name,
            [
                BIN / "celery",
                "-A",
                "dagster_celery.app",
                "worker",
                "-Q",
                "dagster",
                *self._pool(),
                "--prefetch-multiplier=1",
                "-n",
                f"{name}@%h",
                "-l",
                "INFO",
            ],
            env=env,
        )
        self.workers[name] = entry
        if wait:
            self.wait_for_worker(name)
        return entry

    def _pool(self) -> list[str]:
        # solo: one run at a time, executed in the worker process itself. prefork: N runs at
        # once, one per child process (fine with the in-process executor; a multiprocess
        # executor would fail: daemonic processes may not have children).
        if self.worker_slots == 1:
            return ["--pool=solo"]
        return ["--pool=prefork", f"--concurrency={self.worker_slots}"]

    def wait_for_worker(self, name: str) -> None:
        entry = self.workers[name]
        wait_until(
            f"worker {name}",
            lambda: "ready." in entry.log.read_text(errors="replace"),
            entry.process,
            entry.log,
        )

    def dagster(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A `dagster` CLI command against the cluster's instance and code location."""
        done = subprocess.run(
            [str(BIN / "dagster"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"dagster {' '.join(args)} failed: {done.stderr[-3000:]}")
        return done

    def dagster_async(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(BIN / "dagster"), *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @contextlib.contextmanager
    def instance(self) -> Iterator[object]:
        import dagster as dg

        with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
            yield instance


def _registry(urls: dict[str, str], refresh_tenants: Collection[str] = ()) -> str:
    # Refresh-token tenants keep their rotating token in the instance's Postgres.
    lines = ["token_store: dagster_instance"] if refresh_tenants else []
    lines += ["tenants:"]
    for key, url in urls.items():
        prefix = f"CALIRA_TENANT_{key.upper().replace('-', '_')}"
        secrets = f"client_id: {prefix}_ID, client_secret: {prefix}_SECRET"
        auth = "refresh_token" if key in refresh_tenants else "client_credentials"
        if key in refresh_tenants:
            secrets += f", refresh_token: {prefix}_REFRESH"
        lines += [
            f"  - key: {key}",
            f"    base_url: {url}",
            f"    auth: {auth}",
            f"    secrets: {{{secrets}}}",
        ]
    return "\n".join(lines) + "\n"


def _environment(root: Path, config_dir: Path, endpoint: str, keys: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIRA_", "DAGSTER_"))}
    path = os.pathsep.join(p for p in (str(config_dir), str(REPO), env.get("PYTHONPATH")) if p)
    env.update(
        DAGSTER_HOME=str(root / "dagster_home"),
        PYTHONPATH=path,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        CALIRA_TENANTS_FILE=str(root / "tenants.yaml"),
        CALIRA_STORE_ROOT=f"s3://{BUCKET}/calira",
        CALIRA_DATA_DIR=str(root / "cli-data"),
        CALIRA_INGEST_RETRIES="0",
        AWS_ACCESS_KEY_ID=S3_KEY,
        AWS_SECRET_ACCESS_KEY=S3_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=endpoint,
    )
    for key in keys:
        prefix = f"CALIRA_TENANT_{key.upper().replace('-', '_')}"
        env[f"{prefix}_ID"] = SANDBOX_CLIENT_ID
        env[f"{prefix}_SECRET"] = SANDBOX_CLIENT_SECRET
    return env


@contextlib.contextmanager
def running_cluster(
    tenants: dict[str, int],
    workers: int = 2,
    scale: str = "tiny",
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
    visibility_timeout_s: int = 3600,
    worker_slots: int = 1,
    refresh_tenants: Collection[str] = (),
    pooled_connections: bool = True,
) -> Iterator[Cluster]:
    """Start everything (tenants: key -> sandbox seed); stop everything on exit.

    `refresh_tenants` authenticate with a rotating refresh token (seeded from a consent on
    their sandbox) kept in the instance's Postgres; the others with client credentials."""
    # Postgres runs as `nobody` when we are root, so every folder above its data must be
    # traversable: pytest's tmp_path (mode 700) is not.
    root = Path(tempfile.mkdtemp(prefix="calira-scaleout-", dir="/tmp"))
    root.chmod(0o711)
    (root / "logs").mkdir()
    group = ProcessGroup(root / "logs")
    try:
        redis_url = start_redis(group, root)
        pg_port = start_postgres(group, root)
        endpoint = start_moto(group, BUCKET)
        urls = {
            key: start_sandbox(group, f"sandbox-{key}", seed, scale, latency_ms, rate_limit)
            for key, seed in tenants.items()
        }
        config_dir = root / "celery_config"
        env = _environment(root, config_dir, endpoint, list(tenants))
        seeds = {key: sandbox_refresh_token(urls[key]) for key in refresh_tenants}
        for key, token in seeds.items():
            env[f"CALIRA_TENANT_{key.upper().replace('-', '_')}_REFRESH"] = token
        (root / "tenants.yaml").write_text(_registry(urls, refresh_tenants))
        ClusterConfig(
            postgres_host="127.0.0.1",
            postgres_port=pg_port,
            redis_url=redis_url,
            visibility_timeout_s=visibility_timeout_s,
            pooled_connections=pooled_connections,
        ).write(Path(env["DAGSTER_HOME"]), config_dir)
        cluster = Cluster(root, group, env, endpoint, urls, worker_slots, {}, pg_port, seeds)
        # Workers import for a while before they are ready; they open the instance per run.
        for number in range(1, workers + 1):
            cluster.start_worker(f"w{number}", wait=False)
        # Create the schema once, before several processes would race to create it.
        cluster.dagster("instance", "migrate")
        # The automation sensor would add runs of its own; the tests launch what they check.
        cluster.dagster("sensor", "stop", *LOCATION, "default_automation_condition_sensor")
        daemon = group.start("daemon", [BIN / "dagster-daemon", "run", *LOCATION], env=env)
        for number in range(1, workers + 1):
            cluster.wait_for_worker(f"w{number}")
        wait_until(
            "daemon",
            lambda: (
                "daemon" in daemon.log.read_text(errors="replace").lower()
                and daemon.process.poll() is None
            ),
            daemon.process,
            daemon.log,
        )
        yield cluster
    finally:
        try:
            group.stop_all()
        finally:
            leftovers = _processes_under(root)
            shutil.rmtree(root, ignore_errors=True)
        if leftovers:
            raise RuntimeError(f"processes left running after the cluster stopped: {leftovers}")


def _processes_under(root: Path) -> list[str]:
    """Processes whose command line mentions the cluster's folder (none should remain)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
            if str(root) in command or str(root).encode() in environ:
                found.append(f"{entry.name}: {command[:120]}")
    return found


def wait_for(what: str, condition: object, timeout: float) -> None:
    """Poll `condition()` every 0.5 s until true (the runs are in other processes)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(0.5)


__all__ = ["Cluster", "running_cluster", "wait_for", "sys"]
