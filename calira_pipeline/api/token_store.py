"""Where rotated refresh tokens live, and the one rotation protocol every store follows.

Calira (Doorkeeper) rotates refresh tokens: the old one dies the moment it is used. So a refresh
must (1) hold a per-tenant exclusive lock across the token request, so no two processes spend
the same token, and (2) write the new token with compare-and-swap on a version, so a writer
that lost its lock (or an operator's new seed) is never silently overwritten. A store is the
lock plus a versioned slot; `TokenFileStore` (one machine) and the Postgres table in
`storage/postgres_tokens.py` (every worker) are the two.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import AuthError, CaliraError
from .tokens import DamagedTokenFile, TokenFileStore, TokenSet

# A CAS that keeps failing means another writer keeps replacing the token (or the lock is not
# held); a few re-reads settle a race, more would hide a misconfiguration.
MAX_ROTATION_ATTEMPTS = 3


class TokenStoreError(CaliraError):
    """The token store cannot be used; the message names the tenant, the store and the fix."""


@dataclass(frozen=True)
class StoredTokens:
    tokens: TokenSet
    version: int  # bumped by every successful save


class TokenLease(Protocol):
    """The exclusive right to rotate one tenant's tokens, until `release`."""

    def load(self) -> StoredTokens | None: ...

    def save(self, tokens: TokenSet, expected_version: int | None) -> bool:
        """Store `tokens` if the slot still holds `expected_version` (None: still empty).

        Returns False, storing nothing, when another writer got there first."""
        ...

    def release(self) -> None: ...


class TokenStore(Protocol):
    def describe(self) -> str:
        """Where the tokens live, for messages (never a secret)."""
        ...

    def acquire(self) -> TokenLease:
        """Block until this process alone may rotate the tokens."""
        ...


class _FileLease:
    def __init__(self, store: TokenFileStore, fd: int) -> None:
        self._store = store
        self._fd = fd

    def load(self) -> StoredTokens | None:
        found = self._store.load_versioned()
        return StoredTokens(*found) if found is not None else None

    def save(self, tokens: TokenSet, expected_version: int | None) -> bool:
        try:
            current = self._store.load_versioned()
        except DamagedTokenFile:  # only replace_tokens gets here: a rotation failed its read
            current = None
        version = current[1] if current is not None else None
        if version != expected_version:
            return False
        self._store.save(tokens, (version or 0) + 1)
        return True

    def release(self) -> None:
        self._store.release_lock(self._fd)


class FileTokenStore:
    """The token file (0600, atomic writes) under its `flock`: one machine's processes."""

    def __init__(self, files: TokenFileStore) -> None:
        self.files = files

    def describe(self) -> str:
        return f"the token file {self.files.path}"

    def acquire(self) -> TokenLease:
        return _FileLease(self.files, self.files.acquire_lock())


def replace_tokens(store: TokenStore, tokens: TokenSet) -> int:
    """Store `tokens` as the current ones under the lock (a login, an operator's new seed);
    returns the new version."""
    lease = store.acquire()
    try:
        try:
            current = lease.load()
        except DamagedTokenFile:  # its message says "log in again": this is that login
            current = None
        expected = current.version if current is not None else None
        if not lease.save(tokens, expected):  # only a writer ignoring the lock gets here
            raise TokenStoreError(
                f"{store.describe()} changed while it was locked; run the command again."
            )
        return (expected or 0) + 1
    finally:
        lease.release()


Refresh = Callable[[list[str]], Awaitable[TokenSet]]


class _OwnThread:
    """A lease whose blocking calls run on one rotation's own thread.

    Not the loop's shared executor: every collection of a fetch may be waiting for the lock
    there (minutes, on another worker), and the holder would then find no thread left for its
    save and release, so the whole fetch hangs (seen with six collections on a one-CPU worker).
    """

    def __init__(self, lease: TokenLease, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.lease = lease
        self._pool = pool

    async def load(self) -> StoredTokens | None:
        return await asyncio.wrap_future(self._pool.submit(self.lease.load))

    async def save(self, tokens: TokenSet, expected_version: int | None) -> bool:
        return await asyncio.wrap_future(
            self._pool.submit(self.lease.save, tokens, expected_version)
        )

    async def release(self) -> None:
        # Submitted before the await: it runs even if this task is cancelled again meanwhile.
        await asyncio.wrap_future(self._pool.submit(self.lease.release))


async def _acquire(store: TokenStore, pool: concurrent.futures.ThreadPoolExecutor) -> TokenLease:
    acquiring = pool.submit(store.acquire)
    try:
        return await asyncio.wrap_future(acquiring)
    except asyncio.CancelledError:
        # The thread goes on waiting for the lock; whenever it gets it, it must let it go, or
        # every other worker of this tenant waits on a lease nobody holds.
        acquiring.add_done_callback(_release_if_acquired)
        raise


def _release_if_acquired(acquiring: concurrent.futures.Future[TokenLease]) -> None:
    if not acquiring.cancelled() and acquiring.exception() is None:
        acquiring.result().release()


@dataclass(frozen=True)
class Rotation:
    """One refresh against a store: what counts as fresh, the seed, and how to refresh."""

    store: TokenStore
    refresh: Refresh  # tries each refresh token in order; raises AuthError if all are refused
    is_fresh: Callable[[TokenSet], bool]
    seed: str | None  # the configured first refresh token, tried after the stored one
    logger: logging.Logger

    async def run(self, stale_access: str | None) -> TokenSet:
        """Adopt another process's fresh tokens, or refresh once and CAS the result in."""
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="calira-token-store")
        try:
            lease = _OwnThread(await _acquire(self.store, pool), pool)
            try:
                return await self._rotate(lease, stale_access)
            finally:
                await lease.release()
        finally:
            pool.shutdown(wait=False)

    async def _rotate(self, lease: _OwnThread, stale_access: str | None) -> TokenSet:
        for _ in range(MAX_ROTATION_ATTEMPTS):
            current = await lease.load()
            if current is not None and self._usable(current.tokens, stale_access):
                self.logger.info("calira: using tokens another process already refreshed")
                return current.tokens
            stored = current.tokens.refresh_token if current is not None else None
            candidates = [t for t in (stored.reveal() if stored else None, self.seed) if t]
            try:
                tokens = await self.refresh(list(dict.fromkeys(candidates)))
            except AuthError as refused:
                # Refused: if the slot moved meanwhile (a lost lock, an operator's new seed),
                # the newer token is worth a try; otherwise the refusal is the answer.
                if await self._moved(lease, current):
                    continue
                raise AuthError(f"{refused} (Tokens from {self.store.describe()}.)") from None
            expected = current.version if current is not None else None
            if await lease.save(tokens, expected):
                self.logger.info("calira: refreshed access token and saved rotated refresh token")
                return tokens
            self.logger.warning(
                "calira: %s changed while this process refreshed (another writer); re-reading "
                "it and using the newer token",
                self.store.describe(),
            )
        raise TokenStoreError(
            f"{self.store.describe()} changed under every one of {MAX_ROTATION_ATTEMPTS} "
            "refresh attempts: another writer keeps replacing the token. Check that every "
            "worker uses the same token store (the registry's token_store), then re-run."
        )

    def _usable(self, tokens: TokenSet, stale_access: str | None) -> bool:
        return tokens.access_token.reveal() != stale_access and self.is_fresh(tokens)

    async def _moved(self, lease: _OwnThread, before: StoredTokens | None) -> bool:
        now = await lease.load()
        return now is not None and (before is None or now.version != before.version)
