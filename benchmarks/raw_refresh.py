"""The whole raw refresh as a user runs it, against a sequential page loop over the same sandbox.

    .venv/bin/python benchmarks/ingest.py --raw-refresh        # scale large, 100 ms: ~25 min

(defaults with `--raw-refresh`: `--scale large --latency-ms 100 --repeat 1`). Large is the
brief's benchmark scale and the one where the comparison is about fetching: ~10,000 requests, so
the run's fixed costs (process start, loading the definitions, Dagster's events, one commit) are
a small share; at medium (~820 requests, ~10 s of fetching at concurrency 8) they are most of it.

Starts the sandbox (`python -m calira_pipeline.sandbox --latency-ms L --scale S`) in its own
process, then times, in turn (the refresh first, so it is the one that meets the sandbox's cold
caches):

- a sequential loop: one request after another over every endpoint the raw tables read
  (accounts, each lab's equipment and groups, each account's projects, bookings, /me), following
  pages until a short one and asking for a detail exactly where the pipeline would
  (`needs_detail`), so both sides make the same requests;
- `dagster asset materialize -m calira_pipeline.definitions --select group:raw` in a subprocess
  (process start included) into a fresh data directory; its request count is the sum of the
  `fetch/requests` metadata of the run's materialisations, read from the run's own instance.

Targets: run >= 5x faster than the loop, with <= 1.05x its requests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pipeline import children_cpu, sandbox_run_env  # this script's folder is on sys.path

from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.api.fetching import needs_detail
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

BIN = Path(sys.executable).parent
PER_PAGE = 100


class SequentialLoop:
    """Every raw endpoint read one request at a time, counting requests and records."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/v1", timeout=60)
        token = httpx.post(
            base_url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
            },
            timeout=60,
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.requests = 1
        self.records = 0

    def get(self, path: str, **params: Any) -> Any:
        self.requests += 1
        response = self.http.get(path, params=params)
        if path == "/me" and response.status_code == 404:
            return None  # a client-credentials token has no user, as the pipeline expects
        response.raise_for_status()
        return response.json()

    def pages(self, collection: str, path: str, detail: str, **params: Any) -> list[Any]:
        items: list[Any] = []
        page = 1
        while True:
            batch = self.get(path, page=page, per_page=PER_PAGE, **params)
            items += batch
            if len(batch) < PER_PAGE:
                break
            page += 1
        for item in items:
            if needs_detail(collection, item):
                self.get(f"{detail}/{item['id']}")
        self.records += len(items)
        return items

    def run(self) -> None:
        accounts = self.pages("accounts", "/accounts", "/accounts")
        labs = [a["id"] for a in accounts if str(a.get("account_type") or "lab").lower() == "lab"]
        for lab in labs:
            self.pages("equipment", "/equipment", "/equipment", account=lab)
            self.pages("groups", "/groups", "/groups", account=lab)
        for account in accounts:
            path = f"/accounts/{account['id']}/projects"
            self.pages("projects", path, path)
        self.pages("bookings", "/bookings", "/bookings")
        self.get("/me")
        self.http.close()


def time_loop(base_url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    loop = SequentialLoop(base_url)
    loop.run()
    return time.perf_counter() - started, loop.requests, loop.records


def time_raw_refresh(base_url: str, concurrency: int | None = None) -> tuple[float, int, int]:
    """Wall time, requests and rows of `dagster asset materialize --select group:raw`; prints
    how long the run spent fetching (the raw step's own clock) and the load average."""
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as home:
        env = sandbox_run_env(base_url, Path(work) / "data", Path(home))
        if concurrency is not None:  # else the pipeline's default
            env["CALIRA_CONCURRENCY"] = str(concurrency)
        command = [str(BIN / "dagster"), "asset", "materialize", "-m"]
        command += ["calira_pipeline.definitions", "--select", "group:raw"]
        started, cpu_before = time.perf_counter(), children_cpu()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu_before
        if done.returncode != 0:
            raise SystemExit(f"the raw refresh failed:\n{(done.stdout + done.stderr)[-4000:]}")
        requests, rows, fetching = _run_requests(Path(home))
    print(
        f"  raw refresh {wall:.1f} s, of which fetching {fetching:.1f} s (the rest: process "
        f"start, definitions, staging sort, checks, commit, events); {cpu:.1f} s CPU in the run "
        f"process; load {_load()}"
    )
    return wall, requests, rows


def _print_sandbox_cpu(before: float | None, after: float | None, requests: int) -> None:
    """The sandbox's CPU during the refresh: it stands in for a remote server, but here it
    shares this machine's cores with the run."""
    if before is None or after is None:
        return
    used = after - before
    print(
        f"  sandbox process: {used:.1f} s CPU during the refresh, {used / requests * 1000:.2f} ms "
        "per request"
    )


@contextlib.contextmanager
def _held(lock: Path | None) -> Iterator[None]:
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)



def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run_requests(home: Path) -> tuple[int, int, float]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        requests = rows = 0
        fetching = 0.0
        for tables in COLLECTION_TABLES.values():
            event = instance.get_latest_materialization_event(dg.AssetKey(tables[0]))
            assert event is not None and event.asset_materialization is not None
            metadata = event.asset_materialization.metadata
            requests += int(metadata["fetch/requests"].value)  # type: ignore[arg-type]
            rows += int(metadata["dagster/row_count"].value)  # type: ignore[arg-type]
            wall = float(metadata["fetch/wall_time_s"].value)  # type: ignore[arg-type]
            fetching = max(fetching, wall)  # collections run together, one clock from the start
    return requests, rows, fetching


def compare(
    base_url: str,
    repeat: int,
    sandbox_cpu: Callable[[], float | None],
    skip_loop: bool = False,
    concurrency: int | None = None,
    lock: Path | None = None,
) -> None:
    """Interleaved loop / raw-refresh pairs; medians reported. `skip_loop`: the refresh alone
    (for iterating on the run; the loop is latency-bound and stable, ~20 min at large).
    `lock`: a file held (flock) only while the refresh runs, so on a shared machine other
    CPU-heavy measurements wait for the CPU-bound leg but not for the loop."""
    loops, runs = [], []
    for _ in range(repeat):
        with _held(lock):
            print(f"  refresh starts; load {_load()}")
            before = sandbox_cpu()
            runs.append(time_raw_refresh(base_url, concurrency))
            _print_sandbox_cpu(before, sandbox_cpu(), runs[-1][1])
        if skip_loop:
            continue
        loops.append(time_loop(base_url))
        print(f"  sequential loop {loops[-1][0]:.1f} s; load {_load()}")
    if skip_loop:
        return
    loop = sorted(loops)[len(loops) // 2]
    run = sorted(runs)[len(runs) // 2]
    print(f"sequential loop: {loop[0]:.1f} s, {loop[1]} requests, {loop[2]} records")
    print(f"raw refresh:     {run[0]:.1f} s, {run[1]} requests, {run[2]} primary-table rows")
    print(
        f"raw refresh speed-up {loop[0] / run[0]:.2f}x the loop (target >= 5), requests "
        f"{run[1] / loop[1]:.3f}x the loop's (target <= 1.05); all runs: loop "
        f"{[round(r[0], 1) for r in loops]} s, refresh {[round(r[0], 1) for r in runs]} s"
    )
