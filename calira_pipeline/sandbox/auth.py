"""A Doorkeeper-like OAuth2 provider: client credentials, authorization code, rotating refresh."""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from calira_pipeline.sandbox.config import ClientApp


@dataclass(frozen=True)
class Grant:
    """What a token or code stands for."""

    client_id: str
    scopes: frozenset[str]
    has_owner: bool  # False for client credentials: no user behind the token


@dataclass(frozen=True)
class AccessToken:
    grant: Grant
    expires_at: float


def oauth_error(status: int, error: str, description: str) -> tuple[int, dict[str, object]]:
    return status, {"error": error, "error_description": description}


def oauth_error_response(status: int, error: str, description: str) -> JSONResponse:
    status, body = oauth_error(status, error, description)
    return JSONResponse(body, status_code=status)


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _expiry(now: float, lifetime_s: float) -> float:
    # A lifetime past what a float holds (a hostile answer a test asks for) never expires.
    return now + lifetime_s if lifetime_s < 1e300 else math.inf


async def _read_form(request: Request) -> dict[str, str]:
    """Form-urlencoded (what OAuth clients send) or JSON, without python-multipart."""
    body = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


class TokenAuthority:
    """Issues, rotates and checks tokens. One instance per Sandbox."""

    def __init__(self, clients: Mapping[str, ClientApp], lifetime_s: float,
                 clock: Callable[[], float]) -> None:
        self.clients = clients
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, Grant] = {}
        self._codes: dict[str, tuple[Grant, str]] = {}  # code -> (grant, redirect_uri)
        self.issued: list[str] = []  # every token ever handed out, for leak tests

    # -- token bookkeeping ------------------------------------------------------------------
    def issue(self, grant: Grant) -> dict[str, object]:
        now = self.clock()
        token = secrets.token_urlsafe(32)
        self.issued.append(token)
        self._access[token] = AccessToken(grant, _expiry(now, self.lifetime_s))
        body: dict[str, object] = {"access_token": token, "token_type": "Bearer",
                                   "expires_in": int(self.lifetime_s)}
        if grant.has_owner:
            refresh = secrets.token_urlsafe(32)
            self.issued.append(refresh)
            self._refresh[refresh] = grant
            body["refresh_token"] = refresh
        body["scope"] = " ".join(sorted(grant.scopes))
        body["created_at"] = int(now)
        return body

    def issue_refresh_token(self, client_id: str, scopes: frozenset[str]) -> str:
        token = secrets.token_urlsafe(32)
        self.issued.append(token)
        self._refresh[token] = Grant(client_id, frozenset(scopes), has_owner=True)
        return token

    def check(self, authorization: str | None) -> AccessToken | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        found = self._access.get(authorization[7:].strip())
        if found is None or self.clock() >= found.expires_at:
            return None
        return found

    def revoke_access_tokens(self) -> None:
        """Every access token stops working now (a server-side revocation)."""
        self._access.clear()

    def revoke_refresh_tokens(self) -> None:
        self._refresh.clear()

    def accept_access_token(self, token: str, grant: Grant) -> None:
        """`token` is valid from now on, as one issued elsewhere (a static token)."""
        self._access[token] = AccessToken(grant, _expiry(self.clock(), self.lifetime_s))

    def live_access_tokens(self) -> frozenset[str]:
        now = self.clock()
        return frozenset(t for t, access in self._access.items() if now < access.expires_at)

    def live_refresh_tokens(self) -> frozenset[str]:
        return frozenset(self._refresh)

    def approve_code(self, code: str, grant: Grant, redirect_uri: str) -> None:
        """The user's consent in the browser: `code` may be redeemed once for `grant`."""
        self._codes[code] = (grant, redirect_uri)

    # -- endpoints --------------------------------------------------------------------------
    async def token_endpoint(self, request: Request) -> Response:
        status, body = self.token_answer(request.headers, await _read_form(request))
        return JSONResponse(body, status_code=status)

    def token_answer(self, headers: Mapping[str, str],
                     form: Mapping[str, str]) -> tuple[int, dict[str, object]]:
        """What POST /oauth/token answers (status, JSON body), for any HTTP layer."""
        client_id, secret = self._client_auth(headers, form)
        app = self.clients.get(client_id or "")
        if app is None or secret is None or not secrets.compare_digest(app.secret, secret):
            return oauth_error(401, "invalid_client", "Client authentication failed due to "
                               "unknown client, no client authentication included, or "
                               "unsupported authentication method.")
        assert client_id is not None
        grant_type = form.get("grant_type", "")
        if grant_type == "client_credentials":
            if not app.allow_client_credentials:
                return oauth_error(400, "unauthorized_client",
                                   "The client is not authorized to use this grant type.")
            scopes = self._scopes(form.get("scope"), app)
            if scopes is None:
                return oauth_error(400, "invalid_scope", "The requested scope is invalid.")
            return 200, self.issue(Grant(client_id, scopes, has_owner=False))
        if grant_type == "authorization_code":
            return self._redeem_code(client_id, form)
        if grant_type == "refresh_token":
            return self._rotate(client_id, form.get("refresh_token", ""))
        return oauth_error(400, "unsupported_grant_type",
                           f"The authorization grant type {grant_type!r} is not supported.")

    def _redeem_code(self, client_id: str,
                     form: Mapping[str, str]) -> tuple[int, dict[str, object]]:
        found = self._codes.pop(form.get("code", ""), None)  # single use, even when it fails
        if found is None or found[0].client_id != client_id:
            return oauth_error(400, "invalid_grant", "The authorization code is invalid, "
                               "expired, revoked or was issued to another client.")
        grant, redirect_uri = found
        if form.get("redirect_uri", "") != redirect_uri:
            return oauth_error(400, "invalid_grant", "The redirect_uri does not match.")
        return 200, self.issue(grant)

    def _rotate(self, client_id: str, refresh_token: str) -> tuple[int, dict[str, object]]:
        grant = self._refresh.get(refresh_token)
        if grant is None or grant.client_id != client_id:
            return oauth_error(400, "invalid_grant", "The refresh token is invalid, expired, "
                               "revoked or was issued to another client.")
        # Doorkeeper rotates: the used refresh token dies now; the old access token lives on.
        del self._refresh[refresh_token]
        return 200, self.issue(grant)

    async def authorize_endpoint(self, request: Request) -> Response:
        """Auto-approves, as if the user clicked Authorize for every lab."""
        q = request.query_params
        app = self.clients.get(q.get("client_id", ""))
        if app is None:
            return oauth_error_response(400, "invalid_client", "Unknown client_id.")
        redirect_uri = q.get("redirect_uri", "")
        if not _is_loopback_http(redirect_uri):
            return oauth_error_response(400, "invalid_redirect_uri",
                               "The sandbox only redirects to loopback http URIs.")
        if q.get("response_type") != "code":
            return oauth_error_response(400, "unsupported_response_type",
                               "The authorization server does not support this response type.")
        scopes = self._scopes(q.get("scope"), app)
        if scopes is None:
            return oauth_error_response(400, "invalid_scope", "The requested scope is invalid.")
        code = secrets.token_urlsafe(24)
        self.approve_code(code, Grant(q["client_id"], scopes, has_owner=True), redirect_uri)
        params = [("code", code)] + ([("state", q["state"])] if "state" in q else [])
        parts = urlsplit(redirect_uri)
        query = urlencode(parse_qsl(parts.query) + params)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)

    @staticmethod
    def _client_auth(headers: Mapping[str, str],
                     form: Mapping[str, str]) -> tuple[str | None, str | None]:
        header = headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            client_id, _, secret = decoded.partition(":")
            # RFC 6749 2.3.1: both halves are form-urlencoded before base64.
            return unquote_plus(client_id), unquote_plus(secret)
        return form.get("client_id"), form.get("client_secret")

    @staticmethod
    def _scopes(requested: str | None, app: ClientApp) -> frozenset[str] | None:
        if not requested:
            return app.scopes
        wanted = frozenset(requested.split())
        return wanted if wanted <= app.scopes else None
