"""SIGKILL real `dagster asset materialize` runs at random moments; the data never breaks.

Two sandboxes with different data (different seeds *and* sizes, so row counts tell them apart)
alternate as the source. After every kill each Parquet file and each DuckDB table, read
independently, holds exactly the previous good content or the new content for that table: never
a mix of the two, never missing, never unreadable. A final run repairs everything.

Each run starts (imports, loads the code location) while the previous one is being killed and
checked, and is held at a gate in front of the sandbox until its turn: the kill clock starts when
the gate opens, so kill moments spread over the part of the run that touches data.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.sandbox import SCALES, Sandbox, SandboxConfig
from calira_pipeline.sandbox.server import serve_in_thread
from calira_pipeline_tests.integration.conftest import ROOT, materialize_all_command, pipeline_env
from calira_pipeline_tests.integration.faults_support import Gate, TableState, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 20
COLLECTIONS = ("accounts", "bookings", "equipment", "projects")
TABLES = [t for c in COLLECTIONS for t in COLLECTION_TABLES[c]]
BIGGER = replace(
    SCALES["tiny"], independent_labs=3, instruments=15, bookings=340, projects_per_lab=3
)
STARTUP_TIMEOUT_S = 180.0
LATE = 0.75  # a kill this far into a run (of a clean run's duration) mostly follows its commit


@dataclass
class Source:
    name: str
    sandbox: Sandbox
    gate: Gate
    base_url: str
    tables: dict[str, TableState] | None = None  # what a clean run of it writes


@contextmanager
def served(name: str, sandbox: Sandbox) -> Iterator[Source]:
    gate = Gate(sandbox.app)
    with serve_in_thread(gate) as base_url:  # type: ignore[arg-type]
        yield Source(name, sandbox, gate, base_url)


def spawn(source: Source, data_dir: Path) -> subprocess.Popen[bytes]:
    command = [*materialize_all_command()[:-1], ",".join(TABLES)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=pipeline_env(source.base_url, data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def release(source: Source, proc: subprocess.Popen[bytes]) -> float:
    """Wait until the run is blocked at the gate (started up), open it; return that moment."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not source.gate.arrived.wait(timeout=0.5):
        assert proc.poll() is None, proc.stderr.read().decode()[-4000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "the run never reached the API"
    source.gate.opened.set()
    return time.monotonic()


def finish(source: Source, proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=600)
    source.gate.close()
    assert proc.returncode == 0, err.decode()[-4000:]


def kill_after(
    source: Source, proc: subprocess.Popen[bytes], started: float, offset_s: float
) -> bool:
    """SIGKILL the run's process group `offset_s` after `started`; was it still running?"""
    try:
        proc.wait(timeout=max(0.0, started + offset_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return True
    finally:
        source.gate.close()
    return False


def _version(
    state: TableState, clean: dict[str, dict[str, TableState]], table: str, duckdb: bool
) -> str | None:
    """Which source's content `state` holds for `table` (DuckDB or Parquet view), or None."""
    for name, tables in clean.items():
        want = tables[table]
        if duckdb and (state.duckdb_count, state.duckdb_rows) == (
            want.duckdb_count,
            want.duckdb_rows,
        ):
            return name
        if not duckdb and (state.parquet_count, state.parquet_rows) == (
            want.parquet_count,
            want.parquet_rows,
        ):
            return name
    return None


def _temp_files(data_dir: Path) -> list[Path]:
    # A killed run's incoming folder (its staged files) is removed by the next run.
    incoming = [*(data_dir / "incoming").glob("*")]
    return [*data_dir.glob(".tmp-*"), *(data_dir / "parquet").glob(".tmp-*"), *incoming]


def test_sigkill_at_random_moments_never_mixes_or_loses_a_table(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    data_dir = tmp_path / "data"
    with ExitStack() as stack:
        sources = [
            stack.enter_context(served("seed0-tiny", Sandbox(SandboxConfig(seed=0, scale="tiny")))),
            stack.enter_context(
                served("seed1-bigger", Sandbox(SandboxConfig(seed=1, scale=BIGGER)))
            ),
        ]
        # Clean runs: what each source's content looks like, and how long a run's data phase is.
        durations = []
        for source in (sources[1], sources[0]):
            proc = spawn(source, data_dir)
            started = release(source, proc)
            finish(source, proc)
            durations.append(time.monotonic() - started)
            source.tables = snapshot(data_dir, TABLES)
        clean = {s.name: s.tables for s in sources if s.tables is not None}
        for table in TABLES:
            a, b = (tables[table] for tables in clean.values())
            assert a.parquet_count != b.parquet_count and a.duckdb_count != b.duckdb_count, table
        active = min(durations)
        parquet_now = dict.fromkeys(TABLES, sources[0].name)
        duckdb_now = dict.fromkeys(TABLES, sources[0].name)

        # One kill moment per twentieth of the run (shuffled), so early and late kills both occur;
        # a run that ends before its moment is no kill, and teaches how long runs take right now.
        fractions = [(i + rng.random()) / KILLS for i in range(KILLS)]
        rng.shuffle(fractions)
        log, signatures, kills, attempt = [], set(), 0, 0
        upcoming = spawn(sources[1], data_dir)
        while kills < KILLS:
            assert attempt < 2 * KILLS, f"only {kills} of {attempt} runs were killed while live"
            fraction = fractions[kills] if attempt < 2 * KILLS - 1 else 0.0
            source, proc = sources[(attempt + 1) % 2], upcoming
            started = release(source, proc)
            # The next run starts up now, held at the other sandbox's gate.
            upcoming = spawn(sources[attempt % 2], data_dir)
            killed = kill_after(source, proc, started, fraction * active)
            if not killed:
                active = min(active, time.monotonic() - started)

            state = snapshot(data_dir, TABLES)  # every Parquet file reads; DuckDB opens read-only
            changed = []
            for table in TABLES:
                for view, now in (("parquet", parquet_now), ("duckdb", duckdb_now)):
                    got = _version(state[table], clean, table, duckdb=view == "duckdb")
                    allowed = {now[table], source.name}
                    assert got in allowed, (attempt, round(fraction, 3), table, view, got, allowed)
                    if got != now[table]:
                        changed.append(f"{table}/{view}")
                    now[table] = got
            # One raw step publishes every raw table in one commit: all switch together.
            for now in (duckdb_now, parquet_now):
                assert len({now[t] for t in TABLES}) == 1, (attempt, now)
            signatures.add(tuple(changed))
            log.append(
                f"run {attempt:2d} at {fraction:4.2f} x {active:.1f}s on {source.name}: "
                f"{'killed' if killed else 'finished'}, changed {', '.join(changed) or 'nothing'}"
            )
            attempt += 1
            if killed and not changed and fraction >= LATE:
                # Killed late yet nothing committed: runs take longer now than the clean runs
                # did (each also competes with the next run's start-up, and the machine may be
                # busier). Stretch the clock and try this moment again, or every kill could land
                # before the commit and the test would prove nothing about late kills.
                active *= 1.5
            elif killed:
                kills += 1
        print("\n".join(log))
        # Runs killed before their commit change nothing; the others change every table.
        assert signatures == {
            (),
            tuple(f"{t}/{v}" for t in TABLES for v in ("parquet", "duckdb")),
        }, f"kills did not spread over the run: {signatures}"

        latest = sources[(attempt + 1) % 2]  # where the upcoming run is held; it repairs all
        release(latest, upcoming)
        finish(latest, upcoming)
    final = snapshot(data_dir, TABLES)
    want = clean[latest.name]
    for table in TABLES:
        assert final[table].parquet_rows == want[table].parquet_rows, table
        assert (final[table].duckdb_count, final[table].duckdb_rows) == (
            want[table].duckdb_count,
            want[table].duckdb_rows,
        ), table
    assert _temp_files(data_dir) == []
