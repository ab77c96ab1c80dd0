"""One API ingestion per data directory at a time, under every launcher.

Dagster's pool limit (`pool="calira_api"`) only holds where the instance configures it; `dg dev`
with a throwaway instance has none. This file lock makes overlapping ingestions (a schedule and a
manual run, or two launchers on one machine) wait for each other, with a log line saying so.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".ingest.lock"


@contextmanager
def ingestion_lock(data_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the data directory's ingestion lock; wait (and say so) while another run holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a planted symlink must not make us open (and truncate) some other file.
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            log(
                f"another ingestion (pid {holder}) is reading the API into {data_dir}; "
                "waiting for it to finish so the two runs do not double the request load"
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
            log("the other ingestion finished; starting")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock, also when the process is killed
