"""Older and slimmer payloads: the client against the in-process sandbox's shape knobs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from calira_pipeline.api import CaliraClient, ClientSettings
from calira_pipeline.api.merge import LIST_VALUES_KEY, merge_detail, same_value
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.sandbox.views import disagrees
from calira_pipeline.wiring.sandbox_source import SANDBOX_BASE_URL
from calira_pipeline_tests.sandbox.in_process import InProcessClient


def _client(sandbox: Sandbox) -> CaliraClient:
    settings = ClientSettings(
        base_url=SANDBOX_BASE_URL, client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET
    )
    return CaliraClient(settings, transport=sandbox.transport())


def _parsed(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@pytest.mark.parametrize("account_list", ["full", "slim"])
def test_account_details_are_read_only_when_the_list_is_slim(account_list: str) -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", account_list=account_list))  # type: ignore[arg-type]
    result = _client(sandbox).fetch("accounts")
    truth = {a["id"]: a for a in sandbox.dataset.accounts}
    rows = {r["id"]: r for r in result.rows["accounts"]}
    assert rows.keys() == truth.keys()
    for account_id, row in rows.items():
        expected = truth[account_id]
        assert row["timezone"] == expected["timezone"] and row["sector"] == expected["sector"]
        assert row["department_id"] == (expected["department"] or {}).get("id")
        assert row["organisation_id"] == (expected["organisation"] or {}).get("id")
    details = sandbox.stats.count(route="/v1/accounts/{id}")
    assert details == result.stats.detail_requests
    assert details == (len(truth) if account_list == "slim" else 0)


def test_2022_bookings_take_times_from_the_list_and_everything_else_from_the_detail() -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", payload_profile="2022"))
    result = _client(sandbox).fetch("bookings")
    truth = {b["id"]: b for b in sandbox.dataset.bookings}
    rows = result.rows["bookings"]
    assert sorted(r["id"] for r in rows) == sorted(truth)
    assert sandbox.stats.count(route="/v1/bookings/{id}") == len(truth)
    for row in rows:
        expected = truth[row["id"]]
        assert row["start_time"] == _parsed(expected["start_time"])
        assert row["end_time"] == _parsed(expected["end_time"])
        assert row["cost"] is not None and row["provider_lab_id"] == expected["provider_lab"]["id"]
        assert row["currency"] is None and row["creator_id"] is None  # the 2022 detail lacks them
        assert row["list_detail_fields"] is None


def test_a_disagreeing_list_keeps_the_detail_in_columns_and_both_in_raw_json() -> None:
    rate = 0.2
    sandbox = Sandbox(SandboxConfig(scale="tiny", list_shape="slim", list_disagreement_rate=rate))
    result = _client(sandbox).fetch("bookings")
    truth = {b["id"]: b for b in sandbox.dataset.bookings}
    disagreeing = {i for i in truth if disagrees(i, rate)}
    assert 10 < len(disagreeing) < len(truth)
    assert result.stats.list_detail_disagreements == len(disagreeing)
    assert result.stats.as_metadata()["list_detail_disagreements"] == len(disagreeing)
    for row in result.rows["bookings"]:
        assert row["status"] == truth[row["id"]]["status"]
        raw = json.loads(row["raw_json"])
        if row["id"] in disagreeing:
            assert row["list_detail_fields"] == "status"
            listed = raw[LIST_VALUES_KEY]["status"]
            assert listed != row["status"] and listed in ("Completed", "Booked")
        else:
            assert row["list_detail_fields"] is None and LIST_VALUES_KEY not in raw
    assert result.unknown_fields == {}
    named = [w for w in result.warnings if "disagree on status" in w]
    assert 0 < len(named) <= 10  # examples only; the count is in the metadata


def test_a_full_list_that_disagrees_with_unread_details_costs_no_detail_request() -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", list_disagreement_rate=0.2))
    result = _client(sandbox).fetch("bookings")
    assert sandbox.stats.count(route="/v1/bookings/{id}") == 0
    assert result.stats.list_detail_disagreements == 0


@pytest.mark.parametrize(
    ("listed", "detail", "same"),
    [
        ("2022-03-29T09:45:00.000+01:00", "2022-03-29T08:45:00Z", True),
        ("2022-03-29T09:45:00+01:00", "2022-03-29T09:45:00Z", False),
        ("150.00", 150, True),
        ("150.00", "150.5", False),
        ({"id": 3, "name": "Lab"}, {"id": 3, "name": "Lab", "email": "x"}, True),
        ({"id": 3}, {"id": 4}, False),
        ("Completed", "Booked", False),
        ("Completed", "completed", False),
        (True, "true", False),
    ],
)
def test_same_value_accepts_only_respellings(listed: Any, detail: Any, same: bool) -> None:
    assert same_value(listed, detail) is same


def test_merge_detail_keeps_list_only_fields_and_ignores_list_nulls() -> None:
    listed = {"id": 7, "start_time": "2022-01-01T10:00:00Z", "status": "Completed", "note": None}
    detail = {"status": "Booked", "note": "x", "cost": "0.0"}
    merged, differences = merge_detail(listed, detail)
    assert differences == {"status": "Completed"}
    assert merged == {
        "id": 7,
        "start_time": "2022-01-01T10:00:00Z",
        "status": "Booked",
        "note": "x",
        "cost": "0.0",
        LIST_VALUES_KEY: {"status": "Completed"},
    }


def _listed_ids(sandbox: Sandbox, path: str) -> list[int]:
    http = InProcessClient(sandbox, sandbox.issue_access_token())
    ids: list[int] = []
    for page in range(1, 100):
        response = http.get(f"/v1/{path}", params={"page": page, "per_page": 37})
        assert response.status_code == 200
        items = response.json()
        if not items:
            return ids
        ids += [item["id"] for item in items]
    raise AssertionError("the list never ended")


@pytest.mark.parametrize("path", ["bookings", "accounts", "equipment"])
def test_list_orders(path: str) -> None:
    newest = _listed_ids(Sandbox(SandboxConfig(scale="tiny")), path)
    assert newest == sorted(newest, reverse=True)  # the default stays as documented
    oldest = _listed_ids(Sandbox(SandboxConfig(scale="tiny", list_order="oldest")), path)
    assert oldest == sorted(newest)
    shuffled = Sandbox(SandboxConfig(scale="tiny", list_order="shuffled", seed=0))
    once, again = _listed_ids(shuffled, path), _listed_ids(shuffled, path)
    assert once == again and sorted(once) == sorted(newest) and once not in (newest, oldest)


def test_2022_lists_are_in_the_0_1_3_shape() -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny", payload_profile="2022"))
    http = InProcessClient(sandbox, sandbox.issue_access_token())
    (booking,) = http.get("/v1/bookings", params={"per_page": 1}).json()
    assert set(booking) == {"id", "start_time", "end_time", "status", "user_id", "equipment_id"}
    detail = http.get(f"/v1/bookings/{booking['id']}").json()
    assert not {"currency", "start_time", "creator", "requester_group"} & set(detail)
    assert {"cost", "duration", "requester", "provider_lab", "booking_type"} <= set(detail)
    (account,) = http.get("/v1/accounts", params={"per_page": 1}).json()
    assert set(account) == {"id", "name", "account_type"}
    assert "timezone" in http.get(f"/v1/accounts/{account['id']}").json()


def test_sandbox_defaults_are_unchanged() -> None:
    config = SandboxConfig()
    assert (config.list_order, config.account_list, config.payload_profile) == (
        "newest",
        "full",
        "current",
    )
    assert config.list_disagreement_rate == 0.0
    with pytest.raises(ValueError, match="list_order"):
        SandboxConfig(list_order="sideways")  # type: ignore[arg-type]


def test_sandbox_command_line_sets_the_shape_knobs() -> None:
    import argparse

    from calira_pipeline.sandbox.server import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [
        "--list-order",
        "shuffled",
        "--account-list",
        "slim",
        "--payload-profile",
        "2022",
        "--list-disagreement-rate",
        "0.25",
    ]
    config = config_from_args(parser.parse_args(argv))
    assert (config.list_order, config.account_list, config.payload_profile) == (
        "shuffled",
        "slim",
        "2022",
    )
    assert config.list_disagreement_rate == 0.25
    default = config_from_args(parser.parse_args([]))
    assert (default.list_order, default.account_list, default.payload_profile) == (
        "newest",
        "full",
        "current",
    )


def test_personal_data_in_kept_list_values_is_masked_too(tmp_path: Any) -> None:
    from calira_pipeline.ingest.pii import PiiPolicy

    listed = {"id": 7, "requester": {"id": 9, "name": "Ada Lovelace", "email": "ada@x.test"}}
    detail = {"requester": {"id": 9, "name": "Ada King", "email": "ada@y.test"}}
    merged, differences = merge_detail(listed, detail)
    assert set(differences) == {"requester"}
    row = {"id": 7, "raw_json": json.dumps(merged)}
    (masked,) = PiiPolicy.for_data_dir("hash", tmp_path).apply("bookings", [row])
    assert "Ada" not in masked["raw_json"] and "ada@" not in masked["raw_json"]
    kept = json.loads(masked["raw_json"])[LIST_VALUES_KEY]["requester"]
    assert kept["id"] == 9 and kept["name"].startswith("pii:")
