"""Access tokens for API calls: obtained, renewed before expiry, and refreshed once after a 401."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import httpx

from .errors import AuthError
from .http import RetryingSender, body_excerpt, describe, redirect_error
from .settings import ClientSettings, Secret
from .token_store import FileTokenStore, Rotation, TokenStore
from .tokens import TokenFileStore, TokenSet

_ADVICE = {
    "invalid_grant": (
        "the refresh token was already used or revoked (Calira rotates refresh tokens); run the "
        "authorization-code login again to get a new one (`calira-pipeline auth login`, with "
        "--tenant <key> for a registry tenant)"
    ),
    "invalid_client": "check CALIRA_CLIENT_ID and CALIRA_CLIENT_SECRET",
    "unauthorized_client": "the app may not use this grant; use the authorization-code login",
    "unsupported_grant_type": (
        "this Calira deployment does not offer this grant; use the authorization-code login "
        "(refresh-token mode) instead"
    ),
    "invalid_scope": "request only scopes the app was created with (CALIRA_SCOPES)",
}


class TokenState:
    """The current tokens; outlives the per-call event loop so tokens are reused across fetches."""

    def __init__(self) -> None:
        self.tokens: TokenSet | None = None


def _reveal(secret: Secret | str | None) -> str:
    if secret is None:
        return ""
    return secret.reveal() if isinstance(secret, Secret) else secret


class TokenProvider:
    """Hands out a valid access token; one renewal at a time within the process."""

    def __init__(
        self,
        settings: ClientSettings,
        sender: RetryingSender,
        state: TokenState,
        wall_clock: Callable[[], float],
        logger: logging.Logger,
        secrets: list[str],
    ) -> None:
        self.settings = settings
        self._secrets = secrets  # shared list used to redact error excerpts
        self.mode = settings.auth_mode
        self.sender = sender
        self.state = state
        self._wall = wall_clock
        self._logger = logger
        self._lock = asyncio.Lock()
        self._store: TokenStore | None = settings.token_store
        if self._store is None and self.mode == "refresh_token" and settings.token_file:
            self._store = FileTokenStore(TokenFileStore(settings.token_file, logger))

    def _fresh(self, tokens: TokenSet | None) -> bool:
        return tokens is not None and not tokens.expires_within(
            self.settings.refresh_margin_s, self._wall()
        )

    async def access_token(self) -> str:
        tokens = self.state.tokens
        if not self._fresh(tokens):
            await self._renew(tokens.access_token.reveal() if tokens else None)
        assert self.state.tokens is not None
        return self.state.tokens.access_token.reveal()

    async def renew_after_401(self, rejected: str) -> str:
        if self.mode == "access_token":
            raise AuthError(
                "Calira rejected the static access token (HTTP 401): it has expired or been "
                "revoked. Set a new CALIRA_ACCESS_TOKEN, or use client credentials / refresh-token "
                "auth so the pipeline can renew tokens itself."
            )
        await self._renew(rejected, force=True)
        assert self.state.tokens is not None
        return self.state.tokens.access_token.reveal()

    async def _renew(self, stale_access: str | None, force: bool = False) -> None:
        async with self._lock:
            current = self.state.tokens
            renewed_meanwhile = (
                current is not None and current.access_token.reveal() != stale_access
            )
            if renewed_meanwhile and (force or self._fresh(current)):
                return  # another task renewed while we waited for the lock
            if self.mode == "access_token":
                access = _reveal(self.settings.access_token)
                self.state.tokens = TokenSet(Secret(access), None, None)
            elif self.mode == "client_credentials":
                self.state.tokens = await self._client_credentials()
            else:
                self.state.tokens = await self._rotate_locked(stale_access)
            tokens = self.state.tokens
            for secret in (tokens.access_token, tokens.refresh_token):
                if secret is not None and secret.reveal() not in self._secrets:
                    self._secrets.append(secret.reveal())

    async def _client_credentials(self) -> TokenSet:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id or "",
            "client_secret": _reveal(self.settings.client_secret),
        }
        if self.settings.scopes:
            form["scope"] = " ".join(self.settings.scopes)
        return await self.request_tokens(form)

    async def _rotate_locked(self, stale_access: str | None) -> TokenSet:
        """Refresh under the store's cross-process lock, adopting another process's rotation."""
        assert self._store is not None
        seed = self.settings.refresh_token
        rotation = Rotation(
            store=self._store,
            refresh=self._refresh_with,
            is_fresh=self._fresh,
            seed=seed.reveal() if isinstance(seed, Secret) else None,
            logger=self._logger,
        )
        return await rotation.run(stale_access)

    async def _refresh_with(self, refresh_tokens: list[str]) -> TokenSet:
        if not refresh_tokens:
            raise AuthError(
                "No refresh token available: the token store is empty and no seed refresh token "
                "is set (CALIRA_REFRESH_TOKEN, or the tenant's refresh_token variable). Run "
                "`calira-pipeline auth login` (with --tenant for a registry tenant)."
            )
        error: AuthError | None = None
        # The file's token wins; the configured seed is tried only if the file's was rejected
        # (e.g. an operator pasted a fresh CALIRA_REFRESH_TOKEN after a lockout).
        for refresh in refresh_tokens:
            if refresh not in self._secrets:  # a stored token: redacted should the answer echo it
                self._secrets.append(refresh)
            form = {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": self.settings.client_id or "",
                "client_secret": _reveal(self.settings.client_secret),
            }
            try:
                tokens = await self.request_tokens(form)
            except AuthError as exc:
                error = exc
                continue
            if tokens.refresh_token is None:  # a non-rotating server keeps the old one valid
                tokens = dataclasses.replace(tokens, refresh_token=Secret(refresh))
            return tokens
        assert error is not None
        raise error

    async def request_tokens(self, form: dict[str, str]) -> TokenSet:
        request = self.sender.client.build_request(
            "POST",
            self.settings.resolved_token_url,
            data=form,
            headers={"Accept": "application/json"},
        )
        response = await self.sender.send(request, bounded=False)
        redirected = redirect_error(request, response)
        if redirected is not None:
            raise AuthError(str(redirected))
        payload = _json_object(response)
        if response.status_code != 200 or payload is None:
            raise self._token_error(request, response, form["grant_type"], payload)
        return TokenSet.from_response(payload, self._wall(), where=describe(request))

    def _token_error(
        self,
        request: httpx.Request,
        response: httpx.Response,
        grant: str,
        payload: dict[str, Any] | None,
    ) -> AuthError:
        code = str(payload.get("error", "")) if payload else ""
        advice = _ADVICE.get(code, "check the client id/secret and CALIRA_TOKEN_URL")
        excerpt = body_excerpt(response, self._secrets)
        return AuthError(
            f"{describe(request)} rejected the {grant} grant with HTTP {response.status_code}: "
            f"{excerpt}. Fix: {advice}."
        )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
        return None
    return payload if isinstance(payload, dict) else None
