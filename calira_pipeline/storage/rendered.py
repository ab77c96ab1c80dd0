"""Artefacts rendered from one snapshot (the report's charts), kept so a later step reuses them
instead of drawing them again: the marts step draws each chart for its materialisation, and the
report of the same publication takes them from here. Only the newest snapshot's are kept."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from calira_pipeline.storage.snapshots import TMP_PREFIX

RENDERED_DIR = Path("reports") / ".rendered"
_SNAPSHOT_NAME = re.compile(r"[0-9a-f]+-[0-9a-f]+")  # <sequence>-<random>, see Warehouse._publish


def write_rendered(data_dir: Path, snapshot: str, content: bytes) -> Path:
    """Keep `content` as what was rendered from `snapshot`, replacing any older snapshot's."""
    if not _SNAPSHOT_NAME.fullmatch(snapshot):
        raise ValueError(f"{snapshot!r} is not a snapshot name")
    folder = data_dir / RENDERED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{snapshot}.json"
    tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}.json"
    tmp.write_bytes(content)
    os.replace(tmp, target)
    for older in folder.glob("*.json"):
        if older != target and not older.name.startswith(TMP_PREFIX):
            older.unlink(missing_ok=True)
    return target


def read_rendered(data_dir: Path, snapshot: str) -> bytes | None:
    """What was kept for `snapshot`, or None (never rendered, or replaced by a newer one)."""
    if not _SNAPSHOT_NAME.fullmatch(snapshot):
        return None
    try:
        return (data_dir / RENDERED_DIR / f"{snapshot}.json").read_bytes()
    except FileNotFoundError:
        return None
