from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def test_explore_notebook_runs_against_the_demo_data(
    full_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = full_run
    monkeypatch.setenv("CALIRA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Run from notebooks/, where people open it.
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = " ".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "bookings" in texts  # the table listing
    assert "utilisation" in texts  # the top-instruments table
    assert "(7, 24)" in texts  # the full hour-of-week grid
    printed = " ".join(str(o.get("text", "")) for o in outputs if o.output_type == "stream")
    assert "complete local months" in printed  # the same window definition as the charts
    assert "(all bookings)" in printed  # the overlap share's period, as in the demo summary
