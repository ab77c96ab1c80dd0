"""Streaming ingestion: bounded batches, one concurrent step with one request budget, subsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest

from calira_pipeline.api import CaliraClient, ClientSettings
from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.ingest.staging import StagedTableWriter
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.sandbox.config import FaultConfig
from calira_pipeline.storage import Warehouse, rows_to_arrow
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.wiring.raw import RAW_ASSETS
from calira_pipeline.wiring.resources import WarehouseResource
from calira_pipeline.wiring.sandbox_source import (
    SANDBOX_BASE_URL,
    SandboxApiResource,
    sandbox_for,
)

CONCURRENCY = 4


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on and records, per collection, how many were in flight together."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight: Counter[str] = Counter()
        self.peak_total = 0
        self.overlapping = 0  # requests sent while another collection had one in flight
        self.sent: Counter[str] = Counter()
        self.order: list[str] = []  # collection of each request, in the order sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        collection = request.url.path.split("/")[2] if request.url.path.count("/") > 1 else ""
        if any(n for c, n in self.in_flight.items() if c != collection):
            self.overlapping += 1
        self.in_flight[collection] += 1
        self.sent[collection] += 1
        self.order.append(collection)
        self.peak_total = max(self.peak_total, sum(self.in_flight.values()))
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight[collection] -= 1


def _client(transport: httpx.AsyncBaseTransport, concurrency: int = CONCURRENCY) -> CaliraClient:
    settings = ClientSettings(
        base_url=SANDBOX_BASE_URL,
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        concurrency=concurrency,
        per_page=50,
    )
    return CaliraClient(settings, transport=transport)


def _policy(tmp_path: Path) -> PiiPolicy:
    return PiiPolicy.for_data_dir("hash", tmp_path)


def test_a_collection_far_larger_than_a_batch_is_written_in_bounded_batches(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(SandboxConfig(scale="small", seed=3))
    batch = 100
    writer = StagedTableWriter(RAW_TABLES["bookings"], tmp_path, _policy(tmp_path), batch)
    fetched = _client(sandbox.transport()).fetch_streaming({"bookings": {"bookings": writer}})
    staged = pq.read_table(writer.finish())

    total = len(sandbox.dataset.bookings)
    assert total >= 15 * batch  # far more than one batch
    assert writer.max_buffered_rows <= batch
    assert staged.num_rows == total == fetched.results["bookings"].stats.records
    # Typed, masked and sorted exactly as the whole-table path writes them.
    listed = _client(sandbox.transport()).fetch("bookings").rows["bookings"]
    whole = rows_to_arrow(RAW_TABLES["bookings"], _policy(tmp_path).apply("bookings", listed))
    assert staged.schema.equals(RAW_TABLES["bookings"].arrow_schema)
    assert staged.equals(whole)


@pytest.mark.parametrize(
    ("collection", "table", "range_rows"),
    [("bookings", "bookings", 150), ("groups", "group_equipment", 6)],
)
def test_a_table_larger_than_a_sort_range_is_sorted_one_key_range_at_a_time(
    tmp_path: Path, collection: str, table: str, range_rows: int
) -> None:
    # group_equipment's key is (group_id, equipment_id): ranges cut on group_id keep ties together.
    sandbox = Sandbox(SandboxConfig(scale="small", seed=6))
    batch = range_rows // 3
    writers = {
        t: StagedTableWriter(RAW_TABLES[t], tmp_path, _policy(tmp_path), batch, range_rows)
        for t in COLLECTION_TABLES[collection]
    }
    _client(sandbox.transport()).fetch_streaming({collection: writers})
    path = writers[table].finish()

    listed = _client(sandbox.transport()).fetch(collection).rows[table]
    whole = rows_to_arrow(RAW_TABLES[table], _policy(tmp_path).apply(table, listed))
    assert whole.num_rows > 4 * range_rows  # several ranges
    assert pq.read_table(path).equals(whole)  # every row once, sorted by the whole key, typed
    groups = pq.ParquetFile(path).metadata
    sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
    first_key = whole.column(RAW_TABLES[table].primary_key[0]).to_pylist()
    ties = max(Counter(first_key).values())
    assert len(sizes) >= whole.num_rows // (2 * range_rows + ties)  # a row group per range...
    assert max(sizes) <= 2 * range_rows + ties  # ...and no range much larger than asked


def test_two_collections_fetched_together_share_one_request_budget(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(scale="small", seed=4, faults=FaultConfig(latency_ms=5)))
    recording = RecordingTransport(sandbox.transport())
    sinks: dict[str, Any] = {"bookings": {"bookings": []}, "equipment": {"equipment": []}}
    results = _client(recording).fetch_streaming(sinks).results

    assert len(sinks["bookings"]["bookings"]) == len(sandbox.dataset.bookings)
    assert len(sinks["equipment"]["equipment"]) == len(sandbox.dataset.equipment)
    assert results["bookings"].stats.pages >= 2 and results["equipment"].stats.pages >= 2
    # Both collections' requests interleave and were in flight together...
    order = recording.order
    first = {c: order.index(c) for c in ("bookings", "equipment")}
    last = {c: len(order) - 1 - order[::-1].index(c) for c in ("bookings", "equipment")}
    assert first["equipment"] < last["bookings"] and first["bookings"] < last["equipment"]
    assert recording.overlapping >= 1
    # ...yet never more than CALIRA_CONCURRENCY in all, as the API itself saw it.
    assert recording.peak_total <= CONCURRENCY
    assert sandbox.stats.peak_concurrency <= CONCURRENCY
    assert sandbox.stats.peak_concurrency == CONCURRENCY  # and the budget was used


def test_the_shared_budget_is_the_limit_not_one_per_collection() -> None:
    sandbox = Sandbox(SandboxConfig(scale="small", seed=5, faults=FaultConfig(latency_ms=5)))
    sinks: dict[str, Any] = {c: {c: []} for c in ("bookings", "equipment", "accounts")}
    _client(sandbox.transport(), concurrency=2).fetch_streaming(sinks)
    assert sandbox.stats.peak_concurrency == 2


def _materialize(data_dir: Path, selection: list[str]) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        RAW_ASSETS,
        selection=selection,
        resources={
            "calira": SandboxApiResource(data_dir=str(data_dir), sandbox_scale="tiny"),
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
        },
    )


def test_materialising_bookings_alone_reads_only_the_bookings_endpoint(tmp_path: Path) -> None:
    sandbox = sandbox_for("tiny", 0)  # the resource's own sandbox (cached per scale and seed)
    sandbox.stats.reset()
    result = _materialize(tmp_path, ["bookings"])

    assert result.success
    routes = {route for (route, _status) in sandbox.stats.by_route_status}
    assert routes <= {"/oauth/token", "/v1/bookings", "/v1/bookings/{booking_id}"}, routes
    assert "/v1/bookings" in routes
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        "bookings"
    ]
    assert set(Warehouse(tmp_path).table_files()) == {"bookings"}
    checks = {e.asset_check_key.name for e in result.get_asset_check_evaluations()}
    assert "loaded_count_matches_api_total" in checks
    assert "end_after_start" in checks  # a raw check, evaluated in the same step
    # Staged in an incoming folder, published from it by rename; the folder is gone after the run.
    assert list((tmp_path / "incoming").iterdir()) == []


def test_a_group_run_publishes_every_table_in_one_commit(tmp_path: Path) -> None:
    result = _materialize(tmp_path, [t for t in RAW_TABLES])
    assert result.success
    store = Warehouse(tmp_path)
    generations = {path.parent.name for files in store.table_files().values() for path in files}
    assert len(generations) == 1
    assert set(store.table_files()) == set(RAW_TABLES)


@pytest.mark.parametrize("selection", [["groups"], ["group_equipment"]])
def test_one_table_of_a_multi_table_collection_is_published_alone(
    tmp_path: Path, selection: list[str]
) -> None:
    result = _materialize(tmp_path, selection)
    assert result.success
    assert set(Warehouse(tmp_path).table_files()) == set(selection)
