"""The sandbox over real HTTP on loopback, and its command line."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import httpx
import pytest

from calira_pipeline.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    Sandbox,
    SandboxConfig,
)
from calira_pipeline.sandbox.server import add_arguments, config_from_args

pytestmark = pytest.mark.integration


def test_serve_in_thread_pages_over_real_http() -> None:
    sb = Sandbox(SandboxConfig(scale="tiny", faults=FaultConfig(head_inserts_per_page=0)))
    with sb.serve_in_thread() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, timeout=5) as client:
            token = client.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            ids: list[int] = []
            page = 1
            while True:
                r = client.get("/v1/bookings", params={"page": page, "per_page": 60},
                               headers=headers)
                assert r.status_code == 200
                ids += [b["id"] for b in r.json()]
                if page * int(r.headers["X-Per-Page"]) >= int(r.headers["X-Total-Records"]):
                    break
                page += 1
    assert ids == sorted((b["id"] for b in sb.dataset.bookings), reverse=True)
    assert sb.stats.count(route="/v1/bookings", status=200) == page
    assert sb.stats.count(route="/oauth/token") == 1
    with pytest.raises(httpx.ConnectError):  # stopped cleanly on exit
        httpx.get(f"{base_url}/v1/accounts", timeout=2)


def test_cli_arguments_build_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--scale", "tiny", "--seed", "4", "--list-shape",
                              "slim", "--live-aliases", "--latency-ms", "5", "--rate-limit", "3",
                              "--error-rate", "0.1", "--token-lifetime", "60",
                              "--head-inserts", "2"])
    config = config_from_args(args)
    assert (config.seed, config.scale, config.list_shape, config.live_aliases) == (
        4, "tiny", "slim", True)
    assert config.token_lifetime_s == 60
    assert config.faults == FaultConfig(latency_ms=5, rate_limit_rps=3, error_rate=0.1,
                                        head_inserts_per_page=2, seed=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_python_dash_m_serves_http() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "calira_pipeline.sandbox", "--port",
                             str(port), "--scale", "tiny"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline() + proc.stdout.readline() + proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in banner and SANDBOX_CLIENT_SECRET in banner
        # The banner is printed just before uvicorn binds; poll until it accepts.
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/accounts", timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "server never came up"
                with pytest.raises(subprocess.TimeoutExpired):  # and it has not died
                    proc.wait(timeout=0.05)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
