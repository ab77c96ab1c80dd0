"""Bad configuration gets one clear sentence, and stored data is untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calira_pipeline import connect
from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import materialize_all_command, pipeline_env, run

pytestmark = pytest.mark.integration


def _content(data_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    with connect(data_dir) as con:
        tables = [r[0] for r in con.execute("select name from _calira_tables").fetchall()]
        return {t: con.execute(f'select * from "{t}" order by all').fetchall() for t in tables}


@pytest.fixture(scope="module")
def good_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One successful run whose tables each case copies and then must leave untouched."""
    data_dir = tmp_path_factory.mktemp("good") / "data"
    with Sandbox(SandboxConfig(scale="tiny")).serve_in_thread() as base_url:
        done = run(materialize_all_command(), pipeline_env(base_url, data_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return data_dir


@pytest.mark.parametrize(
    ("overrides", "removed", "expected"),
    [
        ({}, ("CALIRA_CLIENT_ID", "CALIRA_CLIENT_SECRET"), "CALIRA_CLIENT_ID"),
        ({"CALIRA_ACCESS_TOKEN": "tok"}, (), "CALIRA_ACCESS_TOKEN"),
        ({"CALIRA_BASE_URL": "http://calira.example.org/v1"}, (), "plain HTTP"),
        ({"CALIRA_PII": "maybe"}, (), "CALIRA_PII"),
        ({"CALIRA_OPERATING_HOURS": "weekdays"}, (), "Mon-Fri 09:00-17:00"),
    ],
    ids=["no-credentials", "contradictory-auth", "plain-http", "bad-pii", "bad-hours"],
)
def test_bad_configuration_is_one_clear_sentence(
    tmp_path: Path,
    good_data_dir: Path,
    overrides: dict[str, str],
    removed: tuple[str, ...],
    expected: str,
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(good_data_dir, data_dir)
    before = _content(data_dir)
    with Sandbox(SandboxConfig(scale="tiny")).serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir)
        broken = {k: v for k, v in {**env, **overrides}.items() if k not in removed}
        done = run(materialize_all_command(), broken)
    assert done.returncode != 0
    assert expected in done.stdout + done.stderr
    assert _content(data_dir) == before


def test_unwritable_data_dir_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    sandbox = Sandbox(SandboxConfig(scale="tiny"))
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(base_url, blocker / "data", dagster_home=tmp_path / "home")
        done = run(materialize_all_command(), env)
    assert done.returncode != 0
    assert "set CALIRA_DATA_DIR to a writable directory" in done.stdout + done.stderr
