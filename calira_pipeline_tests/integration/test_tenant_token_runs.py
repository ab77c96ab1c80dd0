"""A refresh-token tenant whose runs land on two workers, tokens in the Dagster instance's
Postgres (`token_store: dagster_instance`), plus `auth seed` / `auth login --tenant`.

Each "worker" is its own data directory (no shared token file); the Dagster instance is on a
real Postgres (dagster-postgres), as in the cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from calira_pipeline.api.tenants import TenantRegistryError, load_registry
from calira_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.tenant_defs import tenant_definitions
from calira_pipeline.wiring.tenant_resources import TenantApiResource, TenantWarehouseResource
from calira_pipeline.wiring.token_stores import instance_postgres_dsn, tenant_token_store
from calira_pipeline_tests.integration.conftest import BIN, ROOT
from calira_pipeline_tests.integration.token_support import Served, serve_tapped, sql, stored

pytestmark = [pytest.mark.integration]

TENANT = "uni-a"
SECRETS = {
    "CALIRA_T_UNI_A_ID": SANDBOX_CLIENT_ID,
    "CALIRA_T_UNI_A_SECRET": SANDBOX_CLIENT_SECRET,
}


def registry(folder: Path, served: Served, token_store: str) -> Path:
    path = folder / "tenants.yaml"
    path.write_text(
        f"token_store: {token_store}\n"
        "tenants:\n"
        f"  - key: {TENANT}\n"
        f"    base_url: {served.base_url}/v1\n"
        "    auth: refresh_token\n"
        "    secrets: {client_id: CALIRA_T_UNI_A_ID, client_secret: CALIRA_T_UNI_A_SECRET,\n"
        "              refresh_token: CALIRA_T_UNI_A_REFRESH}\n"
    )
    return path


@pytest.fixture
def served(pg_dsn: str) -> Iterator[Served]:
    with serve_tapped(pg_dsn) as served:
        yield served


@pytest.fixture
def pg_instance(pg_dsn: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose storage is the test Postgres, as the cluster's is."""
    parts = dict(item.split("=", 1) for item in pg_dsn.split())
    database = {"username": parts["user"], "hostname": parts["host"], "port": int(parts["port"]),
                "db_name": parts["dbname"], "scheme": "postgresql+psycopg2"}  # fmt: skip
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = {"storage": {"postgres": {"postgres_db": database}}}
    (home / "dagster.yaml").write_text(json.dumps(storage))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def incremental_job(tenants_file: Path, work: Path, shared: Path) -> dg.JobDefinition:
    defs = tenant_definitions(
        load_registry(tenants_file),
        ALL_ASSETS,
        ALL_CHECKS,
        resources={
            "calira": TenantApiResource(tenants_file=str(tenants_file), data_dir=str(work)),
            "warehouse": TenantWarehouseResource(store_root=str(shared), data_dir=str(work)),
            "mart_config": MartConfigResource(),
        },
        sensors=[],
    )
    return defs.resolve_job_def("tenant_incremental_bookings")


def test_runs_on_two_workers_share_the_rotating_token_through_the_instance_postgres(
    served: Served, pg_dsn: str, pg_instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seed = served.sandbox.issue_refresh_token()
    for name, value in {**SECRETS, "CALIRA_T_UNI_A_REFRESH": seed}.items():
        monkeypatch.setenv(name, value)
    tenants_file = registry(tmp_path, served, "dagster_instance")
    workers = {name: tmp_path / name for name in ("w1", "w2")}
    first = incremental_job(tenants_file, workers["w1"], tmp_path / "shared")
    assert first.execute_in_process(partition_key=TENANT, instance=pg_instance).success
    # The empty table was seeded from the tenant's variable at the first refresh.
    rotated, version = stored(pg_dsn, TENANT)
    assert served.tap.refreshes == [(seed, 200)] and version == 1 and rotated != seed

    # Hours later, on the other worker: its access token is expired, the seed is spent (and
    # not even set there), it has no token file; it refreshes with the stored rotation.
    served.now[0] += 8000
    monkeypatch.delenv("CALIRA_T_UNI_A_REFRESH")
    second = incremental_job(tenants_file, workers["w2"], tmp_path / "shared")
    assert second.execute_in_process(partition_key=TENANT, instance=pg_instance).success
    newest, version = stored(pg_dsn, TENANT)
    assert served.tap.refreshes == [(seed, 200), (rotated, 200)] and version == 2
    assert newest in served.sandbox.authority.live_refresh_tokens()
    assert not list(tmp_path.rglob(".calira-token.json"))  # no worker kept a token file


def test_dagster_instance_store_needs_an_instance_on_postgres(
    served: Served, tmp_path: Path
) -> None:
    reg = load_registry(registry(tmp_path, served, "dagster_instance"))
    needs = "needs the Dagster instance on Postgres"
    fails = pytest.raises(TenantRegistryError, match=needs)
    with dg.DagsterInstance.ephemeral() as instance, fails:
        tenant_token_store(reg, TENANT, instance)


def test_the_instance_dsn_reaches_the_same_database(
    pg_dsn: str, pg_instance: dg.DagsterInstance
) -> None:
    dsn = instance_postgres_dsn(pg_instance)
    assert dsn.startswith("postgresql://") and dsn.endswith("/tokens")
    assert sql(dsn, "select current_database()") == [("tokens",)]  # libpq takes it as is


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "calira-pipeline"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_auth_seed_and_login_for_a_tenant_write_its_postgres_store(
    served: Served, pg_dsn: str, tmp_path: Path
) -> None:
    import os
    import socket

    parts = dict(item.split("=", 1) for item in pg_dsn.split())
    url = f"postgresql://postgres@127.0.0.1:{parts['port']}/{parts['dbname']}"
    fresh = served.sandbox.issue_refresh_token()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}
    env.update(SECRETS, CALIRA_T_UNI_A_REFRESH=fresh, PYTHONPATH=str(ROOT),
               CALIRA_TENANTS_FILE=str(registry(tmp_path, served, url)),
               CALIRA_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    seeded = cli(env, "auth", "seed", "--tenant", TENANT)
    assert seeded.returncode == 0, seeded.stderr
    assert "version 1" in seeded.stdout and fresh not in seeded.stdout + seeded.stderr
    assert stored(pg_dsn, TENANT) == (fresh, 1)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    login = subprocess.Popen(
        [str(BIN / "calira-pipeline"), "auth", "login", "--tenant", TENANT, "--no-browser",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert login.stdout is not None
    link = next(line.strip() for line in login.stdout if "/oauth/authorize?" in line)
    httpx.get(link, follow_redirects=True, timeout=30)  # the browser; the sandbox approves
    assert login.wait(timeout=60) == 0, login.stdout.read()
    logged_in, version = stored(pg_dsn, TENANT)
    assert version == 2 and logged_in in served.sandbox.authority.live_refresh_tokens()

    env["CALIRA_TENANTS_FILE"] = str(registry(tmp_path, served, "file"))
    again = cli(env, "auth", "seed", "--tenant", TENANT)
    assert again.returncode == 0, again.stderr
    token_file = tmp_path / "data" / "tenants" / TENANT / ".calira-token.json"
    assert json.loads(token_file.read_text())["refresh_token"] == fresh
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
