"""Rotated refresh tokens in a Postgres table every worker reaches (README "Scale-out").

One row per tenant with a version. A refresh holds a session-level advisory lock for the tenant
across the token request (a process that dies releases it with its connection), and writes
with ``UPDATE … WHERE version = <read>``: compare-and-swap, so a writer whose lock was lost
never overwrites a newer token. psycopg2 comes with dagster-postgres (the `[scale]` extra) and
is imported only when a store is used. Plain code: it takes a DSN, the wiring picks it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calira_pipeline.api.errors import redact
from calira_pipeline.api.token_store import StoredTokens, TokenLease, TokenStoreError
from calira_pipeline.api.tokens import TokenSet

TABLE = "calira_refresh_tokens"
_COLUMNS = "access_token, refresh_token, expires_at, issued_at, scope"
_DDL = f"""
create table if not exists {TABLE} (
    tenant text primary key,
    access_token text not null,
    refresh_token text,
    expires_at double precision,
    issued_at double precision,
    scope text,
    version bigint not null,
    updated_at timestamptz not null default now()
)"""
# Only the table's owner (and superusers) may read tokens; nothing is granted to PUBLIC.
_REVOKE = f"revoke all on {TABLE} from public"
_DDL_LOCK = 0x43414C495241  # one fixed key: concurrent first uses would race on CREATE TABLE
# Waits before each retry of a save on a new connection (the lock's connection may be gone):
# about two minutes, as long as a Postgres restart or a managed failover takes. Giving up
# sooner locks the tenant out until a human logs in again.
SAVE_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


@dataclass(frozen=True)
class PostgresTokenStore:
    """The `calira_refresh_tokens` row of one tenant in the database `dsn` names."""

    dsn: str
    tenant: str
    lock_timeout_s: float = 900.0  # > one refresh's longest hold (retries + request timeout)
    connect_timeout_s: int = 10
    save_retry_delays_s: tuple[float, ...] = SAVE_RETRY_DELAYS_S
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __repr__(self) -> str:  # the DSN may hold a password
        return f"PostgresTokenStore(tenant={self.tenant!r}, at={self.location()!r})"

    def location(self) -> str:
        """host:port/database, never the user's password."""
        parts = _dsn_parts(self.dsn)
        if parts is None:
            return "an unparsable DSN"
        host = parts.get("host", "localhost")
        return f"{host}:{parts.get('port', 5432)}/{parts.get('dbname', parts.get('user', ''))}"

    def describe(self) -> str:
        return f"the token table {TABLE} (tenant {self.tenant}, Postgres {self.location()})"

    def connect(self) -> Any:
        try:
            import psycopg2
        except ImportError:
            raise TokenStoreError(
                f"tenant {self.tenant}: {self.describe()} needs psycopg2, which is not installed "
                "on this worker; install the scale-out extra (pip install 'calira_pipeline[scale]')"
            ) from None
        try:
            return self.open()
        except psycopg2.Error as exc:
            raise self.unreachable(exc) from None

    def open(self) -> Any:
        """An autocommit connection; psycopg2's own error if there is none."""
        import psycopg2

        con = psycopg2.connect(
            self.dsn,
            connect_timeout=self.connect_timeout_s,
            application_name=f"calira-tokens-{self.tenant}",
            # Dead peers are noticed while the lock is held across a slow token request.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        con.autocommit = True
        return con

    def unreachable(self, exc: BaseException) -> TokenStoreError:
        return TokenStoreError(
            f"tenant {self.tenant}: {self.describe()} cannot be used: {self._reason(exc)}. "
            "No token was used or changed by this step. Fix: make that Postgres reachable "
            "from every worker (the registry's token_store, or the Dagster instance's "
            "storage in dagster.yaml), then re-run."
        )

    def _reason(self, exc: BaseException) -> str:
        parts = _dsn_parts(self.dsn)
        if parts is None:  # libpq quotes the part it could not parse, which may be the password
            return "its DSN is malformed (libpq's message is not shown: it may quote the password)"
        password = parts.get("password", "")
        text = " ".join(str(exc).split()) or type(exc).__name__
        return redact(text, [password, self.dsn])[:300]

    def ensure_table(self, con: Any) -> None:
        with con.cursor() as cursor:
            cursor.execute("select to_regclass(%s)", (TABLE,))
            if cursor.fetchone()[0] is not None:
                return
            cursor.execute("begin")
            cursor.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            cursor.execute(_DDL)
            cursor.execute(_REVOKE)
            cursor.execute("commit")

    def lock_key(self) -> int:
        digest = hashlib.blake2b(f"calira-refresh-token:{self.tenant}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big", signed=True)

    def acquire(self) -> TokenLease:
        import psycopg2
        from psycopg2 import errors

        con = self.connect()
        try:
            self.ensure_table(con)
            with con.cursor() as cursor:
                cursor.execute("select set_config('lock_timeout', %s, false)",
                               (f"{int(self.lock_timeout_s * 1000)}ms",))  # fmt: skip
                # A role's statement_timeout (common on managed Postgres) would cut the wait
                # short while another worker is merely refreshing: lock_timeout bounds it.
                cursor.execute("select set_config('statement_timeout', '0', false)")
                cursor.execute("select pg_advisory_lock(%s)", (self.lock_key(),))
                cursor.execute("select set_config('lock_timeout', '0', false)")
        except errors.LockNotAvailable:
            con.close()
            raise TokenStoreError(
                f"tenant {self.tenant}: another process has held the refresh lock of "
                f"{self.describe()} for over {self.lock_timeout_s:g} s. Fix: find the stuck "
                f"run (pg_stat_activity, application_name calira-tokens-{self.tenant}) and "
                "stop it, then re-run."
            ) from None
        except psycopg2.Error as exc:
            con.close()
            raise self.unreachable(exc) from None
        return PostgresLease(self, con)


def _dsn_parts(dsn: str) -> dict[str, str] | None:
    """libpq's reading of a DSN (URL or key=value), or None if it is malformed or psycopg2 is
    missing; the DSN itself is never echoed."""
    try:
        from psycopg2.extensions import parse_dsn

        return dict(parse_dsn(dsn))
    except Exception:  # noqa: BLE001 (ImportError, or psycopg2's ProgrammingError)
        return None


class PostgresLease:
    """The tenant's advisory lock on one connection; reads and CAS writes in autocommit."""

    def __init__(self, store: PostgresTokenStore, con: Any) -> None:
        self.store = store
        self._con = con
        self._logger = logging.getLogger("calira_pipeline.api")

    def load(self) -> StoredTokens | None:
        import psycopg2

        try:
            return _select(self._con, self.store.tenant)
        except psycopg2.Error as exc:
            raise self.store.unreachable(exc) from None

    def save(self, tokens: TokenSet, expected_version: int | None) -> bool:
        """CAS; on a dropped connection, retried on a new one for a while (the write matters
        most now: the token just used is spent, so losing this one locks the tenant out)."""
        import psycopg2

        error: BaseException | None = None
        for delay in (None, *self.store.save_retry_delays_s):
            try:
                if delay is not None:
                    self.store.sleep(delay)
                    self._reconnect()
                return _compare_and_swap(self._con, self.store.tenant, tokens, expected_version)
            except psycopg2.Error as exc:  # a failed reconnect too: Postgres is still away
                error = exc
        assert error is not None
        raise TokenStoreError(
            f"tenant {self.store.tenant}: Calira issued a new refresh token but "
            f"{self.store.describe()} could not store it ({self.store._reason(error)}). The "
            "previous refresh token is spent, so this tenant is locked out: once Postgres is "
            f"back, run `calira-pipeline auth login --tenant {self.store.tenant}` (or put a "
            "fresh refresh token in the tenant's refresh_token variable and run "
            f"`calira-pipeline auth seed --tenant {self.store.tenant}`)."
        )

    def _reconnect(self) -> None:
        self._close()
        self._con = self.store.open()
        # Take the lock back if it is free, so no other worker reads the spent token (and
        # presents it) before this write lands; release() lets it go as usual.
        with self._con.cursor() as cursor:
            cursor.execute("select pg_try_advisory_lock(%s)", (self.store.lock_key(),))

    def release(self) -> None:
        import psycopg2

        try:
            with self._con.cursor() as cursor:
                cursor.execute("select pg_advisory_unlock(%s)", (self.store.lock_key(),))
        except psycopg2.Error:
            pass  # a lost connection has released its session lock already
        self._close()

    def _close(self) -> None:
        import psycopg2

        try:
            self._con.close()
        except psycopg2.Error:
            self._logger.debug("calira: closing the token store connection failed")


def _select(con: Any, tenant: str) -> StoredTokens | None:
    with con.cursor() as cursor:
        cursor.execute(f"select {_COLUMNS}, version from {TABLE} where tenant = %s", (tenant,))
        row = cursor.fetchone()
    if row is None:
        return None
    access, refresh, expires_at, issued_at, scope, version = row
    tokens = TokenSet.from_json({"access_token": access, "refresh_token": refresh,
                                 "expires_at": expires_at, "issued_at": issued_at,
                                 "scope": scope})  # fmt: skip
    return StoredTokens(tokens, int(version))


def _compare_and_swap(
    con: Any, tenant: str, tokens: TokenSet, expected_version: int | None
) -> bool:
    values = tokens.to_json()
    row = (values["access_token"], values["refresh_token"], values["expires_at"],
           values["issued_at"], values["scope"])  # fmt: skip
    with con.cursor() as cursor:
        if expected_version is None:
            cursor.execute(
                f"insert into {TABLE} (tenant, {_COLUMNS}, version) "
                "values (%s, %s, %s, %s, %s, %s, 1) on conflict (tenant) do nothing",
                (tenant, *row),
            )
        else:
            cursor.execute(
                f"update {TABLE} set (access_token, refresh_token, expires_at, issued_at, "
                "scope) = (%s, %s, %s, %s, %s), version = version + 1, updated_at = now() "
                "where tenant = %s and version = %s",
                (*row, tenant, expected_version),
            )
        if cursor.rowcount == 1:
            return True
    # An earlier attempt may have committed before its connection dropped: that is success.
    now = _select(con, tenant)
    return (
        now is not None
        and now.version == (expected_version or 0) + 1
        and now.tokens.refresh_token == tokens.refresh_token
    )
