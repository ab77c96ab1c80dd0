"""Out-of-range and pathological values: a RecordError/ApiError naming endpoint, record and field,
never a bare OverflowError, InvalidOperation or RecursionError, and never a silent drop."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from calira_pipeline.api import ApiError, AuthError, RecordError
from calira_pipeline.api.fields import Where, loads_exact
from calira_pipeline.api.pages import item_id
from calira_pipeline.api.records import parse_booking
from calira_pipeline.api.results import UnknownFields
from calira_pipeline.storage import rows_to_arrow
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.wiring.retry import is_permanent
from calira_pipeline_tests.fake_calira import FakeCalira, client_for_fake, page_response

WHERE = Where("GET /v1/bookings page 3", "booking", 123)
HUGE = 2**70


@pytest.mark.parametrize(
    ("fields", "named", "expected"),
    [
        ({"start_time": "0001-01-01T00:00:00+01:00"}, "start_time", "between years 1 and 9999"),
        ({"end_time": "9999-12-31T23:30:00-01:00"}, "end_time", "between years 1 and 9999"),
        ({"cost": "1e400"}, "cost", "below 10^16"),
        ({"cost": "12345678901234567"}, "cost", "below 10^16"),
        ({"id": HUGE}, "id", "64-bit range"),
        ({"id": str(HUGE)}, "id", "64-bit range"),
        ({"duration": HUGE}, "duration", "64-bit range"),
        ({"user_id": -HUGE}, "user_id", "64-bit range"),
        ({"equipment_id": HUGE}, "equipment_id", "64-bit range"),
        ({"creator": {"id": HUGE, "name": "x"}}, "creator.id", "64-bit range"),
        ({"requester_lab": {"id": str(HUGE)}}, "requester_lab.id", "64-bit range"),
    ],
)
def test_out_of_range_values_name_endpoint_record_field_and_expectation(
    fields: dict[str, Any], named: str, expected: str
) -> None:
    with pytest.raises(RecordError) as info:
        parse_booking({"id": 123, **fields}, WHERE, UnknownFields())
    message = str(info.value)
    assert message.startswith(f"GET /v1/bookings page 3: booking 123 has {named} ")
    assert expected in message


def test_the_largest_values_that_fit_are_stored() -> None:
    biggest = 2**63 - 1
    row = parse_booking(
        {"id": biggest, "cost": "9999999999999999.99", "start_time": "9999-12-31T23:59:59Z"},
        WHERE,
        UnknownFields(),
    )
    table = rows_to_arrow(RAW_TABLES["bookings"], [row])
    assert table.column("id").to_pylist() == [biggest]
    assert str(table.column("cost")[0].as_py()) == "9999999999999999.99"


def test_list_item_ids_out_of_range_are_reported_with_the_item() -> None:
    with pytest.raises(RecordError) as info:
        item_id("GET /v1/bookings?page=1&per_page=100", 4, {"id": HUGE})
    assert str(info.value).startswith(
        f"GET /v1/bookings?page=1&per_page=100: item #4 has id {HUGE}, not an integer id"
    )


def slim_fake(ids: list[int]) -> FakeCalira:
    fake = FakeCalira(
        bookings=[{"id": i, "status": "Booked", "cost": "1", "currency": "GBP"} for i in ids],
        slim=lambda collection, record: {"id": record["id"]},
    )
    return fake


def test_a_slim_item_with_a_huge_id_is_reported_not_dropped_as_deleted() -> None:
    fake = slim_fake([HUGE, 2, 1])
    with pytest.raises(RecordError, match=f"item #0 has id {HUGE}"):
        client_for_fake(fake).fetch("bookings")
    assert fake.count(r"/v1/bookings/\d+") == 0  # no detail request that would 404


def test_json_nested_past_the_parser_limit_names_the_endpoint() -> None:
    fake = slim_fake([1])

    def deep(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/bookings":
            return None
        response = page_response(request, [], 1, 100, 1)
        return httpx.Response(
            200, content=b"[" * 100_000 + b"]" * 100_000, headers=response.headers, request=request
        )

    fake.inject = deep
    with pytest.raises(ApiError) as info:
        client_for_fake(fake).fetch("bookings")
    message = str(info.value)
    assert message.startswith("GET /v1/bookings?") and "nested deeper than the parser" in message
    assert fake.count("/v1/bookings") == 1  # not retried: it will not get better


def test_expires_in_of_400_digits_is_an_auth_error_naming_the_field() -> None:
    fake = slim_fake([1])
    fake.expires_in = int("9" * 400)
    with pytest.raises(AuthError) as info:
        client_for_fake(fake).fetch("bookings")
    message = str(info.value)
    assert message.startswith("POST /oauth/token answered with expires_in 9999")
    assert "not a number of seconds between 0 and" in message


@pytest.mark.parametrize("path", ["/v1/bookings", "/oauth/token"])
def test_a_redirect_is_reported_as_a_redirect(path: str) -> None:
    fake = slim_fake([1])

    def redirect(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != path:
            return None
        return httpx.Response(
            302,
            headers={"Location": "https://user:pw@elsewhere.example/v1/x?token=abc"},
            request=request,
        )

    fake.inject = redirect
    with pytest.raises((ApiError, AuthError)) as info:
        client_for_fake(fake).fetch("bookings")
    message = str(info.value)
    assert "was redirected (HTTP 302) to 'https://elsewhere.example/v1/x'" in message
    assert "X-Total-Records" not in message and "pw" not in message and "abc" not in message
    assert is_permanent(info.value)  # the next attempt would be redirected too


@pytest.mark.parametrize(
    "text",
    [
        '[{"id": 1, "cost": 0.1, "x": 1e-05, "s": "Zürich \\u2713"}]',
        f'[{{"id": {HUGE}}}, {{"id": -9223372036854775809}}, {{"id": 18446744073709551616}}]',
        '[{"cost": 1E400}]',
        '[{"cost": NaN}]',
        '["\\ud800"]',
        '{"a": 1, "a": 2}',
    ],
)
def test_pages_decode_to_exactly_what_json_loads_gives(text: str) -> None:
    decoded = loads_exact(text)
    assert repr(decoded) == repr(json.loads(text))  # repr: int stays int, NaN compares
    # The same from the body's bytes (as the client passes a response), and inside a string.
    assert repr(loads_exact(text, encoded=text.encode())) == repr(json.loads(text))


@pytest.mark.parametrize("digits", [18, 19, 25])
def test_long_digit_runs_inside_strings_and_numbers_decode_exactly(digits: int) -> None:
    number = "9" * digits
    text = f'[{{"id": {number}, "note": "ref {number}", "x": -{number}.5}}]'
    assert repr(loads_exact(text)) == repr(json.loads(text))


def test_a_lone_surrogate_in_the_text_itself_gets_json_s_answer() -> None:
    text = '["\ud800' + '"]'
    raw = json.loads(text)[0] + "x"  # a str holding a lone surrogate, which cannot be UTF-8
    assert loads_exact(json.dumps(raw, ensure_ascii=False)) == raw
