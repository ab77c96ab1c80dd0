"""A throwaway Postgres and a tapped sandbox token endpoint, for the token-store tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline.sandbox.server import serve_in_thread
from calira_pipeline.storage.postgres_tokens import TABLE
from calira_pipeline_tests.scaleout.processes import ProcessGroup
from calira_pipeline_tests.scaleout.servers import start_postgres

DATABASE = "tokens"


@contextlib.contextmanager
def running_postgres() -> Iterator[tuple[str, int]]:
    """(libpq DSN, port) of a throwaway cluster, stopped and removed on exit."""
    # Postgres runs as `nobody` when we are root: its folder must be traversable (not tmp_path).
    root = Path(tempfile.mkdtemp(prefix="calira-tokens-pg-", dir="/tmp"))
    root.chmod(0o711)
    (root / "logs").mkdir()
    group = ProcessGroup(root / "logs")
    try:
        port = start_postgres(group, root, database=DATABASE)
        yield f"host=127.0.0.1 port={port} user=postgres dbname={DATABASE}", port
    finally:
        group.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def sql(dsn: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    import psycopg2

    con = psycopg2.connect(dsn)
    con.autocommit = True
    try:
        with con.cursor() as cursor:
            cursor.execute(statement, args)
            return cursor.fetchall() if cursor.description else []
    finally:
        con.close()


@dataclass
class TokenTap:
    """ASGI middleware: records (refresh token, status) of every refresh; can hold the first."""

    app: Any
    refreshes: list[tuple[str, int]] = field(default_factory=list)
    hold_first: Callable[[], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/oauth/token":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        form = dict(parse_qsl(body.decode()))
        refresh = form.get("grant_type") == "refresh_token"
        if refresh and self.hold_first is not None:
            hold, self.hold_first = self.hold_first, None
            await asyncio.to_thread(hold)
        statuses: list[int] = []

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await self.app(scope, replay, capture)
        if refresh:
            self.refreshes.append((form.get("refresh_token", ""), statuses[0]))


@dataclass
class Served:
    sandbox: Sandbox
    tap: TokenTap
    base_url: str  # without /v1
    now: list[float]  # the sandbox's clock: move it to expire tokens


@contextlib.contextmanager
def serve_tapped(dsn: str) -> Iterator[Served]:
    """A tiny sandbox with a movable clock behind a token tap; the token table emptied."""
    sql(dsn, f"drop table if exists {TABLE}")
    now = [time.time()]
    sandbox = Sandbox(SandboxConfig(scale="tiny", clock=lambda: now[0]))
    tap = TokenTap(sandbox.app)
    with serve_in_thread(tap) as base_url:
        yield Served(sandbox, tap, base_url, now)


def stored(dsn: str, tenant: str) -> tuple[str, int]:
    """(refresh token, version) of the tenant's row."""
    [(refresh, version)] = sql(
        dsn, f"select refresh_token, version from {TABLE} where tenant = %s", tenant
    )
    return refresh, version
