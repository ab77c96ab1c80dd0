"""The demo's run: every asset and check in one Dagster run against the in-process sandbox."""

from __future__ import annotations

import os

import dagster as dg

from calira_pipeline.wiring.definitions import ALL_CHECKS, configured_assets
from calira_pipeline.wiring.sandbox_source import sandbox_resources
from calira_pipeline.wiring.schedules import full_refresh_job


def run_demo(
    data_dir: str, scale: str, seed: int, operating_hours: str | None
) -> tuple[bool, str]:
    """(succeeded, run id). Recorded in $DAGSTER_HOME's instance when set (what `dg dev` opens),
    else in a throwaway one."""
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    # The code location's own full_refresh job, not dg.materialize's implicit one: the UI lists
    # the run under a job it knows (not `__ephemeral_asset_job__`) and can re-execute it.
    defs = dg.Definitions(
        assets=configured_assets(),
        asset_checks=ALL_CHECKS,
        jobs=[full_refresh_job],
        resources=sandbox_resources(data_dir, scale, seed, operating_hours),
    )
    result = defs.resolve_job_def(full_refresh_job.name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        # The progress bars and the summary are the demo's output; warnings and errors still show.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    return result.success, result.run_id
