"""Exceptions raised by the Calira API client, and secret redaction for their messages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote, quote_plus

# Token-looking values in bodies and URLs are scrubbed even when we do not know the exact value,
# e.g. a token endpoint echoing a freshly minted access_token inside an error page.
_SECRET_PATTERNS = (
    re.compile(
        r'("?(?:access_token|refresh_token|client_secret|id_token|code|password)"?\s*[:=]\s*"?)'
        r'([^"&\s,}]+)',
        re.IGNORECASE,
    ),
    re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/=-]+)", re.IGNORECASE),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values (also URL-encoded) and token-shaped fields with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


# Redaction looks at this much of a body, far more than any message shows, so a secret that
# starts inside the shown part is always seen whole before the text is cut.
_REDACT_WINDOW_CHARS = 64 * 1024
# A secret can straddle the end of the window; dropping this tail keeps any part of it out.
_LONGEST_SECRET_CHARS = 4096


def safe_excerpt(
    content: str | bytes, secrets: Iterable[str] = (), limit: int = 200, empty: str = ""
) -> str:
    """One line of at most ``limit`` characters for a message: redacted first, then cut.

    Cutting first would let a secret that straddles the cut survive in part (30 of 32
    characters of a client secret echoed by a token endpoint did, before this function).
    """
    window = _REDACT_WINDOW_CHARS + _LONGEST_SECRET_CHARS
    raw = content[:window]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(content) > window:
        text = text[:-_LONGEST_SECRET_CHARS]
    text = " ".join(redact(text, secrets).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return text or empty


class CaliraError(Exception):
    """Base class of every error the client raises."""


class ConfigError(CaliraError):
    """The settings are missing, incomplete, contradictory or unsafe."""


class AuthError(CaliraError):
    """The API or the token endpoint rejected our credentials."""


class PaginationError(CaliraError):
    """A list endpoint's pages cannot be walked reliably."""


class RecordError(CaliraError):
    """A record cannot be parsed into a table row."""


class ApiError(CaliraError):
    """A non-retryable HTTP failure, exhausted retries, or a body that is not JSON."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RuntimeExceededError(ApiError):
    """A fetch ran past its maximum runtime (CALIRA_MAX_RUNTIME_S); repeating it would too."""


class MissingScopeError(AuthError):
    """The token lacks an OAuth scope an endpoint needs."""

    def __init__(self, scope: str, endpoint: str, blocked_collections: Sequence[str]) -> None:
        self.scope = scope
        self.endpoint = endpoint
        self.blocked_collections = tuple(blocked_collections)
        blocked = ", ".join(self.blocked_collections) or "this collection"
        super().__init__(
            f"Calira refused {endpoint}: the token lacks the '{scope}' scope, which blocks the "
            f"{blocked} asset(s). Fix: re-authorise the app with the '{scope}' scope (a lab admin "
            "enables it on the app at https://app.clustermarket.com/oauth/applications, then run "
            "the authorization-code login again and update the token file / CALIRA_REFRESH_TOKEN)."
        )
