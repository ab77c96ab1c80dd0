"""Tenant-partitioned runs in process: two loopback sandboxes as two tenants, one shared store.

The same assets as the single-organisation location, partitioned by tenant; each run's
credentials come from the tenant's entry; consortium rollups sum the tenants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import pytest

from calira_pipeline.api.tenants import load_registry
from calira_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.storage.tenant_store import TenantStore
from calira_pipeline.wiring.mart_config import MartConfigResource
from calira_pipeline.wiring.tenant_defs import tenant_definitions
from calira_pipeline.wiring.tenant_resources import TenantApiResource, TenantWarehouseResource
from calira_pipeline_tests.scaleout.rollups import counted_cost_per_tenant

SEEDS = {"alpha": 11, "beta": 12}


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[str, tuple[Sandbox, str]]]:
    with ExitStack() as stack:
        served = {}
        for key, seed in SEEDS.items():
            sandbox = Sandbox(SandboxConfig(seed=seed, scale="tiny"))
            served[key] = (sandbox, stack.enter_context(sandbox.serve_in_thread()))
        yield served


def registry_text(urls: dict[str, str]) -> str:
    lines = ["tenants:"]
    for key, url in urls.items():
        lines += [
            f"  - key: {key}",
            f"    base_url: {url}/v1",
            "    auth: client_credentials",
            f"    secrets: {{client_id: CALIRA_T_{key.upper()}_ID, "
            f"client_secret: CALIRA_T_{key.upper()}_SECRET}}",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def tenant_location(
    root: Path, sandboxes: dict[str, tuple[Sandbox, str]]
) -> Iterator[dg.Definitions]:
    """The tenant code location over `sandboxes`, with the tenants' secret variables set."""
    registry_file = root / "tenants.yaml"
    registry_file.write_text(registry_text({k: url for k, (_, url) in sandboxes.items()}))
    with pytest.MonkeyPatch.context() as env:
        for key in SEEDS:
            env.setenv(f"CALIRA_T_{key.upper()}_ID", SANDBOX_CLIENT_ID)
            env.setenv(f"CALIRA_T_{key.upper()}_SECRET", SANDBOX_CLIENT_SECRET)
        yield tenant_definitions(
            load_registry(registry_file),
            ALL_ASSETS,
            ALL_CHECKS,
            resources={
                "calira": TenantApiResource(
                    tenants_file=str(registry_file), data_dir=str(root / "work")
                ),
                "warehouse": TenantWarehouseResource(
                    store_root=str(root / "shared"), data_dir=str(root / "work")
                ),
                "mart_config": MartConfigResource(),
            },
            sensors=[],
        )


@pytest.fixture(scope="module")
def tenant_runs(
    sandboxes: dict[str, tuple[Sandbox, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TenantStore, dict[str, dg.ExecuteInProcessResult], dg.Definitions]:
    root = tmp_path_factory.mktemp("tenants")
    with tenant_location(root, sandboxes) as defs:
        job = defs.resolve_job_def("tenant_refresh")
        results = {key: job.execute_in_process(partition_key=key) for key in SEEDS}
        rollups = defs.resolve_job_def("consortium_rollups").execute_in_process()
    assert rollups.success
    return TenantStore(str(root / "shared")), results, defs


def test_each_tenant_run_reads_its_own_api_and_stores_its_own_records(
    sandboxes: dict[str, tuple[Sandbox, str]],
    tenant_runs: tuple[TenantStore, dict[str, dg.ExecuteInProcessResult], dg.Definitions],
) -> None:
    store, results, _ = tenant_runs
    assert all(result.success for result in results.values())
    assert store.tenants() == sorted(SEEDS)
    for key, (sandbox, _) in sandboxes.items():
        expected = sorted(int(b["id"]) for b in sandbox.dataset.bookings)
        with store.connect(tenant=key) as con:
            stored = [r[0] for r in con.sql("select id from bookings order by id").fetchall()]
            tenants = con.sql("select distinct tenant from booking_facts").fetchall()
        assert stored == expected
        assert tenants == [(key,)]
        source = results[key].asset_materializations_for_node("fetch_calira")[0].metadata
        assert source["data_source"].value.startswith(f"{key}@127.0.0.1:")


def test_consortium_rollups_equal_the_sum_of_the_tenants(
    tenant_runs: tuple[TenantStore, dict[str, dg.ExecuteInProcessResult], dg.Definitions],
) -> None:
    store, _, _ = tenant_runs
    per_tenant = counted_cost_per_tenant(store, SEEDS)
    with store.connect() as con:
        rollup = dict(
            ((t, c), v)
            for t, c, v in con.sql(
                "select tenant, currency, sum(counted_cost) from "
                "consortium_cost_by_tenant_currency group by all"
            ).fetchall()
        )
        org_hours = con.sql(
            "select tenant, sum(booked_hours) from consortium_utilisation_by_organisation "
            "group by all order by 1"
        ).fetchall()
    assert rollup == per_tenant and len({t for t, _ in rollup}) == len(SEEDS)
    for key, hours in org_hours:
        with store.connect(tenant=key) as con:
            row = con.sql(
                "select sum(booked_hours) from organisation_utilisation_monthly"
            ).fetchone()
        assert row is not None and hours == pytest.approx(row[0], rel=1e-12)


def test_every_tenant_asset_is_partitioned_and_the_rollups_are_not(
    tenant_runs: tuple[TenantStore, dict[str, dg.ExecuteInProcessResult], dg.Definitions],
) -> None:
    _, _, defs = tenant_runs
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        if key.to_user_string().startswith("consortium_"):
            assert partitions is None
        else:
            assert partitions is not None and partitions.get_partition_keys() == sorted(SEEDS)


def test_the_run_for_an_unknown_tenant_names_the_registry(tmp_path: Path) -> None:
    registry_file = tmp_path / "tenants.yaml"
    registry_file.write_text(registry_text({"alpha": "http://127.0.0.1:9"}))
    resource = TenantApiResource(tenants_file=str(registry_file), data_dir=str(tmp_path))
    with pytest.raises(Exception, match="this run has no tenant"):
        resource.settings()


def test_a_tenants_report_names_its_own_source_after_another_tenant_loaded(
    sandboxes: dict[str, tuple[Sandbox, str]], tmp_path: Path
) -> None:
    # One instance for every run, as on the cluster: beta's bookings are the asset's latest
    # materialisation when alpha's report is built.
    with tenant_location(tmp_path, sandboxes) as defs, dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def("tenant_refresh")
        assert job.execute_in_process(partition_key="alpha", instance=instance).success
        assert job.execute_in_process(partition_key="beta", instance=instance).success
        report = job.execute_in_process(
            partition_key="alpha",
            instance=instance,
            asset_selection=[dg.AssetKey("facility_report")],
        )
    assert report.success
    metadata = report.asset_materializations_for_node("facility_report")[0].metadata
    assert metadata["data_source"].value.startswith("alpha@127.0.0.1:")
