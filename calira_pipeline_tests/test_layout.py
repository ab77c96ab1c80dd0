"""The layout the README promises: who may import what, and where the environment is read."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from calira_pipeline.config import all_variables

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "calira_pipeline"


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_wiring_imports_dagster() -> None:
    offenders = {
        path
        for path, tree in _modules().items()
        if not path.startswith(("wiring/", "defs/"))
        and any(name.split(".")[0].startswith("dagster") for name in _imported(tree))
    }
    assert offenders == set()


def test_calira_variables_are_read_in_config_only() -> None:
    reads = re.compile(r"os\.environ|getenv")
    offenders = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name != "config.py" and reads.search(text) and "CALIRA_" in "".join(
            line for line in text.splitlines() if reads.search(line)
        ):
            offenders.add(str(path.relative_to(ROOT)))
    assert offenders == set()


def test_every_variable_the_package_reads_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Every variable", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"CALIRA_[A-Z_]+", table))
    assert set(all_variables()) == documented


def test_no_test_doubles_ship_in_the_package() -> None:
    assert sorted(PACKAGE.rglob("testing.py")) == []


def test_importing_the_package_loads_neither_duckdb_nor_dagster() -> None:
    probe = "import sys, calira_pipeline; print(sorted({'duckdb', 'dagster'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# Lowest first: a package may import itself and the ones before it, never one after it.
LAYERS = ["config", "api", "sandbox", "storage", "ingest", "marts", "reporting", "wiring", "cli"]
TOP = {"definitions": "wiring", "defs": "wiring", "__init__": "storage"}  # connect()


def _layer(path: str) -> str:
    first = path.split("/")[0].removesuffix(".py")
    return TOP.get(first, first)


def test_packages_depend_only_downward() -> None:
    upward = set()
    for path, tree in _modules().items():
        own = LAYERS.index(_layer(path))
        for name in _imported(tree):
            parts = [*name.split("."), ""]
            inner = parts[0] == "calira_pipeline" and parts[1] in LAYERS
            if inner and LAYERS.index(parts[1]) > own:
                upward.add(f"{path} -> {name}")
    assert upward == set()


def test_the_api_layer_knows_no_table_layout_and_only_the_wiring_plugs_in_the_sandbox() -> None:
    for path, tree in _modules().items():
        names = _imported(tree)
        if path.startswith("api/"):
            assert not any(n.startswith("calira_pipeline.storage") for n in names), path
            assert not any(n.split(".")[0] in ("duckdb", "dagster") for n in names), path
        if not path.startswith(("sandbox/", "wiring/sandbox_source.py", "cli/main.py")):
            assert not any(n.startswith("calira_pipeline.sandbox") for n in names), path


# Run in a fresh interpreter: every module is imported with each CALIRA_* variable set to a value
# that fails when read, behind an os.environ that records who asks for a CALIRA_* variable.
_IMPORT_EVERYTHING = """
import importlib, os, pkgutil, sys
import calira_pipeline

class Recording(dict):
    asked = []
    def _note(self, key, by=None):
        if str(key).startswith("CALIRA_") or by:
            Recording.asked.append(f"{key} by {sys._getframe(2).f_globals.get('__name__')}")
    def _ours(self):
        return str(sys._getframe(2).f_globals.get("__name__", "")).startswith("calira_pipeline")
    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)
    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)
    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)
    def items(self):
        if self._ours():
            self._note("<every variable>", by=True)
        return super().items()

os.environ = Recording(os.environ)
modules = pkgutil.walk_packages(calira_pipeline.__path__, "calira_pipeline.")
names = [m.name for m in modules if not m.name.endswith("__main__")]  # that one runs the CLI
for name in names:
    importlib.import_module(name)
print(len(names), "modules;", "asked:", sorted(set(Recording.asked)))
from calira_pipeline.definitions import load_defs
try:
    load_defs()
except ValueError as error:
    print("built:", error)
"""


def test_importing_any_module_reads_no_calira_variable() -> None:
    poisoned = {name: "not-a-valid-value" for name in all_variables()}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CALIRA_")}, **poisoned}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    imported, built = done.stdout.strip().splitlines()
    assert imported.endswith("asked: []"), imported
    assert int(imported.split()[0]) > 60  # every module, not a few
    # The same environment fails once the definitions are built, naming the variable.
    assert built.startswith("built: CALIRA_"), built
    assert "'not-a-valid-value'" in built
