"""Header pagination: stop rules, malformed headers, lying totals, drift during the walk."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calira_pipeline.api import CaliraClient, PaginationError
from calira_pipeline.api.pagination import PageRead, covered_intervals, gaps
from calira_pipeline_tests.fake_calira import FakeCalira, client_for_fake, page_response


def bookings(ids: range | list[int]) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "status": "Booked",
            "cost": "1.00",
            "currency": "GBP",
            "provider_lab": None,
            "requester_lab": None,
            "requester": None,
        }
        for i in ids
    ]


def client_for(fake: FakeCalira, **overrides: Any) -> CaliraClient:
    return client_for_fake(fake, rng_seed=1, **{"concurrency": 4, "per_page": 10, **overrides})


def ids_of(fake: FakeCalira, **overrides: Any) -> list[int]:
    result = client_for(fake, **overrides).fetch("bookings")
    return [r["id"] for r in result.rows["bookings"]]


def test_trusts_echoed_per_page_over_requested() -> None:
    fake = FakeCalira(bookings=bookings(range(95, 0, -1)), per_page_cap=20)
    result = client_for(fake, per_page=100).fetch("bookings")
    assert len(result.rows["bookings"]) == 95
    assert result.stats.pages == 5  # 20 per page as echoed, not 1 page of 100
    pages = [r.url.params["per_page"] for r in fake.requests if r.url.path == "/v1/bookings"]
    assert pages[0] == "100" and set(pages[1:]) == {"20"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Per-Page": "10"}, "no X-Total-Records header"),
        ({"X-Total-Records": "30"}, "no X-Per-Page header"),
        ({"X-Total-Records": "lots", "X-Per-Page": "10"}, "malformed X-Total-Records"),
        ({"X-Total-Records": "30", "X-Per-Page": "0"}, "malformed X-Per-Page"),
    ],
)
def test_missing_or_malformed_headers_raise_naming_endpoint(
    headers: dict[str, str], message: str
) -> None:
    fake = FakeCalira(bookings=bookings(range(30, 0, -1)))
    fake.inject = lambda r: (
        httpx.Response(200, json=bookings(range(10)), headers=headers, request=r)
        if r.url.path == "/v1/bookings"
        else None
    )
    with pytest.raises(PaginationError, match=message) as info:
        ids_of(fake)
    assert "GET /v1/bookings?page=1&per_page=10" in str(info.value)


def test_page_ceiling_raises() -> None:
    fake = FakeCalira(bookings=bookings(range(100, 0, -1)))
    with pytest.raises(PaginationError, match="max_pages=3"):
        ids_of(fake, max_pages=3)


def test_wrong_current_page_is_detected() -> None:
    fake = FakeCalira(bookings=bookings(range(30, 0, -1)))
    # an old API version ignoring `page` would serve page 1 forever
    fake.inject = lambda r: (
        page_response(r, bookings(range(30, 20, -1)), 30, 10, 1)
        if r.url.path == "/v1/bookings"
        else None
    )
    with pytest.raises(PaginationError, match="X-Current-Page 1, not 2"):
        ids_of(fake)


def test_empty_page_stops_even_if_total_is_too_high() -> None:
    fake = FakeCalira(bookings=bookings(range(25, 0, -1)))
    fake.inject = lambda r: _with_total(fake, r, 60)
    assert sorted(ids_of(fake)) == list(range(1, 26))


def _with_total(fake: FakeCalira, request: httpx.Request, total: int) -> httpx.Response | None:
    if request.url.path != "/v1/bookings":
        return None
    page = int(request.url.params["page"])
    per_page = int(request.url.params["per_page"])
    items = fake.bookings[(page - 1) * per_page : page * per_page]
    return page_response(request, items, total, per_page, page)


def test_total_too_low_keeps_going_while_pages_are_full_of_new_ids() -> None:
    fake = FakeCalira(bookings=bookings(range(73, 0, -1)))
    fake.inject = lambda r: _with_total(fake, r, 15)
    assert sorted(ids_of(fake)) == list(range(1, 74))


def test_short_page_mid_list_does_not_stop_the_walk() -> None:
    fake = FakeCalira(bookings=bookings(range(40, 0, -1)))

    def filtered(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/bookings" or request.url.params["page"] != "2":
            return None
        return page_response(request, fake.bookings[10:14], 40, 10, 2)  # access-filtered page

    fake.inject = filtered
    ids = ids_of(fake)
    assert len(ids) == 34 and 1 in ids


def test_duplicates_dropped_and_counted() -> None:
    fake = FakeCalira(bookings=bookings(range(30, 0, -1)))

    def repeat(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/bookings" or request.url.params["page"] != "2":
            return None
        return page_response(request, fake.bookings[9:19], 30, 10, 2)  # 21 repeated

    fake.inject = repeat
    result = client_for(fake).fetch("bookings")
    ids = [r["id"] for r in result.rows["bookings"]]
    assert len(ids) == len(set(ids))
    assert result.stats.duplicates_dropped >= 1
    assert result.stats.drift_events == 1


def test_head_inserts_during_concurrent_walk_miss_nothing() -> None:
    fake = FakeCalira(bookings=bookings(range(500, 0, -1)), shuffle=random.Random(3))
    next_id = iter(range(1000, 5000))

    def insert(path: str, page: int) -> None:
        fake.bookings[:0] = bookings([next(next_id) for _ in range(3)])

    fake.before_page = insert
    result = client_for(fake, concurrency=8).fetch("bookings")
    ids = [r["id"] for r in result.rows["bookings"]]
    assert set(range(1, 501)) <= set(ids)
    assert len(ids) == len(set(ids))
    assert result.stats.drift_events == 1
    assert result.api_total == 503  # three inserted before page 1 was served


def test_deletions_during_walk_miss_no_surviving_record() -> None:
    fake = FakeCalira(bookings=bookings(range(300, 0, -1)), shuffle=random.Random(5))
    rng = random.Random(7)
    deleted: set[int] = set()

    def delete(path: str, page: int) -> None:
        if rng.random() < 0.2:
            victim = fake.bookings.pop(rng.randrange(len(fake.bookings)))
            deleted.add(victim["id"])

    fake.before_page = delete
    result = client_for(fake, concurrency=8).fetch("bookings")
    ids = [r["id"] for r in result.rows["bookings"]]
    assert set(range(1, 301)) - deleted <= set(ids)
    assert len(ids) == len(set(ids))
    # correct but costly under heavy churn (a deletion on every fifth page served): the
    # deletion model only trusts runs of pages that report the same total
    assert result.stats.pages < 450


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 120),
    per_page=st.integers(1, 25),
    concurrency=st.integers(1, 8),
    inserts=st.integers(0, 4),
    deletes=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_drift_property(
    size: int, per_page: int, concurrency: int, inserts: int, deletes: bool, seed: int
) -> None:
    rng = random.Random(seed)
    inserts = min(inserts, per_page // 3)  # faster head growth than reading is a moving target
    fake = FakeCalira(bookings=bookings(range(size, 0, -1)), shuffle=random.Random(seed))
    new_ids = iter(range(10_000, 20_000))
    deleted: set[int] = set()
    change = rng.choice(["insert", "delete"]) if inserts and deletes else "insert"

    def mutate(path: str, page: int) -> None:
        if change == "insert":
            fake.bookings[:0] = bookings([next(new_ids) for _ in range(inserts)])
        elif fake.bookings and rng.random() < 0.5:
            deleted.add(fake.bookings.pop(rng.randrange(len(fake.bookings)))["id"])

    fake.before_page = mutate
    ids = ids_of(fake, per_page=per_page, concurrency=concurrency, max_pages=10_000)
    assert len(ids) == len(set(ids))
    assert set(range(1, size + 1)) - deleted <= set(ids)
    assert set(ids) <= set(range(1, size + 1)) | set(range(10_000, 20_000))


def test_coverage_maps_shifted_windows_back_to_start_positions() -> None:
    reads = [PageRead(1, 30, 10, []), PageRead(2, 33, 10, []), PageRead(3, 30, 10, [])]
    covered = covered_intervals(reads, start_total=30, per_page=10)
    # page 2 read after 3 head inserts saw start positions 7..16, so 17..19 were missed
    assert covered == [(0, 17), (20, 30)]
    assert gaps(covered, 30) == [(17, 20)]


def _endless(request: httpx.Request) -> httpx.Response | None:
    """Full pages of new ids on every page number, while the total stays at 30."""
    if request.url.path != "/v1/bookings":
        return None
    page = int(request.url.params["page"])
    per_page = int(request.url.params["per_page"])
    ids = range(page * 1000 + per_page, page * 1000, -1)
    return page_response(request, bookings(ids), 30, per_page, page)


def test_pages_past_the_total_stop_at_the_documented_margin() -> None:
    from calira_pipeline.api.pagination import OVERRUN_MIN_PAGES

    fake = FakeCalira()
    fake.inject = _endless
    with pytest.raises(PaginationError) as info:
        ids_of(fake)
    message = str(info.value)
    assert "keeps sending full pages of new records past its X-Total-Records (30)" in message
    assert message.startswith("GET /bookings") and "nothing was stored" in message
    # 3 pages for the total, then at most the margin (10 pages of 10), never the 100,000 ceiling.
    assert fake.count("/v1/bookings") == 3 + OVERRUN_MIN_PAGES


def test_incremental_walk_stops_at_the_same_margin() -> None:
    fake = FakeCalira()
    fake.inject = _endless
    with pytest.raises(PaginationError, match="past its X-Total-Records"):
        client_for(fake).fetch_bookings_incremental(lambda row: False)
    assert fake.count("/v1/bookings") <= 3 + 10
