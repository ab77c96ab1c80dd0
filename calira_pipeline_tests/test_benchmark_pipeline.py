"""benchmarks/pipeline.py's reading of a run log (the peak memory it reports per step)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from benchmarks.pipeline import step_peaks


def _line(stamp: str, step: str, event: str) -> str:
    # As `dagster asset materialize` prints it: local time with its UTC offset (%z).
    return (
        f"{stamp} - dagster - DEBUG - __ASSET_JOB - 0f4e6f0c-1111-2222-3333-444455556666 - "
        f'{step} - {event} - Execution of step "{step}" {event.lower()}.'
    )


def test_step_peaks_read_a_run_log_stamped_in_any_time_zone(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "\n".join(
            [
                _line("2026-12-01 10:00:00 +0100", "fetch_calira", "STEP_START"),
                _line("2026-12-01 10:00:09 +0100", "fetch_calira", "STEP_SUCCESS"),
                _line("2026-12-01 10:00:12 +0100", "build_marts", "STEP_START"),
                _line("2026-12-01 10:00:20 +0100", "build_marts", "STEP_SUCCESS"),
            ]
        )
    )
    start = datetime.fromisoformat("2026-12-01T09:00:00+00:00").timestamp()
    samples = [(start + 5, 300), (start + 11, 900), (start + 15, 600), (start + 19, 500)]
    assert step_peaks(log, samples) == {"fetch_calira": 300, "build_marts": 600}
