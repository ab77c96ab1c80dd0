"""The `calira-pipeline` commands, run as a user would."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from calira_pipeline.sandbox import ALL_SCOPES, ClientApp, Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import BIN, ROOT, pipeline_env, run

pytestmark = pytest.mark.integration

COMMANDS = [[], ["demo"], ["sandbox"], ["auth", "login"], ["auth", "seed"], ["doctor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / "calira-pipeline"), *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: calira-pipeline" in done.stdout


def test_doctor_names_a_missing_scope_and_exits_1(tmp_path: Path) -> None:
    app = ClientApp("doctor-secret", scopes=ALL_SCOPES - {"read_projects"})
    sandbox = Sandbox(SandboxConfig(scale="tiny", clients={"doctor-app": app}))
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(
            base_url,
            tmp_path / "data",
            CALIRA_CLIENT_ID="doctor-app",
            CALIRA_CLIENT_SECRET="doctor-secret",
        )
        done = run([str(BIN / "calira-pipeline"), "doctor"], env, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[ok] scope read_bookings" in done.stdout
    assert "[FIX] scope read_projects" in done.stdout
    assert "re-authorise the app" in done.stdout
    assert "doctor-secret" not in done.stdout + done.stderr
    assert "CALIRA_CLIENT_SECRET=(set)" in done.stdout


def test_doctor_says_which_credentials_are_missing(tmp_path: Path) -> None:
    env = pipeline_env("https://api.clustermarket.invalid", tmp_path / "data")
    env.pop("CALIRA_CLIENT_SECRET")
    done = run([str(BIN / "calira-pipeline"), "doctor"], env, timeout=120)
    assert done.returncode == 1
    assert "[FIX] credentials" in done.stdout
    assert "CALIRA_CLIENT_SECRET" in done.stdout


def test_sandbox_command_serves_real_http_that_pages(tmp_path: Path) -> None:
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(BIN / "calira-pipeline"), "sandbox", "--port", str(port), "--scale", "tiny"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait until the port accepts connections (a condition with a deadline, not a sleep).
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the sandbox command exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the sandbox never started listening"
                time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            token = http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sandbox-client",
                    "client_secret": "sandbox-secret",
                },
            ).json()["access_token"]
            page = http.get(
                "/v1/bookings",
                params={"per_page": 7, "page": 2},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert page.status_code == 200
        assert page.headers["X-Current-Page"] == "2"
        assert page.headers["X-Per-Page"] == "7"
        assert len(page.json()) == 7
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_auth_login_stores_a_refresh_token_that_runs_then_use(tmp_path: Path) -> None:
    import socket

    import httpx

    from calira_pipeline.sandbox import SANDBOX_CLIENT_SECRET
    from calira_pipeline_tests.integration.conftest import materialize_all_command

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sandbox = Sandbox(SandboxConfig(scale="tiny"))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir)
        login = subprocess.Popen(
            [str(BIN / "calira-pipeline"), "auth", "login", "--no-browser", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert login.stdout is not None
        url = next(line.strip() for line in login.stdout if "/oauth/authorize?" in line)
        # The user's browser: the sandbox auto-approves and redirects to the loopback callback.
        httpx.get(url, follow_redirects=True, timeout=30)
        assert login.wait(timeout=60) == 0, login.stdout.read()
        token_file = data_dir / ".calira-token.json"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert SANDBOX_CLIENT_SECRET not in token_file.read_text()
        done = run(materialize_all_command(), env)
        assert done.returncode == 0, done.stderr[-3000:]
        # The run used the stored refresh token (and rotated it), not client credentials.
        assert sandbox.stats.count(route="/v1/me", status=200) >= 1
