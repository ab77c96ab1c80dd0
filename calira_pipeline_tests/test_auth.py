"""Auth modes, token renewal, refresh-token rotation, login, and settings safety."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from calira_pipeline.api import (
    AuthError,
    CaliraClient,
    ClientSettings,
    ConfigError,
    authorization_code_login,
)
from calira_pipeline.api.tokens import TokenFileStore
from calira_pipeline_tests.fake_calira import FakeCalira, FakeClock, client_for_fake


def fake_api() -> FakeCalira:
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
            for i in range(30, 0, -1)
        ]
    )


def client_for(fake: FakeCalira, clock: FakeClock | None = None, **overrides: Any) -> CaliraClient:
    return client_for_fake(fake, clock, **{"per_page": 10, "concurrency": 4, **overrides})


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ({"client_id": "a", "client_secret": "b"}, "client_credentials"),
        (
            {"client_id": "a", "client_secret": "b", "refresh_token": "r", "token_file": "t"},
            "refresh_token",
        ),
        ({"client_id": "a", "client_secret": "b", "token_file": "t"}, "refresh_token"),
        ({"access_token": "x"}, "access_token"),
    ],
)
def test_auth_mode_from_settings(values: dict[str, Any], mode: str) -> None:
    assert ClientSettings(**values).auth_mode == mode


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({}, "CALIRA_CLIENT_ID"),
        ({"client_id": "a"}, "CALIRA_CLIENT_SECRET"),
        ({"access_token": "x", "client_secret": "b"}, "CALIRA_ACCESS_TOKEN"),
        ({"client_id": "a", "client_secret": "b", "refresh_token": "r"}, "CALIRA_TOKEN_FILE"),
        ({"refresh_token": "r", "token_file": "t"}, "CALIRA_CLIENT_ID"),
    ],
)
def test_bad_credential_sets_are_one_clear_config_error(values: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        _ = ClientSettings(**values).auth_mode


def test_from_env_reads_calira_variables() -> None:
    env = {
        "CALIRA_CLIENT_ID": "a",
        "CALIRA_CLIENT_SECRET": "b",
        "CALIRA_SCOPES": "read_x read_y",
        "CALIRA_BASE_URL": "https://api.staging.clustermarket.com/v1",
        "CALIRA_TOKEN_URL": "",
    }
    settings = ClientSettings.from_env(env)
    assert settings.auth_mode == "client_credentials" and settings.scopes == ("read_x", "read_y")
    assert settings.resolved_token_url == "https://app.staging.clustermarket.com/oauth/token"


@pytest.mark.parametrize(
    ("base", "token"),
    [
        ("https://api.clustermarket.com/v1", "https://app.clustermarket.com/oauth/token"),
        ("http://127.0.0.1:8123/v1", "http://127.0.0.1:8123/oauth/token"),
        ("http://localhost:9/v1", "http://localhost:9/oauth/token"),
        ("https://calira.example.org/api/v1", "https://calira.example.org/oauth/token"),
    ],
)
def test_default_token_url(base: str, token: str) -> None:
    assert ClientSettings(base_url=base).resolved_token_url == token


@pytest.mark.parametrize("url", ["http://api.clustermarket.com/v1", "http://10.0.0.5/v1"])
def test_plain_http_refused_unless_loopback_or_allowed(url: str) -> None:
    with pytest.raises(ConfigError, match="plain HTTP"):
        ClientSettings(base_url=url)
    assert ClientSettings(base_url=url, allow_insecure_http=True).base_url == url
    with pytest.raises(ConfigError, match="token_url"):
        ClientSettings(token_url=url + "/oauth/token")
    for loopback in ("http://127.0.0.2/v1", "http://[::1]:80/v1", "http://localhost/v1"):
        ClientSettings(base_url=loopback)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pa55word-xyz@api.clustermarket.com/v1",
        "https://pa55word-xyz@api.clustermarket.com/v1",
        "http://user:pa55word-xyz@127.0.0.1:8000/v1",
        "ftp://user:pa55word-xyz@host/v1",
    ],
)
@pytest.mark.parametrize("field", ["base_url", "token_url"])
def test_urls_with_userinfo_are_refused_without_quoting_it(url: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ClientSettings(**{field: url})
    message = str(info.value)
    assert "pa55word" not in message and "user" not in message.split("must")[0]
    assert f"{field} (CALIRA_" in message and "must not contain a user name or password" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_display_url_never_shows_userinfo_or_query() -> None:
    from calira_pipeline.api.settings import display_url

    assert display_url("https://u:p@h.example:8443/v1?key=s") == "https://h.example:8443/v1"
    assert display_url("http://[::1]:80/v1") == "http://[::1]:80/v1"


def test_settings_repr_hides_secrets() -> None:
    settings = ClientSettings(
        client_id="cid", client_secret="s3cr3t-value", refresh_token="rt-value-xyz", token_file="t"
    )
    text = repr(settings) + str(settings.client_secret)
    assert "s3cr3t" not in text and "rt-value" not in text and "***" in text


# --- client credentials / static token ------------------------------------------------------


def test_client_credentials_posts_form_fields_with_scope() -> None:
    fake = fake_api()
    client_for(fake, scopes=["read_bookings", "read_equipment"]).fetch("bookings")
    token_request = next(r for r in fake.requests if r.url.path == "/oauth/token")
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert fake.token_requests == [
        {
            "grant_type": "client_credentials",
            "client_id": "cid",
            "client_secret": fake.client_secret,
            "scope": "read_bookings read_equipment",
        }
    ]


def test_renews_before_expiry_using_margin() -> None:
    fake, clock = fake_api(), FakeClock()
    fake.expires_in = 600
    client = client_for(fake, clock, refresh_margin_s=60)
    client.fetch("bookings")
    clock.now += 500  # 100 s left: outside the margin, reuse
    client.fetch("bookings")
    assert len(fake.token_requests) == 1
    clock.now += 45  # 55 s left: inside the margin, renew first
    client.fetch("bookings")
    assert len(fake.token_requests) == 2


def test_401_refreshes_once_for_concurrent_requests_and_retries() -> None:
    fake = fake_api()
    client = client_for(fake)
    client.fetch("bookings")
    fake.expire_access_tokens()  # server-side revocation before our expiry
    result = client.fetch("bookings")
    assert len(result.rows["bookings"]) == 30
    assert len(fake.token_requests) == 2  # one renewal although 4 requests saw 401 at once
    assert result.stats.retries_by_cause["401-refresh"] >= 1


def test_second_401_is_auth_error() -> None:
    fake = fake_api()
    fake.inject = lambda r: (
        httpx.Response(401, json={"error": "invalid_token"}, request=r)
        if r.url.path.startswith("/v1")
        else None
    )
    with pytest.raises(AuthError, match="even with a freshly renewed token"):
        client_for(fake).fetch("bookings")


def test_static_access_token_rejected_is_auth_error() -> None:
    fake = fake_api()
    client = client_for(fake, client_id=None, client_secret=None, access_token="expired-token")
    with pytest.raises(AuthError, match="static access token"):
        client.fetch("bookings")


def test_static_access_token_is_sent_as_bearer() -> None:
    fake = fake_api()
    fake.accept_access_token("good-token-1")
    client = client_for(fake, client_id=None, client_secret=None, access_token="good-token-1")
    assert len(client.fetch("bookings").rows["bookings"]) == 30
    assert fake.token_requests == []


def test_token_endpoint_rejection_explains_fix() -> None:
    fake = fake_api()
    with pytest.raises(AuthError, match="invalid_client.*CALIRA_CLIENT_ID") as info:
        client_for(fake, client_secret="wrong-secret").fetch("bookings")
    assert "wrong-secret" not in str(info.value)


# --- refresh-token mode ---------------------------------------------------------------------


def test_refresh_token_rotation_is_persisted_privately(tmp_path: Path) -> None:
    fake = fake_api()
    seed = fake.issue_refresh_token()
    token_file = tmp_path / "calira" / "tokens.json"
    client = client_for(fake, refresh_token=seed, token_file=token_file)
    client.fetch("bookings")
    saved = TokenFileStore(token_file).load()
    assert saved is not None and saved.refresh_token is not None
    rotated = saved.refresh_token.reveal()
    assert rotated != seed and rotated in fake.refresh_tokens and seed not in fake.refresh_tokens
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert [p.name for p in token_file.parent.iterdir()] == sorted(
        ["tokens.json", "tokens.json.lock"]
    ) or {p.name for p in token_file.parent.iterdir()} == {"tokens.json", "tokens.json.lock"}
    # a new process starts from the file, not the (now dead) seed
    fake.expire_access_tokens()
    client_for(fake, refresh_token=seed, token_file=token_file).fetch("bookings")
    assert fake.token_requests[-1]["refresh_token"] == rotated


def test_two_processes_refreshing_at_once_do_not_lock_each_other_out(tmp_path: Path) -> None:
    fake = fake_api()
    token_file = tmp_path / "tokens.json"
    seed = fake.issue_refresh_token()
    errors: list[BaseException] = []

    def run() -> None:  # separate client + event loop per thread, sharing only the file
        try:
            client_for(fake, refresh_token=seed, token_file=token_file).fetch("bookings")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    grants = [f["grant_type"] for f in fake.token_requests]
    assert grants == ["refresh_token"]  # the others adopted the rotated tokens from the file


def test_stale_file_falls_back_to_fresh_seed(tmp_path: Path) -> None:
    fake = fake_api()
    token_file = tmp_path / "tokens.json"
    client_for(fake, refresh_token=fake.issue_refresh_token(), token_file=token_file).fetch(
        "bookings"
    )
    fake.revoke_refresh_tokens()  # revoked; an operator pastes a fresh one
    fake.expire_access_tokens()
    fresh = fake.issue_refresh_token()
    client_for(fake, refresh_token=fresh, token_file=token_file).fetch("bookings")
    assert fake.token_requests[-1]["refresh_token"] == fresh


def test_used_refresh_token_gives_clear_auth_error(tmp_path: Path) -> None:
    fake = fake_api()
    with pytest.raises(AuthError, match="invalid_grant.*authorization-code login"):
        client_for(fake, refresh_token="rt-dead-value", token_file=tmp_path / "t.json").fetch(
            "bookings"
        )


# --- authorization-code login ---------------------------------------------------------------


def _browser(answer: dict[str, str] | None = None) -> Any:
    seen: dict[str, str] = {}

    def open_browser(url: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        seen.update(query, url=url)
        reply = answer if answer is not None else {"code": "the-code", "state": query["state"]}

        def visit() -> None:
            httpx.get(query["redirect_uri"], params=reply, timeout=5)

        threading.Thread(target=visit, daemon=True).start()

    open_browser.seen = seen  # type: ignore[attr-defined]
    return open_browser


def test_login_exchanges_code_and_saves_tokens(tmp_path: Path) -> None:
    fake = fake_api()
    token_file = tmp_path / "tokens.json"
    settings = ClientSettings(
        base_url=fake.base_url,
        token_url=fake.token_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        token_file=token_file,
        scopes="read_bookings",
    )
    browser = _browser()
    authorization_code_login(
        settings,
        open_browser=browser,
        timeout_s=10,
        authorize_url="https://app.calira.test/oauth/authorize",
        transport=fake.sync_transport,
    )
    seen = browser.seen
    assert seen["url"].startswith("https://app.calira.test/oauth/authorize?")
    assert seen["response_type"] == "code" and seen["scope"] == "read_bookings"
    assert seen["redirect_uri"].startswith("http://127.0.0.1:")
    assert fake.token_requests[0]["grant_type"] == "authorization_code"
    assert fake.token_requests[0]["redirect_uri"] == seen["redirect_uri"]
    saved = TokenFileStore(token_file).load()
    assert saved is not None and saved.refresh_token is not None
    # the saved tokens drive refresh-token mode afterwards
    client = client_for(fake, token_file=token_file)
    assert client.auth_mode == "refresh_token"
    assert len(client.fetch("bookings").rows["bookings"]) == 30


def test_login_rejects_wrong_state(tmp_path: Path) -> None:
    fake = fake_api()
    settings = ClientSettings(
        base_url=fake.base_url,
        token_url=fake.token_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        token_file=tmp_path / "t.json",
    )
    with pytest.raises(AuthError, match="wrong state"):
        authorization_code_login(
            settings,
            open_browser=_browser({"code": "c", "state": "evil"}),
            timeout_s=10,
            transport=fake.sync_transport,
        )
    assert fake.token_requests == [] and not (tmp_path / "t.json").exists()


def test_margin_longer_than_token_life_does_not_renew_every_request() -> None:
    fake, clock = fake_api(), FakeClock()
    fake.expires_in = 4  # shorter than the 60 s default margin
    client = client_for(fake, clock)
    result = client.fetch("bookings")
    assert len(result.rows["bookings"]) == 30 and len(fake.token_requests) == 1
    clock.now += 1
    client.fetch("bookings")
    assert len(fake.token_requests) == 1
    clock.now += 2  # past half the lifetime: renew
    client.fetch("bookings")
    assert len(fake.token_requests) == 2
