"""Incoming folders: where a writer such as DuckDB's COPY puts new table files (and spills) before
`Warehouse.commit_files` publishes them by renaming them into tables/ (same file system).

Each folder is held by an exclusive lock while in use, so a folder left by a killed run (its lock
released by the kernel) is recognised and removed by the next run; a live run's is never touched.
"""

from __future__ import annotations

import fcntl
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INCOMING = "incoming"
_LOCK = ".in-use.lock"


@contextmanager
def incoming_folder(data_dir: Path) -> Iterator[Path]:
    """A fresh, locked folder under `<data_dir>/incoming/`; removed on exit, published or not."""
    root = data_dir / INCOMING
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    try:
        with open(folder / _LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_incoming(data_dir: Path, path: Path) -> bool:
    return (data_dir / INCOMING).resolve() in path.resolve().parents


def _remove_abandoned(root: Path) -> None:
    for folder in (p for p in root.iterdir() if p.is_dir()):
        try:
            with open(folder / _LOCK, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run holds it
        except OSError:
            pass  # no lock file: the run died before taking it
        shutil.rmtree(folder, ignore_errors=True)
