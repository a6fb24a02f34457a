"""The cycle schedule: every META_CYCLE_INTERVAL_MINUTES (default */30), one run per ad account."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, StaticPartitionsDefinition, schedule

from .jobs import cycle_tags
from .settings import Settings

SCHEDULE_NAME = "meta_ads_cycle_schedule"


def cycle_schedule(job, accounts: StaticPartitionsDefinition, settings: Settings):
    running = settings.meta_cycle_enabled and settings.meta_cycle_auto_start
    tags = cycle_tags(settings, "schedule")

    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=settings.cycle_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="One cycle run per ad account every interval; the queue runs them in parallel up to "
        "dagster.yaml's limits. On by default when META_CYCLE_ENABLED and META_CYCLE_AUTO_START are true.",
    )
    def meta_ads_cycle_schedule(context: ScheduleEvaluationContext):
        # The scheduler dedupes a tick's requests by (scheduled time, run key): with the account as
        # run key, a tick evaluated again (e.g. after a daemon restart) launches no account twice.
        for account in accounts.get_partition_keys():
            yield RunRequest(run_key=account, partition_key=account, tags=tags)

    return meta_ads_cycle_schedule
