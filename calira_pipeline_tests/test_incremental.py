"""Incremental bookings: a walk from the list's newest end that keeps only new or changed
bookings (page 1 and the last page are read first to tell which end that is)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from calira_pipeline.api import CaliraClient, ConfigError, PaginationError
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline_tests.fake_calira import FakeCalira, client_for_fake, page_response

Row = dict[str, Any]


def booking(i: int, status: str = "Booked") -> Row:
    return {
        "id": i,
        "cost": f"{i}.00",
        "currency": "GBP",
        "start_time": "2022-03-29T09:45:00.000+01:00",
        "end_time": "2022-03-29T10:45:00.000+01:00",
        "status": status,
        "booking_type": "internal",
        "equipment": {"id": 100 + i % 3, "name": "Microscope"},
        "provider_lab": {"id": 1, "name": "Lab A"},
        "requester_lab": {"id": 2, "name": "Lab B"},
        "requester": {"id": 9, "name": "Ada", "email": "ada@x.test", "sector": "academia"},
    }


def slim(collection: str, record: Row) -> Row:
    if collection != "bookings":
        return record
    keep = ("id", "start_time", "end_time", "status", "booking_type")
    return {
        **{k: record[k] for k in keep},
        "equipment_id": record["equipment"]["id"],
        "asset": {"name": record["equipment"]["name"]},
    }


def client_for(fake: FakeCalira, **overrides: Any) -> CaliraClient:
    return client_for_fake(fake, rng_seed=3, **{"concurrency": 4, "per_page": 10, **overrides})


def stored_rows(client: CaliraClient) -> dict[int, Row]:
    return {row["id"]: row for row in client.fetch("bookings").rows["bookings"]}


def unchanged_against(stored: dict[int, Row]) -> Any:
    """What the asset's predicate does: compare the values the list row carries."""

    def is_unchanged(row: Row) -> bool:
        old = stored.get(row["id"])
        return old is not None and all(
            old[k] == v for k, v in row.items() if v is not None and k != "raw_json"
        )

    return is_unchanged


def list_pages(fake: FakeCalira) -> list[int]:
    return [int(r.url.params["page"]) for r in fake.requests if r.url.path == "/v1/bookings"]


def detail_ids(fake: FakeCalira) -> set[int]:
    prefix = "/v1/bookings/"
    return {int(r.url.path[len(prefix) :]) for r in fake.requests if r.url.path.startswith(prefix)}


def setup(n: int = 95, **fake_args: Any) -> tuple[FakeCalira, CaliraClient, dict[int, Row]]:
    fake = FakeCalira(bookings=[booking(i) for i in range(n, 0, -1)], **fake_args)
    client = client_for(fake)
    stored = stored_rows(client)
    fake.requests.clear()
    return fake, client, stored


@pytest.mark.parametrize("overlap", [0, 1, 3])
def test_nothing_new_reads_page_one_plus_overlap_pages(overlap: int) -> None:
    fake, client, stored = setup()
    result = client.fetch_bookings_incremental(unchanged_against(stored), overlap)
    assert result.rows == {"bookings": []}
    assert list_pages(fake) == [1, 10, *range(2, overlap + 2)]  # page 10 is the last
    assert result.stats.pages == overlap + 2 and result.stats.requests == overlap + 2
    assert result.api_total == 95 and result.collection == "bookings"
    assert result.stats.stop_reason == "nothing_new"
    assert result.notes["stop_reason"] == "nothing_new"
    assert result.notes["pages_read"] == str(overlap + 2)
    assert result.notes["list_order"] == "newest_first"
    assert "stop_reason" not in result.stats.as_metadata()


def test_new_bookings_at_head_are_returned_exactly() -> None:
    fake, client, stored = setup()
    fake.bookings[:0] = [booking(i) for i in (98, 97, 96)]
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    rows = result.rows["bookings"]
    assert [r["id"] for r in rows] == [98, 97, 96]
    assert set(rows[0]) == set(RAW_TABLES["bookings"].column_names)
    assert list_pages(fake) == [1, 10, 2, 3]  # page 1 had news, page 2 quiet, page 3 overlap
    assert result.stats.records == 3 and result.stats.detail_requests == 0


def test_more_new_bookings_than_a_page() -> None:
    fake, client, stored = setup()
    fake.bookings[:0] = [booking(i) for i in range(120, 95, -1)]
    result = client.fetch_bookings_incremental(unchanged_against(stored), overlap_pages=0)
    assert [r["id"] for r in result.rows["bookings"]] == list(range(120, 95, -1))
    assert list_pages(fake) == [1, 12, 2, 3, 4]


def test_changed_status_on_page_two_is_found_by_the_overlap_page() -> None:
    fake, client, stored = setup()
    fake.bookings[14]["status"] = "Cancelled"
    result = client.fetch_bookings_incremental(unchanged_against(stored), overlap_pages=1)
    assert [(r["id"], r["status"]) for r in result.rows["bookings"]] == [(81, "Cancelled")]
    assert list_pages(fake) == [1, 10, 2]


def test_slim_list_fetches_details_only_for_new_or_changed_ids() -> None:
    fake, client, stored = setup(slim=slim)
    full = client.fetch("bookings")  # the full fetch's rows are what incremental must match
    fake.bookings[:0] = [booking(97), booking(96)]
    fake.bookings[5]["status"] = "Completed"  # id 92, on page 1
    fake.bookings[8]["cost"] = "999.00"  # not in the slim list item: invisible here, by design
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    rows = {r["id"]: r for r in result.rows["bookings"]}
    assert list(rows) == [97, 96, 92]
    assert detail_ids(fake) == {97, 96, 92}
    assert result.stats.detail_requests == 3
    assert rows[92]["status"] == "Completed" and rows[92]["cost"] is not None
    by_id = {r["id"]: r for r in full.rows["bookings"]}
    # same parse and raw_json rule as the full fetch: the merged list item + details
    assert {k: v for k, v in rows[92].items() if k not in ("status", "raw_json")} == {
        k: v for k, v in by_id[92].items() if k not in ("status", "raw_json")
    }
    assert '"status":"Completed"' in rows[92]["raw_json"]
    assert '"cost":"92.00"' in rows[92]["raw_json"]


def test_slim_detail_404_is_dropped_with_warning() -> None:
    fake, client, stored = setup(slim=slim)
    fake.bookings[:0] = [booking(97), booking(96)]
    fake.inject = lambda r: (
        httpx.Response(404, json={"error": "not_found"}, request=r)
        if r.url.path == "/v1/bookings/97"
        else None
    )
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    assert [r["id"] for r in result.rows["bookings"]] == [96]
    assert result.stats.deleted_during_fetch == 1
    assert any("booking 97" in w and "404" in w for w in result.warnings)


def test_stops_at_end_of_a_short_list() -> None:
    fake = FakeCalira(bookings=[booking(i) for i in range(5, 0, -1)])
    result = client_for(fake).fetch_bookings_incremental(lambda row: False)
    assert [r["id"] for r in result.rows["bookings"]] == [5, 4, 3, 2, 1]
    assert list_pages(fake) == [1]
    assert result.stats.stop_reason == "end_of_list" and result.api_total == 5


def test_a_two_page_list_is_read_whole() -> None:
    fake = FakeCalira(bookings=[booking(i) for i in range(20, 0, -1)])
    result = client_for(fake).fetch_bookings_incremental(lambda row: False)
    assert len(result.rows["bookings"]) == 20
    assert list_pages(fake) == [1, 2]  # newest-first: past the last page is older still


def test_never_stops_on_a_short_page_alone() -> None:
    fake = FakeCalira(bookings=[booking(i) for i in range(30, 0, -1)])

    def short_page_two(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/bookings" or request.url.params["page"] != "2":
            return None
        return page_response(request, fake.bookings[10:15], 30, 10, 2)  # a cut-short page

    fake.inject = short_page_two
    result = client_for(fake).fetch_bookings_incremental(lambda row: False)
    assert list_pages(fake) == [1, 3, 2]  # first, last, then on from the newest end
    assert len(result.rows["bookings"]) == 25  # 16..20 were lost by the server, not by us


def test_empty_list() -> None:
    fake = FakeCalira()
    result = client_for(fake).fetch_bookings_incremental(lambda row: False)
    assert result.rows["bookings"] == [] and result.api_total == 0
    assert list_pages(fake) == [1] and result.stats.stop_reason == "end_of_list"


def test_head_inserts_during_walk_do_not_duplicate() -> None:
    fake, client, stored = setup()
    fake.bookings[:0] = [booking(i) for i in range(107, 95, -1)]  # 12 new

    def insert_before_page_two(path: str, page: int) -> None:
        if page == 2 and fake.bookings[0]["id"] == 107:
            fake.bookings[:0] = [booking(i) for i in (110, 109, 108)]

    fake.before_page = insert_before_page_two
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    ids = [r["id"] for r in result.rows["bookings"]]
    assert ids == list(range(107, 95, -1))  # 108..110 arrived behind us: next run's news
    assert result.stats.duplicates_dropped == 3


def test_deletions_during_walk_do_not_skip_a_changed_booking() -> None:
    fake, client, stored = setup(40)
    fake.bookings[10]["status"] = "Cancelled"  # id 30, first on page 2

    def delete_before_page_two(path: str, page: int) -> None:
        if page == 2 and len(fake.bookings) == 40:
            del fake.bookings[:3]  # id 30 moves up onto page 1, already read

    fake.before_page = delete_before_page_two
    result = client.fetch_bookings_incremental(unchanged_against(stored), overlap_pages=1)
    assert [(r["id"], r["status"]) for r in result.rows["bookings"]] == [(30, "Cancelled")]
    assert list_pages(fake) == [1, 4, 2, 1]
    assert result.stats.drift_events == 1


def test_trusts_echoed_per_page() -> None:
    fake, _, stored = setup(per_page_cap=10)
    client = client_for(fake, per_page=100)
    client.fetch_bookings_incremental(unchanged_against(stored))
    sizes = [r.url.params["per_page"] for r in fake.requests if r.url.path == "/v1/bookings"]
    assert sizes == ["100", "10", "10"]  # page 1, the last page (10), the overlap page 2


def test_page_ceiling_raises() -> None:
    fake = FakeCalira(bookings=[booking(i) for i in range(100, 0, -1)])
    with pytest.raises(PaginationError, match="max_pages=3.*full fetch"):
        client_for(fake, max_pages=3).fetch_bookings_incremental(lambda row: False)
    assert list_pages(fake) == [1]  # the last page, 10, is past the ceiling


def test_slim_rows_offered_to_predicate_are_partial() -> None:
    fake, client, _ = setup(3, slim=slim)
    offered: list[Row] = []
    client.fetch_bookings_incremental(lambda row: offered.append(row) is None)
    assert [r["id"] for r in offered] == [3, 2, 1]
    assert offered[0]["status"] == "Booked" and offered[0]["cost"] is None
    assert set(offered[0]) == set(RAW_TABLES["bookings"].column_names)
    assert detail_ids(fake) == set()  # all unchanged: no details


def test_transient_bad_body_on_page_two_is_retried() -> None:
    fake, client, stored = setup()
    fake.bookings[14]["status"] = "Cancelled"
    calls = {"n": 0}

    def truncate_once(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/bookings" and request.url.params["page"] == "2":
            calls["n"] += 1
            if calls["n"] == 1:
                headers = {"X-Total-Records": "95", "X-Per-Page": "10", "X-Current-Page": "2"}
                return httpx.Response(200, content=b'[{"id": 8', headers=headers, request=request)
        return None

    fake.inject = truncate_once
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    assert [r["id"] for r in result.rows["bookings"]] == [81]
    assert result.stats.retries_by_cause["bad_body"] == 1
    assert list_pages(fake) == [1, 10, 2, 2]


def test_negative_overlap_is_config_error() -> None:
    fake, client, stored = setup(3)
    with pytest.raises(ConfigError, match="overlap_pages"):
        client.fetch_bookings_incremental(unchanged_against(stored), -1)


def test_incremental_works_inside_running_loop() -> None:
    import asyncio

    fake, client, stored = setup(3)

    async def inside() -> int:
        return client.fetch_bookings_incremental(unchanged_against(stored)).stats.pages

    assert asyncio.run(inside()) == 1
