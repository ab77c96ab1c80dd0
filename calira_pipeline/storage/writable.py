"""Checking the data directory can take a run's output before a single request is made."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from calira_pipeline.storage.warehouse import StorageError


def ensure_writable(*folders: Path) -> None:
    """Create a file in each folder (made if missing) and remove it, or raise ``StorageError``.

    Run before fetching: a read-only data directory used to be reported only after every
    collection had been read from the API. A probe file beats ``os.access``, which says yes to
    root on a read-only mount and knows nothing of a file sitting where a folder should be.
    """
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".tmp-writable-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(
                f"cannot write to {folder} ({exc.strerror}), so nothing was fetched; set "
                "CALIRA_DATA_DIR to a writable directory (or fix its permissions)"
            ) from None
