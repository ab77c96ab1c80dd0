"""Hourly incremental refresh of bookings against the 50k-booking sandbox on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline_tests.integration.conftest import materialize_bookings

pytestmark = [pytest.mark.integration, pytest.mark.slow]




def _bookings(data_dir: Path) -> Any:
    return pq.read_table(data_dir / "parquet" / "bookings.parquet").replace_schema_metadata(None)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("bookings")
    ]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


@pytest.mark.parametrize(
    ("scale", "shape"),
    [("medium", "full"), ("tiny", "slim")],
    ids=["50k-bookings-full-list", "slim-list-details-only-for-new"],
)
def test_incremental_reads_a_fraction_and_matches_a_full_refresh(
    tmp_path: Path, scale: str, shape: str
) -> None:
    sandbox = Sandbox(SandboxConfig(seed=0, scale=scale, list_shape=shape))
    if scale == "medium":
        assert len(sandbox.dataset.bookings) >= 50_000
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        assert materialize_bookings(base_url, data_dir, "full").success
        full_requests = sandbox.stats.total
        after_full = _bookings(data_dir)

        sandbox.stats.reset()
        quiet = materialize_bookings(base_url, data_dir, "incremental")
        assert quiet.success
        assert sandbox.stats.total <= 0.10 * full_requests or scale == "tiny"
        assert _metadata(quiet)["new_or_changed_rows"] == 0
        assert _bookings(data_dir).equals(after_full)

        new_ids = sandbox.add_bookings(150 if scale == "medium" else 30)
        sandbox.stats.reset()
        busy = materialize_bookings(base_url, data_dir, "incremental")
        assert busy.success
        incremental_requests = sandbox.stats.total
        assert incremental_requests <= 0.10 * full_requests or scale == "tiny"
        assert _metadata(busy)["new_or_changed_rows"] == len(new_ids)
        # Details are fetched for exactly the new bookings, and only when the list is slim.
        expected_details = len(new_ids) if shape == "slim" else 0
        assert sandbox.stats.count(route="/v1/bookings/{id}") == expected_details
        after_incremental = _bookings(data_dir)

        assert materialize_bookings(base_url, data_dir, "full").success
    assert after_incremental.equals(_bookings(data_dir))
    assert set(new_ids) <= set(after_incremental.column("id").to_pylist())
