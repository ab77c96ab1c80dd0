"""Each fault knob of the sandbox, and its request accounting."""

from __future__ import annotations

import asyncio
import json
from email.utils import parsedate_to_datetime

import httpx
import pytest

from calira_pipeline.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    Sandbox,
    SandboxConfig,
)
from calira_pipeline_tests.sandbox.in_process import InProcessClient


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _client(faults: FaultConfig, clock: FakeClock | None = None) -> InProcessClient:
    config = SandboxConfig(scale="tiny", faults=faults, clock=clock or FakeClock())
    sb = Sandbox(config)
    return InProcessClient(sb, sb.issue_access_token())


def test_latency_uses_the_injected_sleep_including_oauth() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    sb = Sandbox(SandboxConfig(scale="tiny", faults=FaultConfig(latency_ms=250)), sleep=record)
    client = InProcessClient(sb, sb.issue_access_token())
    client.get("/v1/accounts")
    client.post("/oauth/token", data={"grant_type": "client_credentials",
                                      "client_id": SANDBOX_CLIENT_ID,
                                      "client_secret": SANDBOX_CLIENT_SECRET})
    assert slept == [0.25, 0.25]


def test_token_bucket_rate_limit_refills_with_the_clock() -> None:
    clock = FakeClock()
    client = _client(FaultConfig(rate_limit_rps=2, rate_limit_burst=3), clock)
    assert [client.get("/v1/accounts").status_code for _ in range(4)] == [200, 200, 200, 429]
    limited = client.get("/v1/accounts")
    assert limited.headers["Retry-After"] == "1" and limited.json()["error"]
    clock.now += 0.5  # one token at 2 rps
    assert [client.get("/v1/accounts").status_code for _ in range(2)] == [200, 429]
    stats = client.sandbox.stats
    assert stats.count(route="/v1/accounts", status=429) == 3


def test_retry_after_forms() -> None:
    clock = FakeClock()
    date = _client(FaultConfig(rate_limit_rps=1, rate_limit_burst=1, retry_after="http-date"),
                   clock)
    date.get("/v1/accounts")
    when = parsedate_to_datetime(date.get("/v1/accounts").headers["Retry-After"])
    assert when.timestamp() == pytest.approx(clock.now + 1)
    zero = _client(FaultConfig(rate_limit_rps=1, rate_limit_burst=1, retry_after="zero"))
    zero.get("/v1/accounts")
    assert zero.get("/v1/accounts").headers["Retry-After"] == "0"
    mixed = _client(FaultConfig(rate_limit_rps=1, rate_limit_burst=1, retry_after="mixed"))
    mixed.get("/v1/accounts")
    forms = [mixed.get("/v1/accounts").headers["Retry-After"] for _ in range(3)]
    assert forms[0] == "1" and forms[1].endswith("GMT") and forms[2] == "0"


def test_error_rate_gives_5xx_sometimes_html_but_never_on_oauth() -> None:
    client = _client(FaultConfig(error_rate=1.0, seed=3))
    responses = [client.get("/v1/bookings") for _ in range(40)]
    assert {r.status_code for r in responses} == {500, 502, 503}
    assert any(r.headers["content-type"].startswith("text/html") for r in responses)
    assert any(r.headers["content-type"] == "application/json" for r in responses)
    token = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                              "client_id": SANDBOX_CLIENT_ID,
                                              "client_secret": SANDBOX_CLIENT_SECRET})
    assert token.status_code == 200


def test_faults_are_deterministic_for_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        client = _client(FaultConfig(error_rate=0.3, seed=seed))
        return [client.get("/v1/accounts").status_code for _ in range(30)]

    assert statuses(1) == statuses(1)
    assert statuses(1) != statuses(2)
    assert 200 in statuses(1) and any(s >= 500 for s in statuses(1))


def test_head_inserts_shift_later_pages() -> None:
    client = _client(FaultConfig(head_inserts_per_page=3))
    sb = client.sandbox
    before = len(sb.dataset.bookings)
    page1 = [b["id"] for b in client.get("/v1/bookings", params={"per_page": 10}).json()]
    assert len(sb.inserted_booking_ids) == 3 and len(sb.dataset.bookings) == before + 3
    assert min(sb.inserted_booking_ids) > max(page1)
    page2 = client.get("/v1/bookings", params={"per_page": 10, "page": 2})
    assert int(page2.headers["X-Total-Records"]) == before + 3
    assert [b["id"] for b in page2.json()][:3] == page1[-3:]  # the shift repeats records
    newest = sb.inserted_booking_ids[-1]
    assert client.get(f"/v1/bookings/{newest}").json() == sb.dataset.bookings[-1]
    lab = sb.dataset.equipment[0]["lab"]["id"]
    client.get("/v1/bookings", params={"provider_account": lab, "per_page": 1})
    assert sb.dataset.bookings[-1]["provider_lab"]["id"] == lab  # inserted where the client looks


def test_truncated_json() -> None:
    client = _client(FaultConfig(truncated_json_rate=1.0))
    r = client.get("/v1/bookings", params={"per_page": 5})
    assert r.status_code == 200 and r.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_missing_and_wrong_total_headers() -> None:
    missing = _client(FaultConfig(missing_headers_rate=1.0))
    r = missing.get("/v1/equipment")
    assert r.status_code == 200 and "X-Total-Records" not in r.headers
    assert "X-Per-Page" not in r.headers and isinstance(r.json(), list)
    wrong = _client(FaultConfig(wrong_total_rate=1.0))
    totals = {int(wrong.get("/v1/equipment").headers["X-Total-Records"]) for _ in range(5)}
    assert len(wrong.sandbox.dataset.equipment) not in totals


def test_stats_count_routes_statuses_and_reset() -> None:
    client = _client(FaultConfig())
    client.get("/v1/bookings")
    client.get("/v1/bookings/1")
    client.get("/v1/bookings", params={"per_page": "x"})
    client.get("/nowhere")
    stats = client.sandbox.stats
    assert stats.total == 4
    assert stats.by_route_status[("/v1/bookings", 200)] == 1
    assert stats.count(route="/v1/bookings/{id}") == 1
    assert stats.count(status=400) == 1 and stats.count(route="/v1/bookings") == 2
    stats.reset()
    assert stats.total == 0 and stats.count() == 0


def test_peak_concurrency() -> None:
    in_sleep = 0
    opened = asyncio.Event()

    async def gate(_: float) -> None:
        nonlocal in_sleep
        in_sleep += 1
        if in_sleep == 5:
            opened.set()
        await opened.wait()

    sb = Sandbox(SandboxConfig(scale="tiny", faults=FaultConfig(latency_ms=1)), sleep=gate)
    token = sb.issue_access_token()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(transport=sb.transport(), base_url="http://sb") as c:
            headers = {"Authorization": f"Bearer {token}"}
            rs = await asyncio.gather(*(c.get("/v1/accounts", headers=headers)
                                        for _ in range(5)))
            return [r.status_code for r in rs]

    assert asyncio.run(burst()) == [200] * 5
    assert sb.stats.peak_concurrency == 5
    assert sb.stats.total == 5
