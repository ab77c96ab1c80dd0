"""The API client against the sandbox on a real loopback socket (no MockTransport).

Faults on: latency, a server-side rate limit, 5 % 5xx, tokens that live a few seconds, and new
bookings inserted at the head of the list while it is being paged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calira_pipeline.api import CaliraClient, ClientSettings
from calira_pipeline.api.tokens import TokenFileStore
from calira_pipeline.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    Sandbox,
    SandboxConfig,
)

pytestmark = pytest.mark.integration

FAULTS = FaultConfig(
    latency_ms=3,
    rate_limit_rps=400,
    rate_limit_burst=20,
    retry_after="mixed",
    error_rate=0.05,
    head_inserts_per_page=1,
    seed=1,
)


def truth(sb: Sandbox) -> dict[str, set[int]]:
    ds = sb.dataset
    return {
        "accounts": {a["id"] for a in ds.accounts},
        "equipment": {e["id"] for e in ds.equipment},
        "bookings": {b["id"] for b in ds.bookings},
        "projects": {p["id"] for ps in ds.projects.values() for p in ps},
        "groups": {g["id"] for g in ds.groups},
    }


def settings_for(base_url: str, **overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "base_url": base_url + "/v1",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "concurrency": 8,
        "max_retry_wait_s": 60,
    }
    values.update(overrides)
    return ClientSettings(**values)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Sandbox, str]]:
    shape, aliases = request.param
    sb = Sandbox(
        SandboxConfig(
            seed=0,
            scale="small",
            list_shape=shape,
            live_aliases=aliases,
            token_lifetime_s=2,
            faults=FAULTS,
        )
    )
    with sb.serve_in_thread() as base_url:
        yield sb, base_url


def assert_exact_ids(sb: Sandbox, expected: dict[str, set[int]], client: CaliraClient) -> None:
    for collection, ids in expected.items():
        result = client.fetch(collection)
        got = [r["id"] for r in result.rows[collection]]
        assert len(got) == len(set(got)), collection
        if collection == "bookings":  # new bookings may or may not be caught; no old one lost
            assert set(got) - set(sb.inserted_booking_ids) == ids
            assert sb.inserted_booking_ids, "the head-insert fault did not fire"
        else:
            assert set(got) == ids, collection


@pytest.mark.parametrize(
    "served", [("full", False), ("slim", True)], indirect=True, ids=["full", "slim-live-aliases"]
)
def test_every_collection_loads_exactly_under_faults(
    served: tuple[Sandbox, str], caplog: pytest.LogCaptureFixture
) -> None:
    sb, base_url = served
    expected = truth(sb)
    client = CaliraClient(settings_for(base_url))
    with caplog.at_level(logging.DEBUG):
        assert_exact_ids(sb, expected, client)
    assert (
        sb.stats.count(status=503) + sb.stats.count(status=500) + sb.stats.count(status=502) > 0
    ), "the 5xx fault did not fire"
    assert sb.stats.peak_concurrency <= 8 + 1
    assert SANDBOX_CLIENT_SECRET not in caplog.text
    # A 401 from an expired token is logged by httpcore with its `WWW-Authenticate: Bearer`
    # challenge: the scheme's name is no secret, a credential after it would be.
    assert not re.search(r"Bearer\s+\S", caplog.text)
    assert not any(token in caplog.text for token in sb.authority.live_access_tokens())


@pytest.mark.parametrize("served", [("full", True)], indirect=True, ids=["refresh-token"])
def test_refresh_token_mode_rotates_and_persists(
    served: tuple[Sandbox, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sb, base_url = served
    expected = truth(sb)
    seed = sb.issue_refresh_token()
    token_file = tmp_path / "calira-tokens.json"
    client = CaliraClient(settings_for(base_url, refresh_token=seed, token_file=token_file))
    assert client.auth_mode == "refresh_token"
    with caplog.at_level(logging.DEBUG):
        assert_exact_ids(sb, expected, client)
        me = client.fetch("current_user")
    assert len(me.rows["current_user"]) == 1  # a user stands behind an authorised app
    saved = TokenFileStore(token_file).load()
    assert saved is not None and saved.refresh_token is not None
    assert saved.refresh_token.reveal() != seed
    assert (token_file.stat().st_mode & 0o777) == 0o600
    for secret in (
        seed,
        saved.refresh_token.reveal(),
        saved.access_token.reveal(),
        SANDBOX_CLIENT_SECRET,
    ):
        assert secret not in caplog.text
    # a fresh process picks the rotated token up from the file although its seed is dead
    again = CaliraClient(settings_for(base_url, refresh_token=seed, token_file=token_file))
    assert {r["id"] for r in again.fetch("accounts").rows["accounts"]} == expected["accounts"]
