"""OAuth token sets and the token file that survives process restarts.

Calira (Doorkeeper) rotates refresh tokens: the old one dies the moment it is used. Losing the
new one locks the integration out until a human re-authorises, so writes are atomic, private
(0600) and serialised across processes with ``flock``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AuthError, ConfigError, safe_excerpt
from .settings import Secret

# Ten years: anything longer is a server bug (and a 400-digit number overflows a float).
MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600
_LINK_REFUSED = (
    "{what} {path} is a symbolic link, which is never followed (a planted link could receive "
    "the tokens); replace it with a regular file or point CALIRA_TOKEN_FILE at the real path."
)


class DamagedTokenFile(ConfigError):
    """The token file is not a JSON object: a run cannot use it, a login replaces it."""


@dataclass(frozen=True)
class TokenSet:
    access_token: Secret
    refresh_token: Secret | None
    expires_at: float | None  # wall-clock epoch seconds; None = no expiry given
    scope: str | None = None
    issued_at: float | None = None

    @classmethod
    def from_response(
        cls, payload: Mapping[str, Any], now_wall: float, where: str = "The token endpoint"
    ) -> TokenSet:
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError(f"{where} answered without an access_token.")
        expires_in = payload.get("expires_in")
        expires_at: float | None = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            if not 0 <= expires_in <= MAX_EXPIRES_IN_S:  # False for NaN too
                raise AuthError(
                    f"{where} answered with expires_in {safe_excerpt(repr(expires_in), (), 40)}, "
                    f"not a number of seconds between 0 and {MAX_EXPIRES_IN_S}; the token "
                    "endpoint is misbehaving (check CALIRA_TOKEN_URL) — report it to Calira."
                )
            # Doorkeeper also sends created_at (server clock); our own clock is the safer base
            # because a fast server clock would otherwise make fresh tokens look expired.
            expires_at = now_wall + float(expires_in)
        refresh = payload.get("refresh_token")
        scope = payload.get("scope")
        return cls(
            access_token=Secret(access),
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scope=scope if isinstance(scope, str) else None,
            issued_at=now_wall,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token.reveal(),
            "refresh_token": self.refresh_token.reveal() if self.refresh_token else None,
            "expires_at": self.expires_at,
            "scope": self.scope,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenSet:
        access = data.get("access_token") or ""
        refresh = data.get("refresh_token")
        expires_at = data.get("expires_at")
        issued_at = data.get("issued_at")
        return cls(
            access_token=Secret(str(access)),
            refresh_token=Secret(str(refresh)) if refresh else None,
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
            issued_at=float(issued_at) if isinstance(issued_at, int | float) else None,
        )

    def expires_within(self, margin_s: float, now_wall: float | None = None) -> bool:
        if not self.access_token.reveal():
            return True
        if self.expires_at is None:
            return False
        now = time.time() if now_wall is None else now_wall
        if self.issued_at is not None:
            # A margin longer than the token's life would renew before every request.
            margin_s = min(margin_s, (self.expires_at - self.issued_at) / 2)
        return self.expires_at - margin_s <= now


class TokenFileStore:
    """A JSON token file plus a sibling ``.lock`` file for cross-process exclusion.

    Neither is ever opened through a symbolic link (``O_NOFOLLOW``): a link planted by another
    user could otherwise receive our tokens, or keep a spent refresh token at its target while
    the link is replaced. A token file others can read is made private (0600) with a warning.
    """

    def __init__(self, path: str | os.PathLike[str], logger: logging.Logger | None = None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._logger = logger or logging.getLogger("calira_pipeline.api")

    def _open_private(self, path: Path, flags: int, what: str) -> int:
        """``os.open`` that refuses links and anything but our own regular file."""
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(_LINK_REFUSED.format(what=what, path=path)) from None
            raise
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_uid != os.geteuid():
            problem = "belongs to another user"
        if problem is not None:
            os.close(fd)
            raise ConfigError(f"{what} {path} {problem}; remove it and log in again.")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
            self._logger.warning(
                "calira: %s %s was readable by other users (mode %o); it is now 0600. Its "
                "tokens may have been read: consider revoking them and logging in again.",
                what,
                path,
                stat.S_IMODE(info.st_mode),
            )
        return fd

    def load(self) -> TokenSet | None:
        found = self.load_versioned()
        return found[0] if found is not None else None

    def load_versioned(self) -> tuple[TokenSet, int] | None:
        """The tokens and how many times they were saved (0 for a file older than versions)."""
        try:
            fd = self._open_private(self.path, os.O_RDONLY, "Token file")
        except FileNotFoundError:
            return None
        with os.fdopen(fd, encoding="utf-8") as handle:
            text = handle.read()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DamagedTokenFile(
                f"Token file {self.path} is not valid JSON; delete it and log in again."
            ) from exc
        if not isinstance(data, dict):
            raise DamagedTokenFile(f"Token file {self.path} is not a JSON object; log in again.")
        version = data.get("version")
        return TokenSet.from_json(data), version if isinstance(version, int) else 0

    def save(self, tokens: TokenSet, version: int | None = None) -> None:
        """Write atomically: temp file in the same directory, fsync, then ``os.replace``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink():  # os.replace would swap the link for a regular file
            raise ConfigError(_LINK_REFUSED.format(what="Token file", path=self.path))
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                payload = tokens.to_json()
                if version is not None:
                    payload["version"] = version
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def acquire_lock(self) -> int:
        """Block until this process holds an exclusive ``flock``; returns the fd to release."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open_private(self.lock_path, os.O_RDWR | os.O_CREAT, "Token lock file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def release_lock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = self.acquire_lock()
        try:
            yield
        finally:
            self.release_lock(fd)
