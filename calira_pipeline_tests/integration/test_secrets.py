"""Secrets never land in logs, metadata, files (other than the token file) or exceptions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from calira_pipeline.sandbox import ClientApp, Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import materialize_all_command, pipeline_env, run

pytestmark = pytest.mark.integration

CLIENT_ID = "calira-recognisable-client"
SECRET = "S3CRET-calira-client-secret-7f3a9c"
WRONG_SECRET = "WR0NG-calira-client-secret-1b2c3d"


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_no_secret_or_token_appears_anywhere(tmp_path: Path) -> None:
    sandbox = Sandbox(
        SandboxConfig(scale="tiny", token_lifetime_s=3, clients={CLIENT_ID: ClientApp(SECRET)})
    )
    data_dir = tmp_path / "data"
    token_file = tmp_path / "token.json"
    with sandbox.serve_in_thread() as base_url:
        seed = sandbox.issue_refresh_token(CLIENT_ID)
        env = pipeline_env(
            base_url,
            data_dir,
            CALIRA_CLIENT_ID=CLIENT_ID,
            CALIRA_CLIENT_SECRET=SECRET,
            CALIRA_REFRESH_TOKEN=seed,
            CALIRA_TOKEN_FILE=str(token_file),
        )
        good = run(materialize_all_command(), env)
        bad = run(
            materialize_all_command(),
            {
                **env,
                "CALIRA_CLIENT_SECRET": WRONG_SECRET,
                "CALIRA_TOKEN_FILE": str(tmp_path / "t2"),
            },
        )
    assert good.returncode == 0, good.stderr[-3000:]
    assert bad.returncode != 0
    assert "invalid_client" in bad.stdout + bad.stderr or "401" in bad.stdout + bad.stderr

    secrets = [SECRET, WRONG_SECRET, seed, *sandbox.issued_tokens()]
    assert len(secrets) > 3  # the run really obtained tokens
    texts = {
        "good run output": good.stdout + good.stderr,
        "failed run output": bad.stdout + bad.stderr,
    }
    blobs = {
        str(p): p.read_bytes()
        for folder in (data_dir, Path(env["DAGSTER_HOME"]))
        for p in _files_under(folder)
    }
    for secret in secrets:
        for where, text in texts.items():
            assert secret not in text, f"a secret leaked into the {where}"
        for where, blob in blobs.items():
            assert secret.encode() not in blob, f"a secret leaked into {where}"

    # The one place tokens may live: the token file, readable by its owner only.
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert seed not in token_file.read_text()  # the seed was used once and rotated away
