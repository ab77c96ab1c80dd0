"""The run contract against older and slimmer API payloads (sandbox shape knobs on loopback).

One run with every knob at once (2022 payloads, so slim account lists and 0.1.3 booking lists;
an oldest-first list order; list/detail disagreements; a lab without a zone and one with a zone
DuckDB does not know), then the hourly job after new bookings under each list order in turn.
Then each knob alone, as small as it can be: full contract runs for the knobs that change the
marts, in-process raw runs for the ones that only change how bookings are read.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from calira_pipeline.marts.specs import MART_SPECS
from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline.sandbox.views import disagrees
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline_tests.integration.conftest import (
    BIN,
    materialize_all_command,
    materialize_bookings,
    pipeline_env,
    run,
)

pytestmark = pytest.mark.integration

DEFAULT_ZONE = "Asia/Tokyo"
RATE = 0.1
_FAILED_CHECK = re.compile(r"Asset check '(\w+)' on '(\w+)' did not pass")


def _hourly_job_command() -> list[str]:
    """The job the hourly schedule runs (``incremental_bookings``), from the command line."""
    return [
        str(BIN / "dagster"),
        "job",
        "execute",
        "-m",
        "calira_pipeline.definitions",
        "-j",
        "incremental_bookings",
    ]


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def _query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "calira.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _assert_every_mart_built(data_dir: Path) -> None:
    # Published tables are views over Parquet (see "Storage layout"); both count.
    tables = {n for (n,) in _query(data_dir, "select table_name from information_schema.tables")}
    assert set(MART_SPECS) | set(RAW_TABLES) <= tables
    for mart in ("booking_facts", "equipment_utilisation_monthly", "booking_cost_monthly"):
        assert _query(data_dir, f"select count(*) from {mart}")[0][0] > 0, mart


def _assert_bookings_exactly_once(data_dir: Path, sandbox: Sandbox) -> dict[int, str]:
    """Every booking the sandbox holds, once; returns status by id."""
    rows = _query(data_dir, "select id, status from bookings")
    truth = {b["id"]: b["status"] for b in sandbox.dataset.bookings}
    assert len(rows) == len(truth)
    assert dict(rows) == truth  # the detail's status wins where the list disagreed
    return truth


def _failed_checks(output: str) -> set[tuple[str, str]]:
    return {(asset, check) for check, asset in _FAILED_CHECK.findall(output)}


def _labs_with_bookings(sandbox: Sandbox) -> list[int]:
    counts: dict[int, int] = {}
    for item in sandbox.dataset.bookings:
        lab = item["provider_lab"]["id"]
        counts[lab] = counts.get(lab, 0) + 1
    return sorted(counts, key=lambda lab: (-counts[lab], lab))


def _break_zones(sandbox: Sandbox) -> tuple[int, int]:
    """One lab loses its zone, another gets a Rails zone name DuckDB does not know."""
    accounts = {a["id"]: a for a in sandbox.dataset.accounts}
    no_zone, rails_zone = _labs_with_bookings(sandbox)[-2:]
    accounts[no_zone]["timezone"] = None
    accounts[rails_zone]["timezone"] = "Eastern Time (US & Canada)"
    return no_zone, rails_zone


def test_every_knob_at_once_then_the_hourly_job_under_each_list_order(tmp_path: Path) -> None:
    sandbox = Sandbox(
        SandboxConfig(
            scale="tiny",
            payload_profile="2022",
            list_order="oldest",
            list_disagreement_rate=RATE,
        )
    )
    broken = _break_zones(sandbox)
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        env = pipeline_env(base_url, data_dir, CALIRA_DEFAULT_TIMEZONE=DEFAULT_ZONE)
        output = _ok(run(materialize_all_command(), env))
        _assert_full_run_of_every_knob(data_dir, sandbox, output, broken)
        for order in ("oldest", "shuffled", "newest"):
            _assert_hourly_job_loads_exactly_the_new_bookings(sandbox, env, data_dir, order)


def _assert_full_run_of_every_knob(
    data_dir: Path, sandbox: Sandbox, output: str, broken: tuple[int, int]
) -> None:
    _assert_every_mart_built(data_dir)
    statuses = _assert_bookings_exactly_once(data_dir, sandbox)
    # Slim account lists: one detail read per account, and every zone as the details say.
    assert sandbox.stats.count(route="/v1/accounts/{id}") == len(sandbox.dataset.accounts)
    zones = dict(_query(data_dir, "select id, timezone from accounts"))
    assert zones == {a["id"]: a["timezone"] for a in sandbox.dataset.accounts}
    # Zones: the broken labs' bookings use the default, are listed, and only WARN.
    facts = _query(
        data_dir,
        "select booking_id, provider_lab_id, booking_timezone, timezone_source, currency, "
        "currency_source from booking_facts",
    )
    lab_zone = {a["id"]: a["timezone"] for a in sandbox.dataset.accounts}
    for _, lab, zone, source, _, _ in facts:
        expected = (DEFAULT_ZONE, "default") if lab in broken else (lab_zone[lab], "provider_lab")
        assert (zone, source) == expected
    issues = _query(
        data_dir,
        "select booking_id, issue from booking_quality_issues "
        "where issue in ('unknown_provider_timezone', 'list_detail_disagreement')",
    )
    by_lab = {booking_id: lab for booking_id, lab, *_ in facts}
    assert {b for b, issue in issues if issue == "unknown_provider_timezone"} == {
        b for b, lab in by_lab.items() if lab in broken
    }
    # Currencies: the 2022 details have none, so every one is the equipment's.
    currency = {e["id"]: e["currency"] for e in sandbox.dataset.equipment}
    equipment_of = {b["id"]: b["equipment"]["id"] for b in sandbox.dataset.bookings}
    assert {(b, c, s) for b, *_, c, s in facts} == {
        (b, currency[equipment_of[b]], "equipment") for b in statuses
    }
    # Disagreements: listed, and the raw JSON keeps what the list said.
    disagreeing = {b for b in statuses if disagrees(b, RATE)}
    assert disagreeing and {b for b, i in issues if i == "list_detail_disagreement"} == disagreeing
    kept = _query(data_dir, "select count(*) from bookings where raw_json like '%_list_values%'")
    assert kept[0][0] == len(disagreeing)
    assert _failed_checks(output) == {("accounts", "lab_has_timezone")}


def _assert_hourly_job_loads_exactly_the_new_bookings(
    sandbox: Sandbox, env: dict[str, str], data_dir: Path, order: str
) -> None:
    sandbox.list_order = order  # type: ignore[assignment]
    before = _query(data_dir, "select * exclude (raw_json) from bookings order by id")
    new_ids = sandbox.add_bookings(4)
    sandbox.stats.reset()
    _ok(run(_hourly_job_command(), env))
    after = _query(data_dir, "select * exclude (raw_json) from bookings order by id")
    assert [row[0] for row in after] == sorted([row[0] for row in before] + new_ids), order
    assert [row for row in after if row[0] not in new_ids] == before, order  # untouched
    # Details for exactly the new bookings: the disagreeing ones are not re-read every hour.
    assert sandbox.stats.count(route="/v1/bookings/{id}") == len(new_ids), order
    _assert_bookings_exactly_once(data_dir, sandbox)


def test_slim_account_list_alone(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", account_list="slim"))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        output = _ok(run(materialize_all_command(), pipeline_env(base_url, data_dir)))
    _assert_every_mart_built(data_dir)
    _assert_bookings_exactly_once(data_dir, sandbox)
    assert sandbox.stats.count(route="/v1/accounts/{id}") == len(sandbox.dataset.accounts)
    assert sandbox.stats.count(route="/v1/bookings/{id}") == 0  # the booking list is full
    sources = _query(data_dir, "select distinct timezone_source from booking_facts")
    assert sources == [("provider_lab",)]
    assert _failed_checks(output) == set()


def test_2022_payloads_alone(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", payload_profile="2022"))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        output = _ok(run(materialize_all_command(), pipeline_env(base_url, data_dir)))
    _assert_every_mart_built(data_dir)
    _assert_bookings_exactly_once(data_dir, sandbox)
    assert sandbox.stats.count(route="/v1/bookings/{id}") == len(sandbox.dataset.bookings)
    filled = _query(
        data_dir,
        "select count(*), count(start_utc), count(currency), count(*) filter "
        "(currency_source = 'equipment'), count(*) filter (timezone_source = 'provider_lab') "
        "from booking_facts",
    )
    total = len(sandbox.dataset.bookings)
    assert filled == [(total, total, total, total, total)]
    null_currency = _query(
        data_dir, "select count(*) from booking_cost_monthly where currency is null"
    )
    assert null_currency == [(0,)]
    assert _failed_checks(output) == set()


# -- knobs that only change how bookings are read: in-process raw runs ------------------------




def _bookings_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("bookings")
    ]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


@pytest.mark.parametrize("order", ["newest", "oldest", "shuffled"])
def test_list_order_alone_full_then_incremental(tmp_path: Path, order: str) -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", list_order=order))  # type: ignore[arg-type]
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        assert materialize_bookings(base_url, data_dir, "full").success
        _assert_bookings_exactly_once(data_dir, sandbox)
        new_ids = sandbox.add_bookings(3)
        sandbox.stats.reset()
        result = materialize_bookings(base_url, data_dir, "incremental")
    assert result.success
    meta = _bookings_metadata(result)
    assert meta["new_or_changed_rows"] == len(new_ids)
    _assert_bookings_exactly_once(data_dir, sandbox)
    assert sandbox.stats.count(route="/v1/bookings/{id}") == 0  # full lists: no detail reads
    expected_order = {"newest": "newest_first", "oldest": "oldest_first", "shuffled": "unknown"}
    assert meta["incremental/list_order"] == expected_order[order]
    if order == "shuffled":
        assert meta["incremental/stop_reason"] == "full_read_order_unknown"


def test_list_detail_disagreements_alone(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", list_shape="slim", list_disagreement_rate=RATE))
    data_dir = tmp_path / "data"
    with sandbox.serve_in_thread() as base_url:
        result = materialize_bookings(base_url, data_dir, "full")
    assert result.success
    statuses = _assert_bookings_exactly_once(data_dir, sandbox)
    disagreeing = {b for b in statuses if disagrees(b, RATE)}
    assert _bookings_metadata(result)["fetch/list_detail_disagreements"] == len(disagreeing)
    kept = _query(
        data_dir,
        "select id, status, raw_json::json->'_list_values'->>'status' from bookings "
        "where list_detail_fields = 'status'",
    )
    assert {b for b, *_ in kept} == disagreeing
    assert all(listed in ("Completed", "Booked") and listed != status for _, status, listed in kept)
    warnings = _bookings_metadata(result)["warnings"]
    assert any("disagree on status" in w for w in warnings)
