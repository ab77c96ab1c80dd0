"""A run's staged writers (wiring/raw_step.py's Staging): a failure leaves no table open."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from calira_pipeline.ingest.pii import PiiPolicy
from calira_pipeline.wiring.raw_step import Staging


def _writer_threads(tables: tuple[str, ...]) -> set[threading.Thread]:
    return {
        t for t in threading.enumerate() if t.name.startswith(tuple(f"stage-{n}_" for n in tables))
    }


def test_a_table_failing_to_finish_leaves_no_other_table_open(tmp_path: Path) -> None:
    before = _writer_threads(("accounts", "equipment"))
    staging = Staging(tmp_path, PiiPolicy.for_data_dir("hash", tmp_path), batch_rows=10)
    accounts = staging.sinks("accounts")["accounts"]
    equipment = staging.sinks("equipment")["equipment"]
    accounts.extend({"id": i} for i in range(25, 0, -1))  # three batches: sorted on finish
    equipment.extend({"id": i} for i in range(15))  # its file open, a batch on its thread
    assert _writer_threads(("equipment",)) - before
    accounts.path.unlink()  # what sorting it needs is gone (a full disk, a cleanup)

    with pytest.raises(duckdb.IOException):
        staging.finish()
    # The step fails; every other table's file is closed and its writer thread ended, not
    # left until Python collects the staging (the failure's traceback keeps it alive).
    assert not _writer_threads(("accounts", "equipment")) - before
