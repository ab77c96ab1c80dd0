"""Table snapshots and the truth a correct load must equal, for the fault tests (the faults
themselves are the sandbox's: ``calira_pipeline.sandbox.network_faults``).

Run as a module it is one "pipeline process" of the refresh-token rotation test:
``python -m calira_pipeline_tests.integration.faults_support rotate BASE_URL TOKEN_FILE SEED N``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from starlette.types import ASGIApp, Receive, Scope, Send

import calira_pipeline
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox
from calira_pipeline.storage.schema import RAW_TABLES

# -- what the tables hold -------------------------------------------------------------------------

Key = tuple[Any, ...]


@dataclass(frozen=True)
class TableState:
    parquet_sha256: str
    parquet_rows: dict[Key, dict[str, Any]]
    duckdb_rows: dict[Key, dict[str, Any]]
    parquet_count: int  # before keying, so duplicates show
    duckdb_count: int


def _keyed(table: str, rows: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    pk = RAW_TABLES[table].primary_key
    return {tuple(r[c] for c in pk): r for r in rows}


def snapshot(data_dir: Path, tables: Iterable[str] = RAW_TABLES) -> dict[str, TableState]:
    """Raw tables as Parquet and as DuckDB sees them (DuckDB opened read-only)."""
    states: dict[str, TableState] = {}
    with calira_pipeline.connect(data_dir) as con:
        for table in tables:
            path = data_dir / "parquet" / f"{table}.parquet"
            parquet = pq.read_table(path).to_pylist()
            duck = con.execute(f'select * from "{table}"').to_arrow_table().to_pylist()
            states[table] = TableState(
                hashlib.sha256(path.read_bytes()).hexdigest(),
                _keyed(table, parquet),
                _keyed(table, duck),
                len(parquet),
                len(duck),
            )
    return states


def truth_keys(sb: Sandbox) -> dict[str, set[Key]]:
    """Primary keys every raw table must hold for the sandbox as it is now (client credentials,
    so ``current_user`` is empty)."""
    ds = sb.dataset
    projects = [p for ps in ds.projects.values() for p in ps]
    return {
        "accounts": {(a["id"],) for a in ds.accounts},
        "equipment": {(e["id"],) for e in ds.equipment},
        "bookings": {(b["id"],) for b in ds.bookings},
        "projects": {(p["id"],) for p in projects},
        "project_funding_codes": {
            (p["id"], i) for p in projects for i, _ in enumerate(p.get("funding_codes") or [])
        },
        "project_users": {
            (p["id"], u["id"]) for p in projects for u in p.get("selected_users") or []
        },
        "groups": {(g["id"],) for g in ds.groups},
        "group_equipment": {(g["id"], e["id"]) for g in ds.groups for e in g["equipment"]},
        "current_user": set(),
    }


def differences(
    got: dict[Key, dict[str, Any]],
    want: dict[Key, dict[str, Any]],
    ignore: Callable[[str], bool] = lambda column: False,
) -> list[str]:
    """Human-readable row differences between two keyed tables (first few only)."""
    problems = [f"missing {k}" for k in sorted(want.keys() - got.keys(), key=repr)[:3]]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - want.keys(), key=repr)[:3]]
    for key in sorted(want.keys() & got.keys(), key=repr):
        columns = {c for c in want[key] if not ignore(c)}
        changed = sorted(c for c in columns if got[key].get(c) != want[key][c])
        if changed:
            problems.append(
                f"{key}: {changed[0]} {got[key].get(changed[0])!r} != {want[key][changed[0]]!r}"
            )
        if len(problems) > 5:
            break
    return problems


# -- the refresh-token rotation process ---------------------------------------------------------


def _rotate_main(base_url: str, token_file: str, seed: str, rounds: int) -> None:
    from calira_pipeline.api import CaliraClient, ClientSettings

    client = CaliraClient(
        ClientSettings(
            base_url=base_url + "/v1",
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            refresh_token=seed,
            token_file=token_file,
            concurrency=4,
            max_retry_wait_s=30,
        )
    )
    loaded: dict[str, int] = {}
    for _ in range(rounds):
        for collection in ("accounts", "equipment", "bookings", "groups", "current_user"):
            result = client.fetch(collection)
            loaded[collection] = len(result.rows[collection])
    print(json.dumps(loaded), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["rotate"] or len(sys.argv) != 6:
        sys.exit("usage: faults_support rotate BASE_URL TOKEN_FILE SEED ROUNDS")
    _rotate_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))


class Gate:
    """Holds every request until ``opened`` is set, so a run can finish starting up (seconds of
    imports) while the previous run is still being checked; ``arrived`` tells it is waiting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.opened = threading.Event()
        self.arrived = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.arrived.set()
            while not self.opened.is_set():
                await asyncio.sleep(0.002)
        await self.app(scope, receive, send)

    def close(self) -> None:
        self.opened.clear()
        self.arrived.clear()
