"""CaliraClient end to end against the in-memory fake API (httpx.MockTransport)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest

from calira_pipeline.api import (
    ApiError,
    CaliraClient,
    ConfigError,
    MissingScopeError,
    RecordError,
)
from calira_pipeline.api.endpoints import COLLECTION_TABLES
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline_tests.fake_calira import FakeCalira, FakeClock, client_for_fake

BASE = "https://api.calira.test/v1"


def booking(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "cost": f"{i}.50",
        "currency": "GBP",
        "start_time": "2022-03-29T09:45:00.000+01:00",
        "end_time": "2022-03-29T10:45:00.000+01:00",
        "requested_at": "2022-03-20T10:00:00.123Z",
        "status": "Booked",
        "booking_type": "internal",
        "duration": 60,
        "equipment": {"id": 100 + i % 3, "name": "Microscope"},
        "provider_lab": {"id": 1, "name": "Lab A"},
        "requester_lab": {"id": 2, "name": "Lab B"},
        "requester": {"id": 9, "name": "Ada", "email": "ada@x.test", "sector": "academia"},
        "requester_group": {"name": "Group 1"},
        "last_public_note": {"message": "ok"},
    }


def slim_booking(record: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "equipment_id", "start_time", "end_time", "status", "booking_type", "user_id")
    slim = {k: record[k] for k in keep if k in record}
    slim["equipment_id"] = record["equipment"]["id"]
    slim["asset"] = {"name": record["equipment"]["name"]}
    return slim


def fake_api(**kwargs: Any) -> FakeCalira:
    fake = FakeCalira(
        accounts=[
            {"id": 1, "name": "Lab A", "account_type": "lab"},
            {"id": 2, "name": "Lab B", "account_type": "lab"},
            {"id": 3, "name": "Org", "account_type": "organisation"},
        ],
        bookings=[booking(i) for i in range(250, 0, -1)],
        equipment={
            1: [
                {
                    "id": 11,
                    "name": "SEM",
                    "model_number": "X1",
                    "serial_number": "s",
                    "manufacturing_year": "2020",
                    "parent_id": None,
                }
            ],
            2: [{"id": 21, "name": "TEM", "lab": {"id": 2, "name": "Lab B"}}],
        },
        groups={1: [{"id": 5, "name": "G", "equipment": [{"id": 11, "name": "SEM"}]}]},
        projects={
            3: [
                {
                    "id": 7,
                    "name": "P",
                    "funding_codes": [{"code": "FC1", "amount": "10"}],
                    "selected_users": [{"id": 9, "name": "Ada"}],
                }
            ]
        },
        **kwargs,
    )
    return fake


def make_client(fake: FakeCalira, clock: FakeClock | None = None, **overrides: Any) -> CaliraClient:
    return client_for_fake(fake, clock, **{"concurrency": 4, **overrides})


def test_bookings_all_pages_rows_match_schema() -> None:
    fake = fake_api()
    progress: list[tuple[str, int, int, int]] = []
    client = make_client(fake)
    client._on_progress = lambda *a: progress.append(a)  # noqa: SLF001
    result = client.fetch("bookings")
    rows = result.rows["bookings"]
    assert sorted(r["id"] for r in rows) == list(range(1, 251))
    assert set(rows[0]) == set(RAW_TABLES["bookings"].column_names)
    assert result.api_total == 250
    assert result.stats.pages == 3 and result.stats.detail_requests == 0
    assert result.stats.records == 250
    assert rows[0]["cost"] == Decimal("250.50")
    assert rows[0]["start_time"].isoformat() == "2022-03-29T08:45:00+00:00"
    assert progress[-1][0] == "bookings" and progress[-1][1] == 3
    meta = result.stats.as_metadata()
    assert meta["pages"] == 3 and meta["requests"] == 4  # 3 pages + 1 token


def test_progress_counts_every_page_of_every_list_from_the_first_report() -> None:
    """The demo printed "bookings: 1/1 pages, 100 records" (and "equipment: 1/1 pages, 0 records"
    for the first of several labs) for collections of 300 pages: a progress bar took the first
    report as the last and printed nothing more."""
    progress: list[tuple[str, int, int, int]] = []
    client = client_for_fake(fake_api(), concurrency=4, on_progress=lambda *a: progress.append(a))
    client.fetch("bookings")
    client.fetch("equipment")  # one list per lab (labs 1 and 2), one page each
    for collection, pages, records in (("bookings", 3, 250), ("equipment", 2, 2)):
        reports = [p[1:] for p in progress if p[0] == collection]
        assert reports[0][1] == pages, reports  # the whole total from the first page on
        assert [r for r in reports if r[0] >= r[1]] == [(pages, pages, records)], reports


def test_every_collection_uses_exact_schema_columns() -> None:
    fake = fake_api(me={"id": 9, "first_name": "Ada", "last_name": "L"})
    client = make_client(fake)
    for collection, tables in COLLECTION_TABLES.items():
        result = client.fetch(collection)
        assert set(result.rows) == set(tables)
        for table, rows in result.rows.items():
            assert rows, (collection, table)
            for row in rows:
                assert list(row) == RAW_TABLES[table].column_names or set(row) == set(
                    RAW_TABLES[table].column_names
                ), (table, set(row) ^ set(RAW_TABLES[table].column_names))
    # one token for all fetches: the client reuses it across event loops
    assert len(fake.token_requests) == 1


def test_equipment_lists_labs_first_and_scopes_rows() -> None:
    fake = fake_api()
    result = make_client(fake).fetch("equipment")
    by_id = {r["id"]: r for r in result.rows["equipment"]}
    assert by_id[11]["lab_id"] == 1 and by_id[11]["model"] == "X1"
    assert by_id[21]["lab_name"] == "Lab B"
    assert fake.count("/v1/accounts") == 1
    assert fake.count("/v1/equipment/11") == 0  # full enough: no detail
    assert fake.count("/v1/equipment/21") == 1  # lacks serial number etc.
    assert result.api_total == 2


def test_explicit_account_ids_skip_account_listing() -> None:
    fake = fake_api()
    result = make_client(fake).fetch("equipment", account_ids=[2])
    assert [r["id"] for r in result.rows["equipment"]] == [21]
    assert fake.count("/v1/accounts") == 0


def test_slim_booking_list_fetches_details_concurrently_and_merges() -> None:
    fake = fake_api(slim=lambda c, r: slim_booking(r) if c == "bookings" else r)
    fake.bookings = fake.bookings[:30]
    result = make_client(fake).fetch("bookings")
    rows = {r["id"]: r for r in result.rows["bookings"]}
    assert len(rows) == 30 and result.stats.detail_requests == 30
    assert rows[250]["cost"] == Decimal("250.50")
    assert rows[250]["requester_email"] == "ada@x.test"
    assert '"asset":{"name":"Microscope"}' in rows[250]["raw_json"]  # merged list + detail


def test_detail_404_drops_record_with_warning() -> None:
    fake = fake_api(slim=lambda c, r: slim_booking(r) if c == "bookings" else r)
    fake.bookings = fake.bookings[:5]

    def vanish(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/bookings/249":
            return httpx.Response(404, json={"error": "not_found"}, request=request)
        return None

    fake.inject = vanish
    result = make_client(fake).fetch("bookings")
    assert sorted(r["id"] for r in result.rows["bookings"]) == [246, 247, 248, 250]
    assert result.stats.deleted_during_fetch == 1
    assert "249" in result.warnings[0] and "deleted" in result.warnings[0]


def test_projects_detail_without_id_takes_list_id() -> None:
    fake = fake_api()
    fake.projects = {3: [{"id": 7, "name": "P"}]}
    fake.slim = None

    def detail(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/accounts/3/projects/7":
            body = {
                "name": "P",
                "supervisor": "N",
                "funding_codes": [{"code": "A"}, "B"],
                "selected_users": [],
            }
            return httpx.Response(200, json=body, request=request)
        return None

    fake.inject = detail
    result = make_client(fake).fetch("projects", account_ids=[3])
    assert result.rows["projects"][0]["id"] == 7
    assert result.rows["projects"][0]["account_id"] == 3
    assert [c["code"] for c in result.rows["project_funding_codes"]] == ["A", "B"]


def test_current_user_404_is_empty_table() -> None:
    result = make_client(fake_api()).fetch("current_user")
    assert result.rows == {"current_user": []}
    assert result.warnings


def test_missing_scope_names_scope_endpoint_and_assets() -> None:
    fake = fake_api()

    def forbid(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/bookings":
            return httpx.Response(
                403,
                json={
                    "error": "insufficient_scope",
                    "error_description": "Missing scope read_bookings",
                },
                request=request,
            )
        return None

    fake.inject = forbid
    with pytest.raises(MissingScopeError) as info:
        make_client(fake).fetch("bookings")
    err = info.value
    assert err.scope == "read_bookings" and "bookings" in err.blocked_collections
    assert "GET /v1/bookings?page=1&per_page=100" in str(err)
    assert "re-authorise" in str(err)


def test_forbidden_without_scope_hint_is_api_error() -> None:
    fake = fake_api()
    fake.inject = lambda r: (
        httpx.Response(403, json={"error": "forbidden"}, request=r)
        if "/bookings" in r.url.path
        else None
    )
    with pytest.raises(ApiError, match="not approved"):
        make_client(fake).fetch("bookings")


def test_html_error_page_is_api_error_naming_request() -> None:
    fake = fake_api()
    fake.inject = lambda r: (
        httpx.Response(
            200,
            text="<html>Bad gateway</html>",
            headers={"X-Total-Records": "1", "X-Per-Page": "100"},
            request=r,
        )
        if r.url.path == "/v1/bookings"
        else None
    )
    with pytest.raises(ApiError, match=r"GET /v1/bookings\?page=1.*not valid JSON.*<html>"):
        make_client(fake).fetch("bookings")


def test_non_utf8_body_is_api_error() -> None:
    fake = fake_api()
    fake.inject = lambda r: (
        httpx.Response(
            200,
            content=b"\xff\xfe[",
            headers={"X-Total-Records": "1", "X-Per-Page": "100"},
            request=r,
        )
        if r.url.path == "/v1/bookings"
        else None
    )
    with pytest.raises(ApiError, match="not UTF-8"):
        make_client(fake).fetch("bookings")


def test_record_error_names_endpoint_page_and_id() -> None:
    fake = fake_api()
    fake.bookings[150]["start_time"] = "garbage"
    bad_id = fake.bookings[150]["id"]
    with pytest.raises(RecordError) as info:
        make_client(fake).fetch("bookings")
    message = str(info.value)
    assert f"GET /v1/bookings page 2: booking {bad_id} has start_time 'garbage'" in message


def test_unknown_fields_counted_and_kept() -> None:
    fake = fake_api()
    fake.bookings = fake.bookings[:3]
    fake.bookings[0]["shiny_new"] = 1
    result = make_client(fake).fetch("bookings")
    assert result.unknown_fields == {"bookings.shiny_new": 1}
    assert '"shiny_new":1' in result.rows["bookings"][0]["raw_json"]


def test_unknown_collection_is_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown collection"):
        make_client(fake_api()).fetch("invoices")


def test_no_secrets_in_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_api()
    fake.bookings = fake.bookings[:3]
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response | None:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            return httpx.Response(
                503, text=f"echo {request.headers.get('Authorization')}", request=request
            )
        return None

    fake.inject = flaky
    client = make_client(fake)
    with caplog.at_level(logging.DEBUG):
        client.fetch("bookings")
    text = caplog.text + repr(client) + repr(client.settings)
    for secret in [fake.client_secret, *fake.valid_tokens]:
        assert secret not in text
    fake.inject = lambda r: (
        httpx.Response(400, text=f"bad {r.headers.get('Authorization')}", request=r)
        if r.url.path.startswith("/v1/bookings")
        else None
    )
    with pytest.raises(ApiError) as info:
        client.fetch("bookings")
    for secret in [fake.client_secret, *fake.valid_tokens]:
        assert secret not in str(info.value)
    assert "HTTP 400" in str(info.value)


def test_sync_fetch_works_inside_running_loop() -> None:
    import asyncio

    fake = fake_api()
    fake.bookings = fake.bookings[:2]
    client = make_client(fake)

    async def inside() -> int:
        return len(client.fetch("bookings").rows["bookings"])

    assert asyncio.run(inside()) == 2
