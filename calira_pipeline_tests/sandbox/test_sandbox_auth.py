"""The sandbox's OAuth provider and the scope/token checks on /v1."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from calira_pipeline.sandbox import (
    ALL_SCOPES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    ClientApp,
    Sandbox,
    SandboxConfig,
)
from calira_pipeline.sandbox.auth import Grant
from calira_pipeline_tests.sandbox.in_process import InProcessClient

CREDS = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
REDIRECT = "http://127.0.0.1:8123/callback"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _token(client: InProcessClient, **form: str) -> dict[str, object]:
    r = client.post("/oauth/token", data=form)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _bearer(client: InProcessClient, token: object, path: str = "/v1/accounts") -> int:
    return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.fixture
def client() -> InProcessClient:
    return InProcessClient(Sandbox(SandboxConfig(scale="tiny")))


def test_client_credentials_with_form_and_basic_auth(client: InProcessClient) -> None:
    body = _token(client, grant_type="client_credentials", **CREDS)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200
    assert "refresh_token" not in body
    assert set(str(body["scope"]).split()) == ALL_SCOPES
    assert isinstance(body["created_at"], int)
    assert _bearer(client, body["access_token"]) == 200
    basic = base64.b64encode(f"{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}".encode()).decode()
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200 and r.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize("form", [
    {"client_id": SANDBOX_CLIENT_ID, "client_secret": "wrong"},
    {"client_id": "nobody", "client_secret": SANDBOX_CLIENT_SECRET},
    {"client_id": SANDBOX_CLIENT_ID},
])
def test_bad_client_authentication_is_401(client: InProcessClient, form: dict[str, str]) -> None:
    r = client.post("/oauth/token", data={"grant_type": "client_credentials", **form})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_authorization_code_flow(client: InProcessClient) -> None:
    r = client.get("/oauth/authorize", params={
        "client_id": SANDBOX_CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "read_user read_bookings", "state": "xyz"})
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT, **CREDS}
    body = _token(client, **form)
    assert body["refresh_token"] and body["scope"] == "read_bookings read_user"
    assert _bearer(client, body["access_token"], "/v1/me") == 200
    assert _bearer(client, body["access_token"], "/v1/accounts") == 403  # scope not granted
    reused = client.post("/oauth/token", data=form)  # codes are single-use
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("uri", ["https://127.0.0.1/cb", "http://example.com/cb", "cb"])
def test_authorize_refuses_non_loopback_redirects(client: InProcessClient, uri: str) -> None:
    r = client.get("/oauth/authorize", params={"client_id": SANDBOX_CLIENT_ID,
                                               "redirect_uri": uri, "response_type": "code"})
    assert r.status_code == 400


@pytest.mark.parametrize("uri", ["http://localhost:1/cb", "http://[::1]:9/cb"])
def test_authorize_accepts_other_loopback_spellings(client: InProcessClient, uri: str) -> None:
    r = client.get("/oauth/authorize", params={"client_id": SANDBOX_CLIENT_ID,
                                               "redirect_uri": uri, "response_type": "code"})
    assert r.status_code == 302 and r.headers["location"].startswith(uri + "?code=")


def test_refresh_tokens_rotate(client: InProcessClient) -> None:
    first = client.sandbox.issue_refresh_token()
    body = _token(client, grant_type="refresh_token", refresh_token=first, **CREDS)
    second = body["refresh_token"]
    assert second and second != first
    assert _bearer(client, body["access_token"], "/v1/me") == 200
    replay = client.post("/oauth/token",
                         data={"grant_type": "refresh_token", "refresh_token": first, **CREDS})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    third = _token(client, grant_type="refresh_token", refresh_token=str(second), **CREDS)
    assert third["refresh_token"] not in (first, second)


def test_tokens_expire_by_the_injected_clock() -> None:
    clock = FakeClock()
    sb = Sandbox(SandboxConfig(scale="tiny", token_lifetime_s=60, clock=clock))
    client = InProcessClient(sb)
    body = _token(client, grant_type="client_credentials", **CREDS)
    assert body["expires_in"] == 60 and body["created_at"] == int(clock.now)
    clock.now += 59.9
    assert _bearer(client, body["access_token"]) == 200
    clock.now += 0.1
    r = client.get("/v1/accounts", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_invalid_bearer_is_401(client: InProcessClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = client.get("/v1/bookings", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert "WWW-Authenticate" in r.headers


def test_scopes_are_enforced_per_endpoint() -> None:
    clients = {"narrow": ClientApp("s", frozenset({"read_accounts"})),
               "bookings-only": ClientApp("s", frozenset({"read_bookings"}))}
    sb = Sandbox(SandboxConfig(scale="tiny", clients=clients))
    narrow = InProcessClient(sb, sb.issue_access_token("narrow", frozenset({"read_accounts"})))
    assert narrow.get("/v1/accounts").status_code == 200
    assert narrow.get("/v1/groups").status_code == 200
    for path, scope in [("/v1/bookings", "read_bookings"), ("/v1/equipment", "read_equipment"),
                        ("/v1/me", "read_user"), ("/v1/accounts/3001/projects", "read_projects")]:
        r = narrow.get(path)
        assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
        assert scope in r.json()["error_description"]
    eq_id = sb.dataset.equipment[0]["id"]
    bookings_only = InProcessClient(sb, sb.issue_access_token("bookings-only",
                                                              frozenset({"read_bookings"})))
    assert bookings_only.get(f"/v1/equipment/{eq_id}/bookings").status_code == 200
    assert narrow.get(f"/v1/equipment/{eq_id}/bookings").status_code == 403
    too_wide = InProcessClient(sb).post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "narrow", "client_secret": "s",
        "scope": "read_bookings"})
    assert too_wide.status_code == 400 and too_wide.json()["error"] == "invalid_scope"


def test_client_credentials_can_be_disallowed() -> None:
    clients = {"web": ClientApp("s", ALL_SCOPES, allow_client_credentials=False)}
    client = InProcessClient(Sandbox(SandboxConfig(scale="tiny", clients=clients)))
    r = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": "web", "client_secret": "s"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    bad = client.post("/oauth/token", data={"grant_type": "password", "client_id": "web",
                                            "client_secret": "s"})
    assert bad.json()["error"] == "unsupported_grant_type"


def test_the_token_answer_without_http_revocation_and_approved_codes() -> None:
    """The sync core both /oauth/token and the unit tests' FakeCalira answer with."""
    sandbox = Sandbox(SandboxConfig(scale="tiny"))
    authority = sandbox.authority
    status, body = authority.token_answer({}, {"grant_type": "client_credentials", **CREDS})
    assert status == 200 and body["access_token"] in authority.live_access_tokens()
    assert "refresh_token" not in body  # no user behind a client-credentials token
    authority.revoke_access_tokens()
    assert authority.live_access_tokens() == frozenset()
    assert authority.check(f"Bearer {body['access_token']}") is None

    grant = Grant(SANDBOX_CLIENT_ID, ALL_SCOPES, has_owner=True)
    authority.approve_code("c-1", grant, REDIRECT)
    code_form = {"grant_type": "authorization_code", "code": "c-1", "redirect_uri": REDIRECT}
    status, body = authority.token_answer({}, {**code_form, **CREDS})
    assert status == 200 and body["refresh_token"] in authority.live_refresh_tokens()
    status, again = authority.token_answer({}, {**code_form, **CREDS})  # a code is single use
    assert (status, again["error"]) == (400, "invalid_grant")
    authority.revoke_refresh_tokens()
    refresh = {"grant_type": "refresh_token", "refresh_token": str(body["refresh_token"])}
    assert authority.token_answer({}, {**refresh, **CREDS})[0] == 400

    authority.accept_access_token("static-1", grant)
    assert _bearer(InProcessClient(sandbox), "static-1") == 200
