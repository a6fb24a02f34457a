"""The cycle schedule: every META_CYCLE_INTERVAL_MINUTES (default */30)."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition

from .jobs import cycle_tags
from .settings import Settings

SCHEDULE_NAME = "meta_ads_cycle_schedule"


def cycle_schedule(job, settings: Settings) -> ScheduleDefinition:
    running = settings.meta_cycle_enabled and settings.meta_cycle_auto_start
    return ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=settings.cycle_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        tags=cycle_tags(settings, "schedule"),
        description="Runs one optimization cycle every interval. On by default when META_CYCLE_ENABLED and META_CYCLE_AUTO_START are true.",
    )
