"""Incremental bookings whatever the list order: the walk finds the newest end itself."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from calira_pipeline.api.order import detect_order
from calira_pipeline_tests.fake_calira import FakeCalira, page_response
from calira_pipeline_tests.test_incremental import (
    booking,
    client_for,
    list_pages,
    stored_rows,
    unchanged_against,
)

Row = dict[str, Any]


def _ids(rows: list[Row]) -> list[int]:
    return sorted(r["id"] for r in rows)


def _fake(ids: list[int]) -> FakeCalira:
    return FakeCalira(bookings=[booking(i) for i in ids])


def test_oldest_first_walks_back_from_the_last_page() -> None:
    fake = _fake(list(range(1, 96)))
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings += [booking(i) for i in (96, 97, 98)]
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == [96, 97, 98]
    # page 1 and the last page tell the order; page 9 is quiet, page 8 the overlap
    assert list_pages(fake) == [1, 10, 9, 8]
    assert result.notes["list_order"] == "oldest_first"
    assert result.notes["stop_reason"] == "nothing_new"


def test_the_captured_shape_one_record_then_ascending_is_oldest_first() -> None:
    ids = [50, *[i for i in range(1, 96) if i != 50]]
    fake = _fake(ids)
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings += [booking(96), booking(97)]
    fake.bookings[0]["status"] = "Cancelled"  # the odd first record changes too
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == [50, 96, 97]
    assert result.notes["list_order"] == "oldest_first"
    assert len(list_pages(fake)) == 4


def test_an_unknown_order_reads_every_page_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    ids = list(range(1, 96))
    random.Random(4).shuffle(ids)
    fake = _fake(ids)
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings.insert(37, booking(96))
    fake.requests.clear()
    with caplog.at_level(logging.WARNING, logger="calira_pipeline.api"):
        result = client.fetch_bookings_incremental(unchanged_against(stored))
    assert _ids(result.rows["bookings"]) == [96]
    assert sorted(list_pages(fake)) == list(range(1, 11))
    assert result.notes["list_order"] == "unknown"
    assert result.notes["stop_reason"] == "full_read_order_unknown"
    assert "neighbours descending" in result.notes["list_order_evidence"]
    assert any("cannot tell which end of the list is newest" in m for m in caplog.messages)


def test_a_deletion_plus_an_addition_is_not_missed_oldest_first() -> None:
    fake = _fake(list(range(1, 96)))
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings = [b for b in fake.bookings if b["id"] != 40] + [booking(96)]
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert result.api_total == len(stored)  # the count alone cannot tell
    assert _ids(result.rows["bookings"]) == [96]


def test_an_order_flip_between_runs_is_followed() -> None:
    fake = _fake(list(range(95, 0, -1)))
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings = [booking(i) for i in range(1, 99)]  # now oldest-first, three new at the end
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == [96, 97, 98]
    assert result.notes["list_order"] == "oldest_first"


def test_a_count_gap_after_a_quiet_walk_reads_the_rest() -> None:
    fake = _fake(list(range(95, 0, -1)))
    client = client_for(fake)
    stored = stored_rows(client)
    for lost in (30, 31, 60):  # never stored (say, an earlier run was cut short)
        del stored[lost]
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == [30, 31, 60]
    assert sorted(list_pages(fake)) == list(range(1, 11))
    assert result.notes["stop_reason"] == "full_read_count_gap"
    assert "70 records were unread and only 67 stored" in result.notes["stop_detail"]


def test_without_known_ids_a_quiet_walk_stops_as_before() -> None:
    fake = _fake(list(range(95, 0, -1)))
    client = client_for(fake)
    stored = stored_rows(client)
    del stored[60]
    result = client.fetch_bookings_incremental(unchanged_against(stored))
    assert result.rows["bookings"] == [] and result.notes["stop_reason"] == "nothing_new"


def test_a_stale_total_on_an_oldest_first_list_reads_past_the_last_page() -> None:
    fake = _fake(list(range(1, 91)))
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings += [booking(i) for i in range(91, 101)]
    stale = 90

    def stale_total(request: Any) -> Any:
        if request.url.path != "/v1/bookings":
            return None
        page = int(request.url.params["page"])
        items = fake.bookings[(page - 1) * 10 : page * 10]
        return page_response(request, items, stale, 10, page)

    fake.inject = stale_total
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == list(range(91, 101))


@pytest.mark.parametrize(
    ("first", "last", "order"),
    [
        ([{"id": i} for i in range(100, 90, -1)], [{"id": i} for i in range(5, 0, -1)], "newest"),
        ([{"id": i} for i in range(1, 11)], [{"id": i} for i in range(90, 96)], "oldest"),
        ([{"id": 3}], [{"id": 1}], "unknown"),  # too few values for a verdict
        ([{"id": i} for i in (5, 90, 2, 77)], [{"id": i} for i in (40, 3, 99)], "unknown"),
    ],
)
def test_detect_order(first: list[Row], last: list[Row], order: str) -> None:
    verdict = detect_order(first, last)
    assert verdict.order == {"newest": "newest_first", "oldest": "oldest_first"}.get(
        order, "unknown"
    )


def test_requested_at_contradicting_the_ids_makes_the_order_unknown() -> None:
    def item(i: int, day: int) -> Row:
        return {"id": i, "requested_at": f"2024-01-{day:02d}T10:00:00.000Z"}

    first = [item(i, 28 - i) for i in range(10, 5, -1)]
    last = [item(i, 28 - i) for i in range(5, 0, -1)]
    verdict = detect_order(first, last)
    assert verdict.order == "unknown" and "contradict" in verdict.evidence


def test_a_total_too_high_steps_back_to_the_real_last_page() -> None:
    fake = _fake(list(range(1, 91)))
    client = client_for(fake)
    stored = stored_rows(client)
    fake.bookings += [booking(91), booking(92)]

    def total_too_high(request: Any) -> Any:
        if request.url.path != "/v1/bookings":
            return None
        page = int(request.url.params["page"])
        items = fake.bookings[(page - 1) * 10 : page * 10]
        return page_response(request, items, len(fake.bookings) + 9, 10, page)

    fake.inject = total_too_high
    fake.requests.clear()
    result = client.fetch_bookings_incremental(unchanged_against(stored), known_ids=set(stored))
    assert _ids(result.rows["bookings"]) == [91, 92]
    assert result.notes["list_order"] == "oldest_first"
    assert list_pages(fake)[:3] == [1, 11, 10]  # page 11 is empty: page 10 is the last
