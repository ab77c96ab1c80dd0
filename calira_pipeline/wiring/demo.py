"""The demo's run: every asset and check in one Dagster run against the in-process sandbox."""

from __future__ import annotations

import os

import dagster as dg

from calira_pipeline.wiring.definitions import ALL_CHECKS, configured_assets
from calira_pipeline.wiring.sandbox_source import sandbox_resources


def run_demo(
    data_dir: str, scale: str, seed: int, operating_hours: str | None
) -> tuple[bool, str]:
    """(succeeded, run id). Recorded in $DAGSTER_HOME's instance when set (what `dg dev` opens),
    else in a throwaway one."""
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*configured_assets(), *ALL_CHECKS],
        instance=instance,
        resources=sandbox_resources(data_dir, scale, seed, operating_hours),
        raise_on_error=False,
        # The progress bars and the summary are the demo's output; warnings and errors still show.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    return result.success, result.run_id
