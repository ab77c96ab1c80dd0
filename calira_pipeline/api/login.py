"""One-time authorization-code login for apps that cannot use client credentials.

Opens the Calira consent page, receives the redirect on a one-shot loopback server, checks
``state`` (CSRF), exchanges the code and saves the tokens to the token file; refresh-token mode
then keeps them rotated.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .errors import AuthError, ConfigError
from .http import body_excerpt
from .settings import ClientSettings, Secret
from .token_store import FileTokenStore, replace_tokens
from .tokens import TokenFileStore, TokenSet

CALLBACK_PATH = "/callback"


class _CallbackServer(HTTPServer):
    result: dict[str, str] | None = None


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self.send_error(404)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items() if v}
        self.server.result = query
        body = b"Calira login received. You can close this window and return to the terminal."
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the default logger would print the authorization code to stderr


def _wait_for_redirect(server: _CallbackServer, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while server.result is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AuthError(
                f"No redirect from the Calira consent page within {timeout_s:g}s; run the login "
                "again and approve the app in the browser."
            )
        server.timeout = remaining
        server.handle_request()
    return server.result


def authorization_code_login(
    settings: ClientSettings,
    *,
    open_browser: Callable[[str], None],
    authorize_url: str | None = None,
    port: int = 0,
    timeout_s: float = 300,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Run the browser consent flow once and save the resulting tokens to ``token_file``."""
    client_secret = settings.client_secret
    if not settings.client_id or not isinstance(client_secret, Secret):
        raise ConfigError("Login needs CALIRA_CLIENT_ID and CALIRA_CLIENT_SECRET.")
    if settings.token_file is None and settings.token_store is None:
        raise ConfigError("Login needs CALIRA_TOKEN_FILE (or a token store) to save the tokens in.")
    state = secrets.token_urlsafe(24)
    server = _CallbackServer(("127.0.0.1", port), _CallbackHandler)
    try:
        redirect_uri = f"http://127.0.0.1:{server.server_port}{CALLBACK_PATH}"
        query = {
            "client_id": settings.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
        }
        if settings.scopes:
            query["scope"] = " ".join(settings.scopes)
        open_browser(f"{authorize_url or settings.authorize_url}?{urlencode(query)}")
        result = _wait_for_redirect(server, timeout_s)
    finally:
        server.server_close()
    if "error" in result:
        raise AuthError(
            f"Calira declined the authorisation ({result['error']}: "
            f"{result.get('error_description', 'no description')}); approve the app and retry."
        )
    if not secrets.compare_digest(result.get("state", ""), state):
        raise AuthError("The login redirect carried a wrong state (possible CSRF); not accepted.")
    code = result.get("code")
    if not code:
        raise AuthError("The login redirect carried no authorization code; run the login again.")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": settings.client_id,
        "client_secret": client_secret.reveal(),
        "redirect_uri": redirect_uri,
    }
    with httpx.Client(transport=transport, timeout=settings.timeout_s) as client:
        response = client.post(settings.resolved_token_url, data=form)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict):
        excerpt = body_excerpt(response, [code, client_secret.reveal()])
        raise AuthError(
            f"POST {settings.resolved_token_url} refused the authorization code with HTTP "
            f"{response.status_code}: {excerpt}. Check the app's redirect URI allows "
            f"{redirect_uri} (loopback) and the client id/secret."
        )
    store = settings.token_store
    if store is None:
        assert settings.token_file is not None
        store = FileTokenStore(TokenFileStore(settings.token_file))
    replace_tokens(store, TokenSet.from_response(payload, time.time()))
