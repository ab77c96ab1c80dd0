from __future__ import annotations

import dagster as dg
import pytest

from calira_pipeline.config import ScheduleSettings, schedule_settings
from calira_pipeline.definitions import load_defs
from calira_pipeline.marts import MART_SPECS
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.wiring.schedules import build_schedules, incremental_bookings_job

# Built here, as Dagster builds it when it loads the code location (nothing is built on import).
defs = load_defs()

daily_full_refresh = defs.get_schedule_def("daily_full_refresh")
hourly_bookings_incremental = defs.get_schedule_def("hourly_bookings_incremental")


def test_schedules_exist_and_default_to_stopped() -> None:
    for schedule in (daily_full_refresh, hourly_bookings_incremental):
        assert defs.get_schedule_def(schedule.name) is not None
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert daily_full_refresh.cron_schedule == f"0 {schedule_settings().daily_refresh_hour} * * *"
    assert hourly_bookings_incremental.cron_schedule.endswith("* * * *")


def test_hourly_schedule_asks_for_an_incremental_bookings_run() -> None:
    job = defs.resolve_job_def(hourly_bookings_incremental.job_name)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {"bookings"}
    assert incremental_bookings_job.config == {
        "ops": {"fetch_calira": {"config": {"mode": "incremental"}}}
    }
    assert hourly_bookings_incremental.job_name == "incremental_bookings"
    ticks = hourly_bookings_incremental.evaluate_tick(dg.build_schedule_context())
    assert len(ticks.run_requests or []) == 1


def test_marts_follow_their_inputs_through_declarative_automation() -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing upstream exists yet
    # The raw tables get materialised, as a scheduled run would do.
    for table in RAW_TABLES:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    # Every mart (and the report) follows, in one run in dependency order; raw assets are only
    # ever refreshed by the schedules.
    for mart in [*MART_SPECS, "facility_report"]:
        assert second.get_num_requested(dg.AssetKey(mart)) == 1, mart
    assert second.get_num_requested(dg.AssetKey("bookings")) == 0


def test_automation_sensor_runs_by_default_and_covers_every_mart() -> None:
    sensor = defs.resolve_sensor_def("default_automation_condition_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert {dg.AssetKey(m) for m in [*MART_SPECS, "facility_report"]} <= targeted


def test_an_hourly_bookings_refresh_alone_brings_every_mart_up_to_date() -> None:
    instance = dg.DagsterInstance.ephemeral()
    for table in RAW_TABLES:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    for mart in MART_SPECS:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=mart))
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="facility_report"))
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert settled.total_requested == 0
    # What the incremental job writes: bookings only. Every mart reading bookings follows.
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="bookings"))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    for name, spec in MART_SPECS.items():
        if "bookings" in spec.depends_on_raw:
            assert after.get_num_requested(dg.AssetKey(name)) == 1, name


def test_ingestion_jobs_carry_a_maximum_runtime() -> None:
    for schedule in (daily_full_refresh, hourly_bookings_incremental):
        job = defs.resolve_job_def(schedule.job_name)
        seconds = int(job.tags["dagster/max_runtime"])
        assert 0 < seconds <= 6 * 3600
    hourly = defs.resolve_job_def(hourly_bookings_incremental.job_name)
    assert int(hourly.tags["dagster/max_runtime"]) <= 3600  # done before the next tick


def test_schedule_settings_come_from_the_environment_when_the_code_location_loads() -> None:
    settings = schedule_settings(
        {"CALIRA_DAILY_REFRESH_HOUR": "5", "CALIRA_SCHEDULE_TIMEZONE": "Europe/Berlin"}
    )
    assert settings == ScheduleSettings(daily_refresh_hour=5, timezone="Europe/Berlin")
    daily, hourly = build_schedules(settings)
    assert (daily.cron_schedule, daily.execution_timezone) == ("0 5 * * *", "Europe/Berlin")
    assert hourly.execution_timezone == "Europe/Berlin"
    assert schedule_settings({}) == ScheduleSettings(daily_refresh_hour=2, timezone="UTC")


@pytest.mark.parametrize("hour", ["24", "-1", "two"])
def test_a_bad_refresh_hour_is_one_clear_error(hour: str) -> None:
    with pytest.raises(ValueError, match=f"CALIRA_DAILY_REFRESH_HOUR='{hour}' is not"):
        schedule_settings({"CALIRA_DAILY_REFRESH_HOUR": hour})
