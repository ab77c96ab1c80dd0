"""A synchronous facade over the in-process transport, for tests and quick scripts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from calira_pipeline.sandbox.core import Sandbox

BASE_URL = "http://sandbox.invalid"


class InProcessClient:
    """``client.get("/v1/bookings")`` against a Sandbox with no socket and no event loop."""

    def __init__(self, sandbox: Sandbox, token: str | None = None) -> None:
        self.sandbox = sandbox
        self.token = token

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return asyncio.run(self._send(method, url, headers=headers, **kwargs))

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=self.sandbox.transport(),
                                     base_url=BASE_URL) as client:
            return await client.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
