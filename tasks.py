#!/usr/bin/env python3
"""Set-up and everyday commands using nothing but Python 3.11+ and pip.

python3 tasks.py demo    # create .venv, install, run the pipeline against the built-in sandbox
python3 tasks.py test    # create .venv, install with dev tools, run lint, types and the tests
python3 tasks.py dev     # the Dagster UI on http://localhost:3000 (opens with the demo's run)
python3 tasks.py notebook  # JupyterLab on notebooks/explore.ipynb (installs the [notebook] extra)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Nothing is installed yet: read CALIRA_VENV through the checkout's config module (stdlib only).
sys.path.insert(0, str(ROOT))
from calira_pipeline.config import venv_dir  # noqa: E402

VENV = venv_dir(ROOT)
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def ensure_venv(extras: str = "") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before any install
        sys.exit(f"calira_pipeline needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / ".calira-installed"
    installed = stamp.read_text().split() if stamp.exists() else []
    if wanted not in installed:
        _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".{extras}")
        stamp.write_text("\n".join([*installed, wanted]))


def dagster_env() -> dict[str, str]:
    """The environment with the one Dagster instance `demo` records into and `dev` opens."""
    env = dict(os.environ)
    home = Path(env.setdefault("DAGSTER_HOME", str(ROOT / ".dagster_home"))).resolve()
    env["DAGSTER_HOME"] = str(home)
    # Staffed hours for the second utilisation (set it to your facility's own; see README).
    env.setdefault("CALIRA_OPERATING_HOURS", "Mon-Fri 09:00-17:00")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return env


def demo(args: list[str]) -> None:
    ensure_venv()
    # Same DAGSTER_HOME as `dev`: the UI then opens with the demo's run, charts and checks.
    _run(BIN / "calira-pipeline", "demo", *args, env=dagster_env())


def test(args: list[str]) -> None:
    ensure_venv("[dev]")
    _run(
        BIN / "ruff", "check", "calira_pipeline", "calira_pipeline_tests", "benchmarks", "tasks.py"
    )
    _run(BIN / "mypy")
    # pytest exits non-zero when it collects no tests, so an empty suite can never pass.
    # loadgroup: tests marked xdist_group (the scale-out cluster) share one worker and fixture.
    _run(BIN / "python", "-m", "pytest", "-n", "2", "--dist", "loadgroup", *args)


def dev(args: list[str]) -> None:
    ensure_venv()
    # `dg dev` reads the project from pyproject.toml ([tool.dg]) and the project's `.env`.
    _run(BIN / "dg", "dev", *args, env=dagster_env())


def notebook(args: list[str]) -> None:
    ensure_venv("[notebook]")
    _run(BIN / "jupyter", "lab", "notebooks/explore.ipynb", *args)


# One API ingestion at a time across runs in this instance (the nightly schedule and a manual run
# may overlap). Under any other instance the data directory's ingestion lock serialises them.
DAGSTER_YAML = """\
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
# Enforces the jobs' dagster/max_runtime tags (and fails runs whose worker died).
run_monitoring:
  enabled: true
"""

COMMANDS = {"demo": demo, "test": test, "dev": dev, "notebook": notebook}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](sys.argv[2:])
