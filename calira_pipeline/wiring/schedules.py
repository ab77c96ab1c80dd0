"""Jobs and schedules: a nightly full refresh and an hourly incremental refresh of bookings.

Both default to stopped; turn them on in the UI (Automation tab) or with
`dagster schedule start daily_full_refresh` against a running instance.
"""

from __future__ import annotations

import dagster as dg

from calira_pipeline.config import ScheduleSettings

INCREMENTAL_MINUTE = 20
# Backstops enforced by the daemon when run monitoring is on (`tasks.py dev` turns it on); every
# run, however launched, is also bounded per collection by CALIRA_MAX_RUNTIME_S in the client.
MAX_RUNTIME_TAG = "dagster/max_runtime"
FULL_REFRESH_MAX_RUNTIME_S = 6 * 3600
INCREMENTAL_MAX_RUNTIME_S = 3600  # the next hourly run is due

full_refresh_job = dg.define_asset_job(
    "full_refresh",
    selection=dg.AssetSelection.all(),
    description="Every collection re-read in full (catches status changes on old bookings), then "
    "every mart rebuilt.",
    tags={MAX_RUNTIME_TAG: str(FULL_REFRESH_MAX_RUNTIME_S)},
)

incremental_bookings_job = dg.define_asset_job(
    "incremental_bookings",
    selection=dg.AssetSelection.assets("bookings"),
    description="New and changed bookings only: /bookings is walked from its newest end (told "
    "from the first and last pages; every page when the order is unclear) until a page holds "
    "nothing new (plus an overlap); marts follow through declarative automation.",
    config={"ops": {"fetch_calira": {"config": {"mode": "incremental"}}}},
    tags={MAX_RUNTIME_TAG: str(INCREMENTAL_MAX_RUNTIME_S)},
)


def build_schedules(settings: ScheduleSettings) -> list[dg.ScheduleDefinition]:
    """Both schedules; the nightly one at the configured local hour of the configured zone (pick
    the facility's own zone, so the run lands when nobody is booking; DST is followed)."""
    hour, zone = settings.daily_refresh_hour, settings.timezone
    daily_full_refresh = dg.ScheduleDefinition(
        name="daily_full_refresh",
        job=full_refresh_job,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone=zone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Full refresh daily at {hour:02d}:00 {zone}.",
    )
    hourly_bookings_incremental = dg.ScheduleDefinition(
        name="hourly_bookings_incremental",
        job=incremental_bookings_job,
        cron_schedule=f"{INCREMENTAL_MINUTE} * * * *",
        execution_timezone=zone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Incremental bookings refresh every hour.",
    )
    return [daily_full_refresh, hourly_bookings_incremental]


JOBS = [full_refresh_job, incremental_bookings_job]
