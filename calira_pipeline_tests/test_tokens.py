"""The token file: atomic private writes and cross-process locking."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from calira_pipeline.api import ConfigError, Secret
from calira_pipeline.api.tokens import TokenFileStore, TokenSet


def tokens(n: int) -> TokenSet:
    return TokenSet(Secret(f"access-{n}"), Secret(f"refresh-{n}"), 2_000_000_000.0, "read_x")


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    store = TokenFileStore(tmp_path / "dir" / "tokens.json")
    assert store.load() is None
    store.save(tokens(1))
    assert store.load() == tokens(1)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    store.save(tokens(2))
    assert store.load() == tokens(2)
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tokens.json"]  # no temp left


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    store = TokenFileStore(tmp_path / "tokens.json")
    store.save(tokens(1))
    bad = TokenSet(Secret("a"), None, None, scope=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.save(bad)
    assert store.load() == tokens(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_corrupt_file_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text("{nope")
    with pytest.raises(ConfigError, match="log in again"):
        TokenFileStore(tmp_path / "tokens.json").load()


def test_token_response_parsing_and_expiry() -> None:
    parsed = TokenSet.from_response(
        {"access_token": "at-secret", "refresh_token": "r", "expires_in": 7200, "scope": "read_x"},
        100.0,
    )
    assert parsed.expires_at == 7300.0 and parsed.refresh_token == Secret("r")
    assert not parsed.expires_within(60, now_wall=7000.0)
    assert parsed.expires_within(60, now_wall=7250.0)
    assert "'***'" in repr(parsed) and "at-secret" not in repr(parsed)
    assert json.loads(json.dumps(parsed.to_json()))["access_token"] == "at-secret"


def _hold_lock(
    path: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    store = TokenFileStore(path)
    with store.locked():
        ready.set()
        release.wait(10)


def test_lock_excludes_another_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    path = str(tmp_path / "tokens.json")
    child = ctx.Process(target=_hold_lock, args=(path, ready, release))
    child.start()
    try:
        assert ready.wait(10)
        fd = os.open(path + ".lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        release.set()
        child.join(10)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the other process is done
        os.close(fd)
    finally:
        release.set()
        child.join(10)


def test_a_token_file_others_can_read_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TokenFileStore(tmp_path / "tokens.json")
    store.save(tokens(1))
    os.chmod(store.path, 0o644)
    with caplog.at_level("WARNING", logger="calira_pipeline.api"):
        assert store.load() == tokens(1)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert "was readable by other users (mode 644); it is now 0600" in caplog.text
    assert "refresh-1" not in caplog.text


@pytest.mark.parametrize("planted", ["token", "lock"])
def test_planted_symlinks_are_never_followed(tmp_path: Path, planted: str) -> None:
    store = TokenFileStore(tmp_path / "tokens.json")
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(tokens(9).to_json()))
    link = store.path if planted == "token" else store.lock_path
    link.symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="is a symbolic link, which is never followed"):
        if planted == "token":
            store.load()
        else:
            store.acquire_lock()
    if planted == "token":
        with pytest.raises(ConfigError, match="symbolic link"):
            store.save(tokens(2))  # would have replaced the link, stranding the target's token
    assert link.is_symlink() and target.read_bytes() == before


def test_a_token_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    store = TokenFileStore(tmp_path / "tokens.json")
    os.mkfifo(store.lock_path)
    with pytest.raises(ConfigError, match="is not a regular file"):
        store.acquire_lock()
