"""Client settings: which auth mode, where the API lives, and the limits that keep us polite."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from calira_pipeline.config import client_fields

from .errors import ConfigError

if TYPE_CHECKING:  # token_store imports tokens, which imports Secret from here
    from .token_store import TokenStore

AuthMode = Literal["client_credentials", "refresh_token", "access_token"]

_CREDENTIAL_VARS = (
    "CALIRA_CLIENT_ID + CALIRA_CLIENT_SECRET (client credentials), "
    "CALIRA_CLIENT_ID + CALIRA_CLIENT_SECRET + CALIRA_REFRESH_TOKEN and/or CALIRA_TOKEN_FILE "
    "(refresh token), or CALIRA_ACCESS_TOKEN alone (static token)"
)


class Secret:
    """A string that never shows itself in reprs, logs or messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value else None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_oauth_url(base_url: str, path: str) -> str:
    """``https://api.X/v1`` -> ``https://app.X/<path>``.

    The live OAuth provider (Doorkeeper) sits on the *app* host while the API is on the *api*
    host, and the spec's relative token URL resolves to the wrong one. Other hosts (loopback,
    sandbox, proxies) keep their host.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = parts.netloc
    if host.startswith("api.") and not is_loopback_host(host):
        netloc = netloc.replace(host, "app." + host[len("api.") :], 1)
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def display_url(url: str) -> str:
    """``url`` safe for a message: scheme, host, port and path; never userinfo or a query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def check_url_is_safe(url: str, what: str, allow_insecure_http: bool) -> None:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # httpx would turn user:password into "Authorization: Basic", replacing our Bearer token
        # (every request then fails with 401), and the URL would carry the password into logs.
        raise ConfigError(
            f"{what} must not contain a user name or password (the part before '@'); remove it "
            "and authenticate with CALIRA_CLIENT_ID/CALIRA_CLIENT_SECRET or a token instead."
        )
    shown = display_url(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{what} {shown!r} is not an absolute http(s) URL.")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{what} {shown!r} uses plain HTTP, which would send tokens in clear text; use https "
            "(plain http is allowed only for loopback hosts or with allow_insecure_http=True)."
        )


def _scopes(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(s for s in items if s) or None


@dataclass(frozen=True)
class ClientSettings:
    base_url: str = "https://api.clustermarket.com/v1"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: Secret | str | None = field(default=None)
    refresh_token: Secret | str | None = field(default=None)
    access_token: Secret | str | None = field(default=None)
    token_file: str | os.PathLike[str] | None = None
    # Where rotated refresh tokens live when not in token_file: a store every worker reaches.
    token_store: TokenStore | None = field(default=None, compare=False)
    scopes: str | Sequence[str] | None = None
    concurrency: int = 8
    max_rps: float | None = None
    # One request, start to end (connect, send, the whole body), however steadily bytes arrive.
    timeout_s: float = 120.0
    # Silence allowed between two reads (and for connect/write); capped by timeout_s.
    read_timeout_s: float = 30.0
    # How long one request may keep failing (backoff waits plus timed-out attempts) before the
    # error is raised.
    max_retry_wait_s: float = 300.0
    # One collection's whole fetch (one raw asset step), so no hostile server keeps a run forever.
    max_runtime_s: float = 4 * 3600.0
    per_page: int = 100
    max_pages: int = 100_000
    refresh_margin_s: float = 60.0
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        for name in ("client_secret", "refresh_token", "access_token"):
            object.__setattr__(self, name, _secret(getattr(self, name)))
        object.__setattr__(self, "scopes", _scopes(self.scopes))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        check_url_is_safe(self.base_url, "base_url (CALIRA_BASE_URL)", self.allow_insecure_http)
        if self.token_url is not None:
            check_url_is_safe(
                self.token_url, "token_url (CALIRA_TOKEN_URL)", self.allow_insecure_http
            )
        if self.concurrency < 1 or not 1 <= self.per_page <= 100 or self.max_pages < 1:
            raise ConfigError("concurrency and max_pages must be >= 1 and per_page within 1..100.")
        if min(self.timeout_s, self.read_timeout_s, self.max_runtime_s) <= 0:
            raise ConfigError(
                "timeout_s (CALIRA_TIMEOUT_S), read_timeout_s and max_runtime_s "
                "(CALIRA_MAX_RUNTIME_S) must be > 0."
            )
        if self.max_retry_wait_s < 0 or self.refresh_margin_s < 0:
            raise ConfigError(
                "max_retry_wait_s (CALIRA_MAX_RETRY_WAIT_S) and refresh_margin_s must be >= 0."
            )
        if self.max_rps is not None and self.max_rps <= 0:
            raise ConfigError("max_rps must be > 0 (or None for no client-side limit).")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ClientSettings:
        """Build settings from ``CALIRA_*`` variables (blank values count as unset)."""
        values: dict[str, object] = {**client_fields(environ), **overrides}
        return cls(**values)  # type: ignore[arg-type]

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or default_oauth_url(self.base_url, "/oauth/token")

    @property
    def authorize_url(self) -> str:
        return default_oauth_url(self.token_url or self.base_url, "/oauth/authorize")

    def secret_values(self) -> list[str]:
        return [
            s.reveal()
            for s in (self.client_secret, self.refresh_token, self.access_token)
            if isinstance(s, Secret)
        ]

    @property
    def auth_mode(self) -> AuthMode:
        has_id, has_secret = bool(self.client_id), self.client_secret is not None
        has_store = self.token_file is not None or self.token_store is not None
        has_refresh = self.refresh_token is not None or has_store
        if self.access_token is not None:
            if has_secret or self.refresh_token is not None:
                raise ConfigError(
                    "CALIRA_ACCESS_TOKEN cannot be combined with CALIRA_CLIENT_SECRET or "
                    f"CALIRA_REFRESH_TOKEN; set exactly one of: {_CREDENTIAL_VARS}."
                )
            return "access_token"
        if has_refresh:
            if not (has_id and has_secret):
                raise ConfigError(
                    "Refresh-token auth needs CALIRA_CLIENT_ID and CALIRA_CLIENT_SECRET next to "
                    "CALIRA_REFRESH_TOKEN / CALIRA_TOKEN_FILE."
                )
            if not has_store:
                raise ConfigError(
                    "CALIRA_REFRESH_TOKEN needs CALIRA_TOKEN_FILE too: Calira rotates refresh "
                    "tokens on use, so the new one must be saved or the integration is locked out."
                )
            return "refresh_token"
        if has_id and has_secret:
            return "client_credentials"
        if has_id or has_secret:
            raise ConfigError(
                "Set both CALIRA_CLIENT_ID and CALIRA_CLIENT_SECRET (only one is set); "
                f"valid combinations: {_CREDENTIAL_VARS}."
            )
        raise ConfigError(f"No Calira credentials configured; set {_CREDENTIAL_VARS}.")
