"""Retries, Retry-After, retry budget, pacing and the in-flight bound."""

from __future__ import annotations

import asyncio
import email.utils
import random
from typing import Any

import httpx
import pytest

from calira_pipeline.api import ApiError, CaliraClient, CaliraError, ClientSettings, PaginationError
from calira_pipeline.api.http import parse_retry_after
from calira_pipeline.api.ratelimit import AdaptiveRateLimiter
from calira_pipeline.wiring.retry import is_permanent
from calira_pipeline_tests.fake_calira import FakeCalira, FakeClock, client_for_fake


def fake_with(n: int = 5) -> FakeCalira:
    return FakeCalira(
        bookings=[
            {
                "id": i,
                "cost": "1",
                "currency": "GBP",
                "provider_lab": None,
                "requester_lab": None,
                "requester": None,
            }
            for i in range(n, 0, -1)
        ]
    )


def client_for(fake: FakeCalira, clock: FakeClock, **overrides: Any) -> CaliraClient:
    return client_for_fake(fake, clock, **overrides)


def fail_first(n: int, make: Any) -> Any:
    calls = {"n": 0}

    def inject(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/bookings":
            return None
        calls["n"] += 1
        return make(request) if calls["n"] <= n else None

    return inject


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda r: httpx.Response(503, text="busy", request=r), "5xx"),
        (lambda r: httpx.Response(429, request=r), "429"),
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), "connect"),
        (lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)), "timeout"),
        (lambda r: (_ for _ in ()).throw(httpx.RemoteProtocolError("reset", request=r)), "connect"),
    ],
)
def test_transient_failures_are_retried_with_backoff(make: Any, cause: str) -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(2, make)
    result = client_for(fake, clock).fetch("bookings")
    assert len(result.rows["bookings"]) == 5
    assert result.stats.retries_by_cause[cause] == 2
    backoffs = [s for s in clock.slept if s >= 0.25]  # a 429 also paces later requests
    assert len(backoffs) == 2 and 0.25 <= backoffs[0] <= 0.5 < backoffs[1] <= 1.0


def test_retry_after_seconds_is_honoured() -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(
        1, lambda r: httpx.Response(429, headers={"Retry-After": "7"}, request=r)
    )
    result = client_for(fake, clock).fetch("bookings")
    assert 7 in clock.slept and result.stats.rate_limited == 1


def test_retry_after_http_date_uses_server_date() -> None:
    response = httpx.Response(
        429,
        headers={
            "Retry-After": email.utils.formatdate(1_000_012, usegmt=True),
            "Date": email.utils.formatdate(1_000_000, usegmt=True),
        },
    )
    assert parse_retry_after(response, lambda: 0.0) == 12


@pytest.mark.parametrize("value", ["0", "soon", "-3", ""])
def test_retry_after_zero_or_garbage_means_backoff(value: str) -> None:
    response = httpx.Response(429, headers={"Retry-After": value})
    assert parse_retry_after(response, lambda: 0.0) is None


def test_retry_budget_exhausted_raises_api_error_with_context() -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(
        10**6, lambda r: httpx.Response(502, text="<h1>Bad gateway</h1>", request=r)
    )
    with pytest.raises(ApiError) as info:
        client_for(fake, clock, max_retry_wait_s=20).fetch("bookings")
    message = str(info.value)
    assert "GET /v1/bookings?page=1&per_page=100" in message and "HTTP 502" in message
    assert "Bad gateway" in message and "max_retry_wait_s=20" in message
    assert sum(clock.slept) <= 20


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_never_retried(status: int) -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(1, lambda r: httpx.Response(status, json={"error": "x"}, request=r))
    with pytest.raises(ApiError, match=f"HTTP {status}"):
        client_for(fake, clock).fetch("bookings")
    assert fake.count("/v1/bookings") == 1 and clock.slept == []


def test_in_flight_requests_bounded_by_concurrency() -> None:
    fake, clock = fake_with(400), FakeClock()
    state = {"now": 0, "peak": 0}
    inner = fake.handle

    async def tracking(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        for _ in range(5):
            await asyncio.sleep(0)
        state["now"] -= 1
        return await inner(request)

    settings = ClientSettings(
        base_url=fake.base_url,
        token_url=fake.token_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        per_page=10,
        concurrency=3,
    )
    client = CaliraClient(
        settings, transport=httpx.MockTransport(tracking), sleep=clock.sleep, clock=clock
    )
    assert len(client.fetch("bookings").rows["bookings"]) == 400
    assert state["peak"] == 3


def test_token_bucket_paces_requests() -> None:
    fake, clock = fake_with(200), FakeClock()
    start = clock.now
    result = client_for(fake, clock, per_page=10, max_rps=5).fetch("bookings")
    assert result.stats.requests == 22  # token + 20 pages + probe past the exact end
    assert clock.now - start == pytest.approx(21 / 5, abs=0.3)


def test_adaptive_limiter_slows_after_429_and_recovers_slowly() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(max_rps=10, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(20):
            await limiter.acquire()
            limiter.on_success()
        sent_at = clock.now
        limiter.on_rate_limited(sent_at)
        assert limiter.rate is not None and limiter.rate <= 9
        slowed = limiter.rate
        limiter.on_rate_limited(sent_at - 0.01)  # sent before the cut: same wave, no second cut
        assert limiter.rate == slowed
        for _ in range(10):
            limiter.on_success()
        assert slowed < limiter.rate < 10

    asyncio.run(run())


def test_unlimited_client_adapts_to_what_the_server_lets_through() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(max_rps=None, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(100):  # 100 req/s succeed for a second
            await limiter.acquire()
            limiter.on_success()
            clock.now += 0.01
        limiter.on_rate_limited(clock.now)
        assert limiter.rate == pytest.approx(90, rel=0.05)
        before = clock.now
        for _ in range(10):
            await limiter.acquire()
        assert clock.now - before == pytest.approx(10 / 90, abs=0.03)

    asyncio.run(run())


# --- damaged 2xx responses: truncated/invalid bodies and missing pagination headers ----------

PAGE_HEADERS = {"X-Total-Records": "5", "X-Per-Page": "100", "X-Current-Page": "1"}


def damaged(body: bytes, headers: dict[str, str] | None = None) -> Any:
    return lambda r: httpx.Response(200, content=body, headers=headers or {}, request=r)


BODY_FAULTS = [
    pytest.param(
        damaged(b'[{"id": 5, "cost": "1', PAGE_HEADERS),
        "bad_body",
        "not valid JSON",
        id="truncated",
    ),
    pytest.param(
        damaged(b"<html>Bad gateway</html>", PAGE_HEADERS), "bad_body", "not valid JSON", id="html"
    ),
    pytest.param(
        damaged(b'[{"id": 5, "name": "caf\xc3', PAGE_HEADERS),
        "bad_body",
        "not UTF-8",
        id="cut-in-utf8-char",
    ),
    pytest.param(
        damaged(b'[{"id": 5, "name": "\xff"}]', PAGE_HEADERS),
        "bad_body",
        "not UTF-8",
        id="latin1-byte",
    ),
    pytest.param(
        damaged(b"[]", {"X-Per-Page": "100"}),
        "bad_headers",
        "no X-Total-Records header",
        id="no-total",
    ),
    pytest.param(
        damaged(b"[]", {"X-Total-Records": "5"}),
        "bad_headers",
        "no X-Per-Page header",
        id="no-per-page",
    ),
]


@pytest.mark.parametrize(("make", "cause", "message"), BODY_FAULTS)
@pytest.mark.parametrize("failures", [1, 2])
def test_transient_body_faults_are_retried(
    make: Any, cause: str, message: str, failures: int
) -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(failures, make)
    result = client_for(fake, clock).fetch("bookings")
    assert [r["id"] for r in result.rows["bookings"]] == [5, 4, 3, 2, 1]
    assert result.stats.retries_by_cause[cause] == failures
    assert result.stats.as_metadata()[f"retries_{cause}"] == failures
    assert fake.count("/v1/bookings") == failures + 1
    assert len([s for s in clock.slept if s >= 0.25]) == failures  # backed off each time


@pytest.mark.parametrize(("make", "cause", "message"), BODY_FAULTS)
def test_persistent_body_faults_raise_after_bounded_retries(
    make: Any, cause: str, message: str
) -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(10**6, make)
    with pytest.raises(CaliraError, match=message) as info:
        client_for(fake, clock).fetch("bookings")
    text = str(info.value)
    assert "GET /v1/bookings?page=1&per_page=100" in text
    assert "3 attempts, none usable" in text and "retry later" in text.lower()
    assert fake.count("/v1/bookings") == 3
    expected = PaginationError if cause == "bad_headers" else ApiError
    assert isinstance(info.value, expected)


def test_bad_body_on_a_later_page_is_retried_not_dropped() -> None:
    fake, clock = fake_with(25), FakeClock()
    calls = {"n": 0}

    def cut_page_two(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/bookings" and request.url.params["page"] == "2":
            calls["n"] += 1
            if calls["n"] == 1:
                headers = {"X-Total-Records": "25", "X-Per-Page": "10", "X-Current-Page": "2"}
                return httpx.Response(200, content=b'[{"id": 1', headers=headers, request=request)
        return None

    fake.inject = cut_page_two
    result = client_for(fake, clock, per_page=10).fetch("bookings")
    assert sorted(r["id"] for r in result.rows["bookings"]) == list(range(1, 26))
    assert result.stats.retries_by_cause["bad_body"] == 1


def test_persistent_bad_detail_body_raises_naming_the_detail() -> None:
    fake, clock = fake_with(), FakeClock()
    for record in fake.bookings:
        del record["cost"]  # needs details
    fake.inject = lambda r: (
        httpx.Response(200, content=b'{"id": 3, "co', request=r)
        if r.url.path == "/v1/bookings/3"
        else None
    )
    with pytest.raises(
        ApiError, match=r"GET /v1/bookings/3 .*not valid JSON.*3 attempts, none usable"
    ):
        client_for(fake, clock).fetch("bookings")
    assert fake.count("/v1/bookings/3") == 3


def test_transient_bad_detail_body_is_retried() -> None:
    fake, clock = fake_with(), FakeClock()
    for record in fake.bookings:
        del record["cost"]
    fake.inject = fail_first_path("/v1/bookings/3", 1, damaged(b'{"id": 3, "co'))
    result = client_for(fake, clock).fetch("bookings")
    assert len(result.rows["bookings"]) == 5
    assert result.stats.retries_by_cause["bad_body"] == 1
    assert fake.count("/v1/bookings/3") == 2


def fail_first_path(path: str, n: int, make: Any) -> Any:
    calls = {"n": 0}

    def inject(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != path:
            return None
        calls["n"] += 1
        return make(request) if calls["n"] <= n else None

    return inject


def test_utf8_body_with_non_ascii_text_is_fine() -> None:
    fake, clock = fake_with(1), FakeClock()
    fake.bookings[0]["add_ons"] = "Kühlung – ✓"
    result = client_for(fake, clock).fetch("bookings")
    assert result.rows["bookings"][0]["add_ons"] == "Kühlung – ✓"
    assert result.stats.retries == 0


def test_wrong_current_page_is_not_retried() -> None:
    fake, clock = fake_with(), FakeClock()
    fake.inject = fail_first(10**6, damaged(b"[]", {**PAGE_HEADERS, "X-Current-Page": "7"}))
    with pytest.raises(PaginationError, match="X-Current-Page 7"):
        client_for(fake, clock).fetch("bookings")
    assert fake.count("/v1/bookings") == 1


def test_sandbox_body_faults_still_give_the_clean_result() -> None:
    from calira_pipeline.sandbox import (
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        FaultConfig,
        Sandbox,
        SandboxConfig,
    )

    def fetch(faults: FaultConfig) -> Any:
        sandbox = Sandbox(SandboxConfig(scale="tiny", faults=faults))
        settings = ClientSettings(
            base_url="https://sandbox.calira.invalid/v1",
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            per_page=20,
        )
        clock = FakeClock()
        client = CaliraClient(
            settings,
            transport=sandbox.transport(),
            sleep=clock.sleep,
            clock=clock,
            rng=random.Random(0),
        )
        return client.fetch("bookings")

    clean = fetch(FaultConfig())
    faulty = fetch(FaultConfig(truncated_json_rate=0.1, missing_headers_rate=0.1, seed=1))

    def by_id(result: Any) -> list[Any]:
        return sorted(result.rows["bookings"], key=lambda row: row["id"])

    assert by_id(faulty) == by_id(clean) and faulty.api_total == clean.api_total
    assert faulty.stats.retries_by_cause["bad_body"] > 0
    assert faulty.stats.retries_by_cause["bad_headers"] > 0


class TricklingBody(httpx.AsyncByteStream):
    """A body that never ends: one byte every 20 ms, so no single read ever times out."""

    async def __aiter__(self) -> Any:
        yield b"["
        while True:
            await asyncio.sleep(0.02)
            yield b" "


def trickle(request: httpx.Request) -> httpx.Response | None:
    if request.url.path != "/v1/bookings":
        return None
    return httpx.Response(200, stream=TricklingBody(), request=request)


def test_a_trickling_body_fails_at_the_request_deadline_naming_the_endpoint() -> None:
    fake = fake_with()
    fake.inject = trickle
    client = client_for(fake, FakeClock(), timeout_s=0.3, max_retry_wait_s=0)
    with pytest.raises(ApiError) as info:
        client.fetch("bookings")
    message = str(info.value)
    assert message.startswith("GET /v1/bookings?")
    assert "no complete response within timeout_s=0.3 (CALIRA_TIMEOUT_S)" in message
    assert "CALIRA_TIMEOUT_S" in message.split(". ", 1)[1]


def test_timed_out_attempts_count_towards_the_retry_budget() -> None:
    fake = fake_with()
    fake.inject = trickle
    clock = FakeClock()
    # 0.3 s per attempt of real time, with backoff on the fake clock: the budget of 1 s is used
    # up by the attempts themselves, so the request gives up after a handful, not after ~10.
    client = client_for(fake, clock, timeout_s=0.3, max_retry_wait_s=1.2)
    with pytest.raises(ApiError, match="no complete response"):
        client.fetch("bookings")
    assert 1 <= fake.count("/v1/bookings") <= 4


def test_a_fetch_longer_than_max_runtime_stops_with_a_clear_error() -> None:
    fake = fake_with()
    fake.inject = trickle
    client = client_for(fake, FakeClock(), timeout_s=60, max_runtime_s=0.3)
    with pytest.raises(ApiError) as info:
        client.fetch("bookings")
    message = str(info.value)
    assert "Fetching bookings took longer than max_runtime_s=0.3s (CALIRA_MAX_RUNTIME_S)" in message
    assert "nothing was stored" in message
    assert is_permanent(info.value)  # a step retry would run out of time again
