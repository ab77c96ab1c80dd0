"""The fault matrix: every raw asset against a misbehaving API on a real loopback socket.

Each cell starts from a good baseline (seed 0), runs against a faulty sandbox holding different
data (seed 1) and ends in the outcome it declares:

- ``exact``: every raw table (Parquet and DuckDB) holds exactly the faulty sandbox's truth, no
  duplicates, and the same content a fault-free run of that data writes;
- ``failure``: the run fails, the error names the endpoint, the problem and a fix, and every
  table (Parquet bytes and DuckDB rows) is still exactly the baseline.

A cell may declare that only some collections fail (a missing OAuth scope). The matrix prints at
the end of the module, whatever the capture settings.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pytest

from calira_pipeline.api import CaliraClient, CaliraError, ClientSettings
from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.api.tokens import TokenFileStore
from calira_pipeline.sandbox import (
    ALL_SCOPES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SCALES,
    ClientApp,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    Scale,
)
from calira_pipeline.sandbox.network_faults import (
    LIST_PATHS,
    OVERRIDDEN_COST,
    DeleteDuringPaging,
    FaultProxy,
    Injection,
)
from calira_pipeline.sandbox.server import serve_in_thread
from calira_pipeline.wiring.raw import RAW_ASSETS
from calira_pipeline.wiring.resources import CaliraApiResource, WarehouseResource
from calira_pipeline_tests.integration.conftest import ROOT
from calira_pipeline_tests.integration.faults_support import (
    Key,
    TableState,
    differences,
    snapshot,
    truth_keys,
)

pytestmark = pytest.mark.integration

BASELINE_SEED, FAULTY_SEED = 0, 1
COLLECTIONS = tuple(COLLECTION_TABLES)
FETCHING = tuple(c for c in COLLECTIONS if c != "current_user")  # /me has no list to damage
Outcome = Literal["exact", "failure"]
_RETRY_LINE = re.compile(r"got .+; retry \d+ in")
FIX = r"(?i)(retry later|try again|re-run|check CALIRA_|Fix:|re-authori[sz]e|raise max_)"

MATRIX: list[tuple[str, str, str, int, int]] = []


@pytest.fixture(scope="module", autouse=True)
def _print_matrix(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    header = ("cell", "expected", "observed", "requests", "retries")
    rows = [header, *[(c, e, o, str(r), str(t)) for c, e, o, r, t in MATRIX]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["", "fault matrix:"] + [
        "  " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    ]
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n".join(lines), flush=True)
    else:
        print("\n".join(lines), flush=True)


# -- cells -----------------------------------------------------------------------------------------


@dataclass
class Observation:
    sb: Sandbox
    proxy: FaultProxy
    deletion: DeleteDuringPaging | None
    result: dg.ExecuteInProcessResult
    failures: dict[str, str]  # collection -> error text
    metadata: dict[str, dict[str, Any]]  # table -> materialization metadata
    retries: int
    before: dict[str, TableState]
    after: dict[str, TableState]


@dataclass(frozen=True)
class Cell:
    id: str
    expect: Outcome
    faults: FaultConfig = FaultConfig()
    injections: tuple[Injection, ...] = ()
    clamp_per_page: int | None = None
    scale: str | Scale = "tiny"
    list_shape: Literal["full", "slim"] = "full"
    token_lifetime_s: float = 7200
    clock_speed: float = 1.0
    scopes: frozenset[str] = ALL_SCOPES
    delete_during_paging: bool = False
    failing: tuple[str, ...] | None = None  # default: all fetching collections if failure
    error: str = ""  # regex the failure text must match besides the endpoint and a fix
    ignore_columns: tuple[str, ...] = ()  # columns a fault-free run legitimately writes otherwise
    fired: Callable[[Observation], bool] = lambda obs: True
    extra: Callable[[Observation], None] = lambda obs: None

    @property
    def failing_collections(self) -> tuple[str, ...]:
        if self.failing is not None:
            return self.failing
        return FETCHING if self.expect == "failure" else ()

    @property
    def expected_label(self) -> str:
        if self.failing is not None and self.expect == "exact":
            return f"exact; {'+'.join(self.failing)}: failure"
        return "failure (tables intact)" if self.expect == "failure" else "exact"


def _status_count(obs: Observation, *statuses: int) -> int:
    return sum(obs.sb.stats.count(status=s) for s in statuses)


def _hit(kind: str) -> Callable[[Observation], bool]:
    return lambda obs: obs.proxy.hits.get(kind, 0) > 0


def _token_requests(obs: Observation) -> int:
    return obs.sb.stats.count(route="/oauth/token")


def _check_unknown_fields(obs: Observation) -> None:
    meta = obs.metadata["bookings"]["unknown_fields"]
    n_bookings = len(obs.after["bookings"].parquet_rows)
    assert meta == {f"bookings.x_future_field_{i:02d}": n_bookings for i in range(UNKNOWN)}, meta
    for row in obs.after["bookings"].parquet_rows.values():
        assert (
            f'"x_future_field_{UNKNOWN - 1:02d}":{{"n":{UNKNOWN - 1},"of":{row["id"]}}}'
            in (row["raw_json"])
        )


def _check_wrong_types(obs: Observation) -> None:
    rows = obs.after["bookings"].parquet_rows
    overridden = [r for r in rows.values() if r["id"] % 10 == 7]
    assert overridden, "no booking id ends in 7"
    for row in overridden:
        assert row["cost"] == Decimal("12.00") and str(row["cost"]) == "12.00"
        assert (
            f'"cost":{OVERRIDDEN_COST}' in row["raw_json"]
            and f'"id":"{row["id"]}"' in (row["raw_json"])
        )


def _check_deleted_warning(obs: Observation) -> None:
    assert obs.deletion is not None
    meta = obs.metadata["bookings"]
    assert meta["fetch/deleted_during_fetch"] == 1, meta
    assert any(str(obs.deletion.victim_id) in w and "404" in w for w in meta["warnings"]), meta


UNKNOWN = 24
MANY = replace(SCALES["tiny"], bookings=5_000)
EMPTY_LABS = replace(SCALES["tiny"], empty_labs=3, instruments=6, bookings=60)
EMPTY_ACCOUNT = Scale(
    organisations=0,
    departments_per_org=0,
    labs_per_department=0,
    labs_per_org=0,
    independent_labs=1,
    instruments=0,
    bookings=0,
    empty_labs=1,
)
# A burst below the client's concurrency: its first concurrent wave is throttled however slowly
# the machine runs (at 40 rps with a burst of 6 a loaded CI machine never tripped it).
STORM = {"rate_limit_rps": 20.0, "rate_limit_burst": 2}

CELLS = [
    *[
        Cell(
            f"429 storm, Retry-After {form}",
            "exact",
            FaultConfig(**STORM, retry_after=form, seed=1),  # type: ignore[arg-type]
            fired=lambda obs: _status_count(obs, 429) > 0,
        )
        for form in ("seconds", "http-date", "zero", "mixed")
    ],
    Cell(
        "5xx at 5 %",
        "exact",
        FaultConfig(error_rate=0.05, seed=2),
        fired=lambda obs: _status_count(obs, 500, 502, 503) > 0,
    ),
    Cell(
        "5xx at 30 % (some HTML pages)",
        "exact",
        FaultConfig(error_rate=0.3, seed=2),
        fired=lambda obs: _status_count(obs, 500, 502, 503) > 5,
    ),
    Cell(
        "connection reset mid-body 10 %",
        "exact",
        injections=(Injection("drop", 0.1),),
        fired=_hit("drop"),
    ),
    Cell(
        "token expires every 1 s (server clock x10)",
        "exact",
        FaultConfig(latency_ms=40),
        token_lifetime_s=10,
        clock_speed=10,
        # Renewals, whether after a 401 or ahead of expiry (which one depends on machine load).
        fired=lambda obs: _token_requests(obs) >= 3,
    ),
    Cell(
        "head inserts during paging (3/page)",
        "exact",
        FaultConfig(head_inserts_per_page=3),
        fired=lambda obs: len(obs.sb.inserted_booking_ids) > 0,
    ),
    Cell(
        "booking deleted during paging",
        "exact",
        delete_during_paging=True,
        fired=lambda obs: obs.deletion is not None and obs.deletion.deleted,
    ),
    Cell(
        "slim list + detail 404 after listing",
        "exact",
        list_shape="slim",
        delete_during_paging=True,
        fired=lambda obs: obs.deletion is not None and obs.deletion.detail_404s == 1,
        extra=_check_deleted_warning,
    ),
    Cell(
        "truncated JSON 5 %",
        "exact",
        FaultConfig(truncated_json_rate=0.05, seed=4),
        fired=lambda obs: obs.retries > 0,
    ),
    Cell(
        "truncated JSON always",
        "failure",
        FaultConfig(truncated_json_rate=1.0),
        error=r"not valid JSON",
    ),
    Cell(
        "HTML 200 page 5 %",
        "exact",
        injections=(Injection("html200", 0.05, LIST_PATHS),),
        fired=_hit("html200"),
    ),
    Cell(
        "HTML 200 page always",
        "failure",
        injections=(Injection("html200", 1.0, LIST_PATHS),),
        error=r"not valid JSON|HTML",
    ),
    Cell(
        "pagination headers missing 5 %",
        "exact",
        FaultConfig(missing_headers_rate=0.05, seed=5),
        fired=lambda obs: obs.retries > 0,
    ),
    Cell(
        "pagination headers missing always",
        "failure",
        FaultConfig(missing_headers_rate=1.0),
        error=r"no X-Total-Records header",
    ),
    Cell(
        "X-Total-Records garbled 5 %",
        "exact",
        injections=(Injection("garble_headers", 0.05, LIST_PATHS),),
        fired=_hit("garble_headers"),
    ),
    Cell(
        "X-Total-Records garbled always",
        "failure",
        injections=(Injection("garble_headers", 1.0, LIST_PATHS),),
        error=r"malformed X-Total-Records",
    ),
    Cell(
        "X-Total-Records off by +-1..25 on 30 % of later pages",
        "exact",
        injections=(Injection("lie_total", 0.3, LIST_PATHS, min_page=2),),
        fired=_hit("lie_total"),
    ),
    Cell(
        "X-Total-Records 25 too low on every page",
        "exact",
        injections=(Injection("lie_total", 1.0, LIST_PATHS, total_delta=-25),),
        fired=_hit("lie_total"),
    ),
    Cell(
        "X-Total-Records 25 too high on every page",
        "failure",
        injections=(Injection("lie_total", 1.0, LIST_PATHS, total_delta=25),),
        error=r"X-Total-Records|API reported",
    ),
    Cell(
        "per_page clamped to 25",
        "exact",
        clamp_per_page=25,
        fired=lambda obs: obs.metadata["bookings"]["fetch/pages"] >= 8,
    ),
    Cell(
        "missing read_projects scope",
        "exact",
        scopes=ALL_SCOPES - {"read_projects"},
        failing=("projects",),
        error=r"read_projects",
        fired=lambda obs: _status_count(obs, 403) > 0,
    ),
    Cell("labs without equipment or bookings", "exact", scale=EMPTY_LABS),
    Cell("empty account (no equipment, no bookings)", "exact", scale=EMPTY_ACCOUNT),
    Cell(
        f"5k bookings x {UNKNOWN} unknown fields",
        "exact",
        scale=MANY,
        injections=(Injection("unknown_fields", 1.0, LIST_PATHS, extra_fields=UNKNOWN),),
        ignore_columns=("raw_json",),
        extra=_check_unknown_fields,
    ),
    Cell(
        'wrong types ("id": "7", "cost": 12)',
        "exact",
        injections=(Injection("wrong_types", 1.0, r"^/v1/bookings"),),
        ignore_columns=("raw_json", "cost"),
        extra=_check_wrong_types,
    ),
    Cell(
        "non-UTF-8 body 5 %",
        "exact",
        injections=(Injection("non_utf8", 0.05, LIST_PATHS),),
        fired=_hit("non_utf8"),
    ),
    Cell(
        "non-UTF-8 body always",
        "failure",
        injections=(Injection("non_utf8", 1.0, LIST_PATHS),),
        error=r"not UTF-8",
    ),
]


# -- running a cell ------------------------------------------------------------------------------


def _fast_clock(speed: float) -> Callable[[], float]:
    start = time.time()
    return lambda: start + (time.time() - start) * speed


def _sandbox(seed: int, scale: str | Scale, cell: Cell | None = None) -> Sandbox:
    if cell is None:
        return Sandbox(SandboxConfig(seed=seed, scale=scale))
    return Sandbox(
        SandboxConfig(
            seed=seed,
            scale=scale,
            list_shape=cell.list_shape,
            faults=cell.faults,
            token_lifetime_s=cell.token_lifetime_s,
            clock=_fast_clock(cell.clock_speed),
            clients={SANDBOX_CLIENT_ID: ClientApp(SANDBOX_CLIENT_SECRET, cell.scopes)},
        )
    )


def materialize(base_url: str, data_dir: Path) -> tuple[dg.ExecuteInProcessResult, int]:
    """All raw assets, in process, against ``base_url``; returns the result and its retries."""
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        RAW_ASSETS,
        instance=instance,
        raise_on_error=False,
        resources={
            "calira": CaliraApiResource(
                base_url=base_url + "/v1",
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                data_dir=str(data_dir),
            ),
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
        },
    )
    # Published collections report every retry cause (401 refreshes too) in their metadata;
    # failed ones only in the log, whose retry lines name the request.
    metadata = _metadata(result)
    finished = {c for c in COLLECTIONS if COLLECTION_TABLES[c][0] in metadata}
    retries = sum(int(metadata[COLLECTION_TABLES[c][0]]["fetch/retries"]) for c in finished)
    retries += sum(
        1
        for e in instance.all_logs(result.run_id)
        if _RETRY_LINE.search(e.user_message or "")
        and _collection_of_request(e.user_message or "") not in finished
    )
    return result, retries


def _collection_of_request(line: str) -> str:
    """The collection a logged request belongs to: ``calira: GET /v1/groups?… got …``."""
    path = line.split(" got ", 1)[0]
    for marker, collection in (
        ("/projects", "projects"),
        ("/groups", "groups"),
        ("/equipment", "equipment"),
        ("/bookings", "bookings"),
        ("/me", "current_user"),
    ):
        if marker in path:
            return collection
    return "accounts"


def _error_text(error: Any) -> str:
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause or error.context
    return "\n".join(parts)


def _failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Failed collections: the raw step's failure names each on a line of its own."""
    failed = {}
    for event in result.all_events:
        if event.is_step_failure and event.step_key:
            text = _error_text(event.step_failure_data.error)
            if "DagsterAssetCheckFailedError" in text.split("\n", 1)[0]:
                continue  # a blocking raw check on published data, not a failed collection
            for line in text.splitlines():
                collection = line.split("Failure: ", 1)[-1].split(": ", 1)[0]
                if collection in COLLECTION_TABLES:
                    failed[collection] = text
    return failed


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    found = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        found[mat.asset_key.path[-1]] = {k: v.value for k, v in mat.metadata.items()}
    return found


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after a good run of seed 0 (copied per cell: same bytes, same PII salt)."""
    data_dir = tmp_path_factory.mktemp("baseline") / "data"
    sb = _sandbox(BASELINE_SEED, "tiny")
    with sb.serve_in_thread() as base_url:
        result, _ = materialize(base_url, data_dir)
    assert result.success
    return data_dir


_REFERENCES: dict[tuple[Any, ...], dict[str, TableState]] = {}


def reference(
    baseline: Path, tmp_path: Path, scale: str | Scale, shape: str
) -> dict[str, TableState]:
    """What a fault-free run of the faulty sandbox's data writes (cached per data shape)."""
    key = (scale, shape)
    if key not in _REFERENCES:
        data_dir = tmp_path / "reference"
        shutil.copytree(baseline, data_dir)
        sb = Sandbox(SandboxConfig(seed=FAULTY_SEED, scale=scale, list_shape=shape))  # type: ignore[arg-type]
        with sb.serve_in_thread() as base_url:
            result, _ = materialize(base_url, data_dir)
        assert result.success, _failures(result)
        _REFERENCES[key] = snapshot(data_dir)
    return _REFERENCES[key]


def expected_keys(
    cell: Cell, obs: Observation, before: dict[str, set[Key]]
) -> dict[str, tuple[set[Key], set[Key]]]:
    """Per table: keys that must be present, and keys that may be present."""
    after = truth_keys(obs.sb)
    bounds = {t: (after[t], after[t]) for t in after}
    if obs.sb.inserted_booking_ids:  # new bookings may or may not be caught; no old one lost
        bounds["bookings"] = (before["bookings"], after["bookings"])
    if obs.deletion is not None:
        victim = {(obs.deletion.victim_id,)}
        remaining = before["bookings"] - victim
        # Full lists carry everything, so a record read before its deletion may stay; a slim
        # list needs the detail, which is 404 by then, so the record must be dropped.
        bounds["bookings"] = (
            remaining,
            remaining if cell.list_shape == "slim" else before["bookings"],
        )
    return bounds


def judge(
    cell: Cell,
    obs: Observation,
    ref: dict[str, TableState],
    bounds: dict[str, tuple[set[Key], set[Key]]],
) -> tuple[str, list[str]]:
    """The observed outcome label and every problem found (data first, then messages)."""
    data: list[str] = []
    messages: list[str] = []
    for collection in COLLECTIONS:
        tables = COLLECTION_TABLES[collection]
        if collection in obs.failures:
            text = obs.failures[collection]
            named = rf"GET /v1/\S+|\b{collection}: "
            for what, pattern in (("endpoint", named), ("problem", cell.error), ("fix", FIX)):
                if pattern and not re.search(pattern, text):
                    messages.append(
                        f"{collection}: error names no {what} /{pattern}/: {text[-400:]!r}"
                    )
            for table in tables:
                was, now = obs.before[table], obs.after[table]
                if now.parquet_sha256 != was.parquet_sha256 or now.duckdb_rows != was.duckdb_rows:
                    data.append(f"{table}: changed although its run failed")
            continue
        for table in tables:
            now, (must, may) = obs.after[table], bounds[table]
            keys = set(now.parquet_rows)
            if now.parquet_count != len(keys) or now.duckdb_count != len(now.duckdb_rows):
                data.append(f"{table}: duplicate keys")
            if set(now.duckdb_rows) != keys:
                data.append(f"{table}: DuckDB and Parquet hold different keys")
            if not must <= keys <= may:
                data.append(
                    f"{table}: missing {sorted(must - keys)[:3]} "
                    f"unexpected {sorted(keys - may)[:3]}"
                )
            for got, want in (
                (now.parquet_rows, ref[table].parquet_rows),
                (now.duckdb_rows, ref[table].duckdb_rows),
            ):
                shared = {k: want[k] for k in got.keys() & want.keys()}
                diff = differences(
                    {k: got[k] for k in shared}, shared, lambda c: c in cell.ignore_columns
                )
                data += [f"{table}: {d}" for d in diff]
    failing = sorted(obs.failures)
    if not failing:
        label = "exact"
    elif set(failing) >= set(FETCHING):
        label = "failure (tables intact)"
    else:
        label = f"exact; {'+'.join(failing)}: failure"
    if data:
        label = f"{label} BUT DATA WRONG"
    elif messages:
        label = f"{label}, unclear error"
    return label, data + messages


def run_cell(cell: Cell, baseline: Path, tmp_path: Path) -> tuple[Observation, str, list[str]]:
    data_dir = tmp_path / "data"
    shutil.copytree(baseline, data_dir)
    ref = reference(baseline, tmp_path, cell.scale, cell.list_shape)
    sb = _sandbox(FAULTY_SEED, cell.scale, cell)
    keys_before = truth_keys(sb)
    deletion = DeleteDuringPaging(sb.app, sb) if cell.delete_during_paging else None
    proxy = FaultProxy(
        deletion or sb.app, list(cell.injections), seed=7, clamp_per_page=cell.clamp_per_page
    )
    before = snapshot(data_dir)
    with serve_in_thread(proxy) as base_url:
        result, retries = materialize(base_url, data_dir)
    obs = Observation(
        sb,
        proxy,
        deletion,
        result,
        _failures(result),
        _metadata(result),
        retries,
        before,
        snapshot(data_dir),
    )
    label, problems = judge(cell, obs, ref, expected_keys(cell, obs, keys_before))
    MATRIX.append((cell.id, cell.expected_label, label, proxy.requests, retries))
    return obs, label, problems


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_fault_cell(cell: Cell, baseline: Path, tmp_path: Path) -> None:
    obs, label, problems = run_cell(cell, baseline, tmp_path)
    assert cell.fired(obs), f"the fault of {cell.id!r} never fired"
    assert set(obs.failures) == set(cell.failing_collections), obs.failures
    assert label == cell.expected_label, problems
    assert not problems
    if cell.expect == "exact":
        # Same outcome for a re-run of the same data: nothing was left half-done.
        assert set(obs.metadata) >= {
            t
            for c in COLLECTIONS
            if c not in cell.failing_collections
            for t in COLLECTION_TABLES[c]
        }
    cell.extra(obs)


# -- between runs: the list order changes under the hourly incremental refresh ---------------------


def _incremental_bookings(base_url: str, data_dir: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        RAW_ASSETS,
        selection=["bookings"],
        raise_on_error=False,
        resources={
            "calira": CaliraApiResource(
                base_url=base_url + "/v1",
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                data_dir=str(data_dir),
            ),
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
        },
        run_config={"ops": {"fetch_calira": {"config": {"mode": "incremental"}}}},
    )


@pytest.mark.parametrize(
    "flip", [("newest", "oldest"), ("oldest", "shuffled"), ("oldest", "newest")]
)
def test_list_order_flips_between_runs(tmp_path: Path, flip: tuple[str, str]) -> None:
    """A full read of one order, then new bookings and the other order by the hourly run: the
    incremental walk finds which end is newest again and loads exactly the new bookings."""
    first, then = flip
    sb = Sandbox(SandboxConfig(seed=FAULTY_SEED, scale="tiny", list_order=first))  # type: ignore[arg-type]
    proxy = FaultProxy(sb.app)
    data_dir = tmp_path / "data"
    with serve_in_thread(proxy) as base_url:
        full, _ = materialize(base_url, data_dir)
        assert full.success, _failures(full)
        before = snapshot(data_dir, ["bookings"])["bookings"]
        sb.list_order = then  # type: ignore[assignment]
        new_ids = sb.add_bookings(7)
        requests_before = proxy.requests
        result = _incremental_bookings(base_url, data_dir)
    after = snapshot(data_dir, ["bookings"])["bookings"]
    keys = set(after.parquet_rows)
    exact = (
        result.success
        and keys == truth_keys(sb)["bookings"]
        and after.parquet_count == len(keys) == after.duckdb_count
        and keys - set(before.parquet_rows) == {(i,) for i in new_ids}
        and all(after.parquet_rows[k] == row for k, row in before.parquet_rows.items())
    )
    label = "exact" if exact else "DATA WRONG"
    cell = f"list order flips between runs ({first} -> {then}, incremental)"
    MATRIX.append((cell, "exact", label, proxy.requests - requests_before, 0))
    assert label == "exact", (sorted(keys ^ truth_keys(sb)["bookings"])[:5], _failures(result))


# -- client-level cells: the resource has no timeout or retry budget field -------------------------


def _client(base_url: str, handler: logging.Handler, **overrides: Any) -> CaliraClient:
    logger = logging.getLogger(f"calira-fault-matrix-{id(handler)}")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    values: dict[str, Any] = {
        "base_url": base_url + "/v1",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
    }
    return CaliraClient(ClientSettings(**{**values, **overrides}), logger=logger)


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += bool(_RETRY_LINE.search(record.getMessage()))


def test_timeouts_on_10_percent_of_requests_are_retried_to_exact_data() -> None:
    sb = _sandbox(FAULTY_SEED, "tiny")
    proxy = FaultProxy(sb.app, [Injection("stall", 0.1, stall_s=1.5)], seed=3)
    counter = _RetryCounter()
    truth = truth_keys(sb)
    with serve_in_thread(proxy) as base_url:
        client = _client(base_url, counter, timeout_s=0.5)
        results = {c: client.fetch(c) for c in FETCHING}
    for collection, result in results.items():
        ids = [(r["id"],) for r in result.rows[collection]]
        assert len(ids) == len(set(ids)) and set(ids) == truth[collection], collection
    timeouts = sum(r.stats.retries_by_cause["timeout"] for r in results.values())
    MATRIX.append(
        ("timeouts 10 % (client, timeout 0.5 s)", "exact", "exact", proxy.requests, counter.retries)
    )
    assert proxy.hits.get("stall", 0) > 0 and timeouts > 0


def test_an_endpoint_that_always_stalls_fails_clearly() -> None:
    sb = _sandbox(FAULTY_SEED, "tiny")
    proxy = FaultProxy(sb.app, [Injection("stall", 1.0, r"^/v1/equipment", stall_s=1.5)])
    counter = _RetryCounter()
    with serve_in_thread(proxy) as base_url:
        client = _client(base_url, counter, timeout_s=0.3, max_retry_wait_s=2)
        accounts = client.fetch("accounts")
        with pytest.raises(CaliraError) as failure:
            client.fetch("equipment")
    message = str(failure.value)
    MATRIX.append(
        ("equipment always stalls (client)", "failure", "failure", proxy.requests, counter.retries)
    )
    assert len(accounts.rows["accounts"]) == len(sb.dataset.accounts)
    assert re.search(r"GET /v1/equipment\S* still failing with timeout error", message), message
    assert re.search(FIX, message), message


def test_persistent_html_5xx_fails_clearly_within_the_retry_budget() -> None:
    sb = _sandbox(FAULTY_SEED, "tiny", Cell("-", "failure", FaultConfig(error_rate=1.0)))
    counter = _RetryCounter()
    proxy = FaultProxy(sb.app)
    with serve_in_thread(proxy) as base_url:
        client = _client(base_url, counter, max_retry_wait_s=1.5)
        with pytest.raises(CaliraError) as failure:
            client.fetch("bookings")
    message = str(failure.value)
    MATRIX.append(
        ("5xx always (client, 1.5 s budget)", "failure", "failure", proxy.requests, counter.retries)
    )
    assert re.search(r"GET /v1/bookings\S* still failing with HTTP 50[023]", message), message
    assert re.search(FIX, message) and counter.retries > 0, message


def test_refresh_token_rotation_under_two_concurrent_processes(tmp_path: Path) -> None:
    """Two processes share one token file while the sandbox rotates refresh tokens: both finish,
    and the file holds the last refresh token the server issued, readable by its owner only."""
    sb = Sandbox(
        SandboxConfig(
            seed=FAULTY_SEED, scale="tiny", token_lifetime_s=1, faults=FaultConfig(latency_ms=10)
        )
    )
    proxy = FaultProxy(sb.app)
    seed_token = sb.issue_refresh_token()
    token_file = tmp_path / "tokens" / "calira-token.json"
    with serve_in_thread(proxy) as base_url:
        command = [
            sys.executable,
            "-m",
            "calira_pipeline_tests.integration.faults_support",
            "rotate",
            base_url,
            str(token_file),
            seed_token,
            "3",
        ]
        procs = [
            subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        loaded = json.loads(out.strip().splitlines()[-1])
        assert loaded == {
            "accounts": len(sb.dataset.accounts),
            "equipment": len(sb.dataset.equipment),
            "bookings": len(sb.dataset.bookings),
            "groups": len(sb.dataset.groups),
            "current_user": 1,
        }
    saved = TokenFileStore(token_file).load()
    rotations = len(proxy.issued_refresh_tokens)
    MATRIX.append(
        (
            "refresh-token rotation, 2 processes",
            "exact",
            "exact",
            proxy.requests,
            sb.stats.count(status=401),
        )
    )
    assert rotations >= 2, "the processes never had to rotate after the first exchange"
    assert saved is not None and saved.refresh_token is not None
    assert saved.refresh_token.reveal() == proxy.issued_refresh_tokens[-1]
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert seed_token not in token_file.read_text()


def test_the_matrix_covers_both_outcomes() -> None:
    outcomes = {c.expect for c in CELLS}
    assert outcomes == {"exact", "failure"}
    assert len({c.id for c in CELLS}) == len(CELLS)
    assert all(c.failing_collections or c.expect == "exact" for c in CELLS)
