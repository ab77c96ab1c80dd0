"""The rotation protocol over any token store: lock, read (token, version), refresh, CAS.

A Doorkeeper stand-in rotates and revokes refresh tokens; an in-memory store lets a test play
"another writer" between a read and a write (the race the CAS exists for).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from calira_pipeline.api import AuthError, CaliraClient, ClientSettings, ConfigError, Secret
from calira_pipeline.api.token_store import (
    MAX_ROTATION_ATTEMPTS,
    FileTokenStore,
    Rotation,
    StoredTokens,
    TokenLease,
    TokenStoreError,
    replace_tokens,
)
from calira_pipeline.api.tokens import TokenFileStore, TokenSet
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig

NOW = 1_800_000_000.0


def tokens(access: str, refresh: str | None, expires_at: float | None = NOW + 3600) -> TokenSet:
    return TokenSet(Secret(access), Secret(refresh) if refresh else None, expires_at, None, NOW)


@dataclass
class Doorkeeper:
    """Rotates: each refresh token works once, and its use issues the next one."""

    live: set[str] = field(default_factory=set)
    used: list[str] = field(default_factory=list)
    issued: int = 0

    def grant(self) -> str:
        self.issued += 1
        token = f"refresh-{self.issued}"
        self.live.add(token)
        return token

    async def refresh(self, candidates: list[str]) -> TokenSet:
        for candidate in candidates:
            self.used.append(candidate)
            if candidate in self.live:
                self.live.remove(candidate)
                return tokens(f"access-{self.issued + 1}", self.grant())
        raise AuthError("invalid_grant: the refresh token was already used")


@dataclass
class MemoryStore:
    slot: StoredTokens | None = None
    before_save: Callable[[MemoryStore], None] | None = None  # "another writer" strikes here
    held: int = 0
    acquired: int = 0

    def describe(self) -> str:
        return "the memory store"

    def acquire(self) -> TokenLease:
        self.held += 1
        self.acquired += 1
        return MemoryLease(self)

    def put(self, value: TokenSet) -> None:
        version = self.slot.version + 1 if self.slot else 1
        self.slot = StoredTokens(value, version)


@dataclass
class MemoryLease:
    store: MemoryStore

    def load(self) -> StoredTokens | None:
        return self.store.slot

    def save(self, value: TokenSet, expected_version: int | None) -> bool:
        if self.store.before_save is not None:
            self.store.before_save(self.store)
        current = self.store.slot.version if self.store.slot else None
        if current != expected_version:
            return False
        self.store.put(value)
        return True

    def release(self) -> None:
        self.store.held -= 1


def rotation(store: MemoryStore, door: Doorkeeper, seed: str | None = None) -> Rotation:
    return Rotation(
        store=store,
        refresh=door.refresh,
        is_fresh=lambda t: not t.expires_within(60, NOW),
        seed=seed,
        logger=logging.getLogger("test"),
    )


def rotate(store: MemoryStore, door: Doorkeeper, stale: str | None = None, **kw: str) -> TokenSet:
    return asyncio.run(rotation(store, door, **kw).run(stale))


def test_an_empty_store_is_seeded_from_the_configured_token_and_the_seed_dies() -> None:
    door, store = Doorkeeper(), MemoryStore()
    seed = door.grant()
    got = rotate(store, door, seed=seed)
    assert store.slot is not None and store.slot.version == 1
    assert store.slot.tokens == got and got.refresh_token == Secret("refresh-2")
    assert door.used == [seed] and seed not in door.live
    assert store.held == 0


def test_the_stored_token_wins_over_the_seed_and_each_save_bumps_the_version() -> None:
    door, store = Doorkeeper(), MemoryStore()
    seed = door.grant()
    store.put(tokens("old", door.grant(), expires_at=NOW - 1))
    rotate(store, door, stale="old", seed=seed)
    assert door.used == ["refresh-2"] and seed in door.live  # the seed was not needed
    assert store.slot is not None and store.slot.version == 2


def test_fresh_tokens_another_worker_saved_are_adopted_without_a_refresh() -> None:
    door, store = Doorkeeper(), MemoryStore()
    store.put(tokens("theirs", door.grant()))
    got = rotate(store, door, stale="mine-expired")
    assert got.access_token == Secret("theirs") and door.used == []
    assert store.slot is not None and store.slot.version == 1


def test_a_failed_compare_and_swap_rereads_and_uses_the_newer_token() -> None:
    door, store = Doorkeeper(), MemoryStore()
    store.put(tokens("old", door.grant(), expires_at=NOW - 1))
    newer = tokens("operators", "refresh-operator")

    def operator_seeds(target: MemoryStore) -> None:
        target.before_save = None
        target.put(newer)

    store.before_save = operator_seeds
    got = rotate(store, door, stale="old")
    assert got == newer  # the newer, fresh token is used; ours is not written over it
    assert store.slot is not None and store.slot.tokens == newer and store.slot.version == 2
    assert door.used == ["refresh-1"]  # one refresh; nothing spent twice


def test_a_refusal_after_the_slot_moved_retries_with_the_newer_token() -> None:
    # Our lock was lost mid-refresh: another worker rotated the token we read.
    door, store = Doorkeeper(), MemoryStore()
    store.put(tokens("old", door.grant(), expires_at=NOW - 1))
    spent = "refresh-1"

    async def other_worker_first(candidates: list[str]) -> TokenSet:
        if not door.used:
            theirs = await door.refresh([spent])  # they spend it first...
            store.put(TokenSet(Secret("expired"), theirs.refresh_token, NOW - 1))
        return await door.refresh(candidates)  # ...so ours is refused

    flow = Rotation(store, other_worker_first, lambda t: not t.expires_within(60, NOW), None,
                    logging.getLogger("test"))  # fmt: skip
    got = asyncio.run(flow.run("old"))
    assert door.used == [spent, spent, "refresh-2"]  # theirs, our refused try, the newer one
    assert got.refresh_token == Secret("refresh-3") and store.slot is not None
    assert store.slot.tokens == got and store.slot.version == 3


def test_a_refusal_with_an_unchanged_store_is_raised_and_nothing_is_written() -> None:
    door, store = Doorkeeper(), MemoryStore()
    store.put(tokens("old", "refresh-revoked", expires_at=NOW - 1))
    with pytest.raises(AuthError, match="invalid_grant"):
        rotate(store, door, stale="old")
    assert store.slot is not None and store.slot.version == 1 and store.held == 0


def test_a_store_that_changes_under_every_attempt_is_an_error_naming_it() -> None:
    door, store = Doorkeeper(), MemoryStore()
    store.put(tokens("old", door.grant(), expires_at=NOW - 1))

    def always_newer(target: MemoryStore) -> None:
        target.put(tokens("expired", door.grant(), expires_at=NOW - 1))  # a new seed each time

    store.before_save = always_newer
    with pytest.raises(TokenStoreError, match="the memory store changed under every one of"):
        rotate(store, door, stale="old")
    # Every attempt used the newest token it read: never one already spent.
    assert len(door.used) == MAX_ROTATION_ATTEMPTS == len(set(door.used))
    assert store.held == 0


def test_the_token_file_store_is_versioned_and_compares_before_it_swaps(tmp_path: Path) -> None:
    files = TokenFileStore(tmp_path / "tokens.json")
    files.save(tokens("legacy", "r0"))  # a file written before versions existed
    store = FileTokenStore(files)
    lease = store.acquire()
    try:
        assert lease.load() == StoredTokens(tokens("legacy", "r0"), 0)
        assert lease.save(tokens("a1", "r1"), 0)
        assert not lease.save(tokens("a2", "r2"), 0)  # read version 0, file is at 1 now
        assert lease.load() == StoredTokens(tokens("a1", "r1"), 1)
    finally:
        lease.release()
    assert files.load() == tokens("a1", "r1") and "token file" in store.describe()


def test_a_client_with_a_shared_store_refreshes_through_it_against_the_sandbox() -> None:
    sandbox = Sandbox(SandboxConfig(scale="tiny"))
    store = MemoryStore()
    store.put(TokenSet(Secret(""), Secret(sandbox.issue_refresh_token()), None))
    settings = ClientSettings(
        base_url="http://127.0.0.1/v1",
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        token_store=store,
    )
    client = CaliraClient(settings, transport=sandbox.transport())
    assert client.auth_mode == "refresh_token"
    assert client.fetch("equipment").rows["equipment"]
    assert store.slot is not None and store.slot.version == 2
    stored = store.slot.tokens.refresh_token
    assert stored is not None and stored.reveal() in sandbox.authority.live_refresh_tokens()
    assert sandbox.stats.count("/oauth/token") == 1 and store.held == 0


@dataclass
class ThreadLockedStore(MemoryStore):
    """A memory slot behind a real blocking lock, as a file's flock or Postgres's advisory lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    wait_limit_s: float = 30.0  # only so a deadlock fails the test instead of hanging it

    def acquire(self) -> TokenLease:
        self.waiting.set()
        if not self.lock.acquire(timeout=self.wait_limit_s):
            raise TokenStoreError("the lock was never released")
        return ThreadLockedLease(super().acquire())


@dataclass
class ThreadLockedLease:
    inner: TokenLease

    def load(self) -> StoredTokens | None:
        return self.inner.load()

    def save(self, value: TokenSet, expected_version: int | None) -> bool:
        return self.inner.save(value, expected_version)

    def release(self) -> None:
        self.inner.release()
        assert isinstance(self.inner, MemoryLease) and isinstance(
            self.inner.store, ThreadLockedStore
        )
        self.inner.store.lock.release()
        self.inner.store.released.set()


def test_many_rotations_waiting_for_the_lock_never_starve_the_holder() -> None:
    # Every collection of a fetch may wait for the tenant's lock at once; the loop's shared
    # executor (here two threads) must not be where they wait, or the holder cannot save.
    door, store = Doorkeeper(), ThreadLockedStore()
    store.put(tokens("old", door.grant(), expires_at=NOW - 1))

    async def eight_at_once() -> list[TokenSet]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(2))
        flows = [rotation(store, door).run("old") for _ in range(8)]
        return await asyncio.gather(*flows)

    got = asyncio.run(eight_at_once())
    assert door.used == ["refresh-1"]  # one refresh; the seven others adopted its tokens
    assert all(result == got[0] for result in got) and store.held == 0
    assert store.slot is not None and store.slot.version == 2


def test_a_rotation_cancelled_while_waiting_for_the_lock_lets_it_go_once_it_gets_it() -> None:
    door, store = Doorkeeper(), ThreadLockedStore()
    store.lock.acquire()  # another worker holds the tenant's lock

    async def cancelled_while_waiting() -> None:
        waiting = asyncio.ensure_future(rotation(store, door).run(None))
        await asyncio.to_thread(store.waiting.wait)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(cancelled_while_waiting())
    store.lock.release()  # the other worker is done: the abandoned wait gets the lock...
    assert store.released.wait(30), "the abandoned lease kept the tenant's lock"
    assert store.lock.acquire(timeout=30)  # ...and lets it go
    assert store.acquired == 1 and store.held == 0 and door.used == []


@pytest.mark.parametrize("damage", ["{half", "[1, 2]"])
def test_a_login_replaces_a_damaged_token_file_that_a_run_refuses(
    tmp_path: Path, damage: str
) -> None:
    files = TokenFileStore(tmp_path / "tokens.json")
    files.path.write_text(damage)
    files.path.chmod(0o600)
    store, door = FileTokenStore(files), Doorkeeper()
    run = dataclasses.replace(rotation(MemoryStore(), door), store=store)
    with pytest.raises(ConfigError, match="log in again"):
        asyncio.run(run.run(None))
    assert door.used == []  # nothing was presented from a file it could not read
    # The fix the message names (`auth login`, `auth seed`) writes over the damage.
    assert replace_tokens(store, tokens("a1", "r1")) == 1
    assert files.load_versioned() == (tokens("a1", "r1"), 1)
    assert oct(files.path.stat().st_mode & 0o777) == "0o600"


def test_a_refusal_that_echoes_the_stored_refresh_token_never_shows_it() -> None:
    stored_token = "stored-refresh-never-shown"

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        body = {"error": "invalid_grant", "error_description": f"{stored_token} was revoked"}
        return httpx.Response(400, json=body)

    store = MemoryStore()
    store.put(TokenSet(Secret(""), Secret(stored_token), None))
    settings = ClientSettings(
        base_url="https://calira.example/v1",
        client_id="app",
        client_secret="app-secret",
        token_store=store,
    )
    client = CaliraClient(settings, transport=httpx.MockTransport(token_endpoint))
    with pytest.raises(AuthError) as refused:
        client.fetch("equipment")
    assert "invalid_grant" in str(refused.value) and "was revoked" in str(refused.value)
    assert stored_token not in str(refused.value)
