"""Authenticated GETs that return JSON, mapping HTTP failures to the client's exceptions."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from .auth import TokenProvider
from .endpoints import endpoint_for_path, scope_collections
from .errors import ApiError, AuthError, CaliraError, MissingScopeError
from .fields import loads_exact
from .http import RetryingSender, body_excerpt, describe, redirect_error
from .results import FetchStats

_SCOPE_RE = re.compile(r"\bread_[a-z_]+\b")
T = TypeVar("T")

# A damaged 2xx (a proxy cutting the body or stripping headers) is usually gone on the next try;
# one that persists through this many extra attempts is reported, never read as partial data.
BODY_FAULT_RETRIES = 2


class BodyFault(Exception):
    """A 2xx response whose body or pagination headers are unusable; may be transient."""

    def __init__(
        self,
        cause: str,
        problem: str,
        advice: str,
        error_type: type[CaliraError] = ApiError,
        status: int | None = None,
    ) -> None:
        super().__init__(problem)
        self.cause = cause  # key in FetchStats.retries_by_cause
        self.problem = problem
        self.advice = advice
        self.error_type = error_type
        self.status = status

    def error(self, attempts: int) -> CaliraError:
        tried = f" ({attempts} attempts, none usable)" if attempts > 1 else ""
        message = f"{self.problem}{tried}. {self.advice}"
        if issubclass(self.error_type, ApiError):
            return self.error_type(message, status=self.status)
        return self.error_type(message)


def scope_for_path(path: str) -> str:
    endpoint = endpoint_for_path(path)
    return endpoint.scope if endpoint is not None else "unknown"


class ApiSession:
    """One fetch's view of the API: base URL, auth, retries, error mapping."""

    def __init__(
        self,
        base_url: str,
        sender: RetryingSender,
        provider: TokenProvider,
        stats: FetchStats,
        secrets: list[str],
        collection: str,
    ) -> None:
        self.base_url = base_url
        self.sender = sender
        self.provider = provider
        self.stats = stats
        self.secrets = secrets
        self.collection = collection

    def _request(self, path: str, params: dict[str, Any] | None, token: str) -> httpx.Request:
        return self.sender.client.build_request(
            "GET",
            self.base_url + path,
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def get(
        self, path: str, params: dict[str, Any] | None = None, *, allow: tuple[int, ...] = ()
    ) -> httpx.Response:
        """GET with one token refresh on 401; statuses in ``allow`` are returned, not raised."""
        used: list[str] = []

        async def build() -> httpx.Request:
            used.append(await self.provider.access_token())
            return self._request(path, params, used[-1])

        response = await self.sender.send(build)
        if response.status_code == 401:
            self.stats.retries_by_cause["401-refresh"] += 1
            await self.provider.renew_after_401(used[-1])
            response = await self.sender.send(build)
            if response.status_code == 401:
                raise AuthError(
                    f"{describe(response.request)} was refused with HTTP 401 even with a freshly "
                    "renewed token. The app's authorisation was probably revoked or the lab "
                    "removed; re-authorise the app (authorization-code login) and check the "
                    "credentials."
                )
        request = response.request
        redirected = redirect_error(request, response)
        if redirected is not None:
            raise redirected
        if response.status_code in allow or response.status_code < 400:
            return response
        if response.status_code == 403:
            raise self._forbidden(request, response)
        raise ApiError(
            f"{describe(request)} failed with HTTP {response.status_code}: "
            f"{body_excerpt(response, self.secrets)}. {_advice(response.status_code)}",
            status=response.status_code,
        )

    def _forbidden(self, request: httpx.Request, response: httpx.Response) -> Exception:
        text = response.content[:4000].decode("utf-8", "replace")
        challenge = response.headers.get("WWW-Authenticate", "")
        if "insufficient_scope" not in (text + challenge).lower().replace(" ", "_"):
            return ApiError(
                f"{describe(request)} failed with HTTP 403: {body_excerpt(response, self.secrets)}"
                ". The app is not approved for this lab/account; ask a lab admin to authorise it "
                "(labs added later need re-authorisation).",
                status=403,
            )
        path = request.url.path.removeprefix(httpx.URL(self.base_url).path)
        found = _SCOPE_RE.search(challenge) or _SCOPE_RE.search(text)
        scope = found.group(0) if found else scope_for_path(path)
        blocked = set(scope_collections().get(scope, ())) | {self.collection}
        return MissingScopeError(scope, describe(request), sorted(blocked))

    def decode_json(self, request_desc: str, response: httpx.Response) -> Any:
        """Decode strictly, raising ``BodyFault``: RFC 8259 JSON is UTF-8, so undecodable bytes
        (often a multi-byte character cut in half) count as a damaged body like truncation."""
        try:
            body = response.content
            return loads_exact(body.decode("utf-8"), encoded=body)
        except UnicodeDecodeError:
            problem = "is not UTF-8"
        except RecursionError:
            # Not retried: a body nested this deep is no transient fault.
            raise ApiError(
                f"{request_desc} answered HTTP {response.status_code} with JSON nested deeper "
                f"than the parser allows (about {sys.getrecursionlimit()} levels); expected a "
                "list or an object of records. The API or a proxy sent a malformed body; check "
                "CALIRA_BASE_URL and report the response to Calira support.",
                status=response.status_code,
            ) from None
        except ValueError:
            problem = "is not valid JSON (truncated or an HTML error page?)"
        raise BodyFault(
            "bad_body",
            f"{request_desc} answered HTTP {response.status_code} but the body {problem}: "
            f"{body_excerpt(response, self.secrets)}",
            "A proxy or gateway may be interfering; retry later and check CALIRA_BASE_URL.",
            status=response.status_code,
        )

    def json_body(self, request_desc: str, response: httpx.Response) -> Any:
        """Decode strictly: an HTML error page or a truncated body is an error, not data."""
        try:
            return self.decode_json(request_desc, response)
        except BodyFault as fault:
            raise fault.error(1) from None

    async def get_checked(
        self,
        path: str,
        params: dict[str, Any] | None,
        check: Callable[[httpx.Response], T],
        *,
        allow: tuple[int, ...] = (),
    ) -> tuple[httpx.Response, T]:
        """``get`` then ``check``; a ``BodyFault`` from ``check`` is retried with backoff a few
        times before its error is raised."""
        for attempt in range(BODY_FAULT_RETRIES + 1):
            response = await self.get(path, params, allow=allow)
            try:
                return response, check(response)
            except BodyFault as fault:
                if attempt == BODY_FAULT_RETRIES:
                    raise fault.error(attempt + 1) from None
                where = describe(response.request)
                await self.sender.back_off(attempt, fault.cause, where, fault.cause)
        raise AssertionError("unreachable")

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        _, body = await self.get_checked(
            path, params, lambda response: self.decode_json(describe(response.request), response)
        )
        return body


def _advice(status: int) -> str:
    if status == 404:
        return "Check CALIRA_BASE_URL (it should end in /v1) and that the id still exists."
    if status == 400:
        return "The request was rejected as malformed; this is a client bug — please report it."
    return "This status is not retried; check the request and the app's permissions."
