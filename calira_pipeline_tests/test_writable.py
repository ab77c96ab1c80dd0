"""The data directory is checked for writability before anything is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from calira_pipeline.storage import StorageError
from calira_pipeline.storage.writable import ensure_writable


def test_missing_folders_are_created_and_left_clean(tmp_path: Path) -> None:
    data, parquet = tmp_path / "data", tmp_path / "data" / "parquet"
    ensure_writable(data, parquet)
    assert parquet.is_dir() and list(parquet.iterdir()) == []
    assert [p.name for p in data.iterdir()] == ["parquet"]


def test_a_file_where_a_folder_should_be_names_the_folder_and_the_variable(
    tmp_path: Path,
) -> None:
    (tmp_path / "parquet").write_text("not a folder")
    with pytest.raises(StorageError) as info:
        ensure_writable(tmp_path, tmp_path / "parquet")
    message = str(info.value)
    assert message.startswith(f"cannot write to {tmp_path / 'parquet'} (")
    assert "nothing was fetched; set CALIRA_DATA_DIR to a writable directory" in message
