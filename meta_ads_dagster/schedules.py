"""The cycle schedule: every META_CYCLE_INTERVAL_MINUTES (default */30), one run per ad account."""

from dagster import (
    DagsterRunStatus, DefaultScheduleStatus, RunRequest, RunsFilter, ScheduleEvaluationContext, SkipReason,
    StaticPartitionsDefinition, schedule,
)

from .jobs import ACCOUNT_TAG, CYCLE_JOB_NAME, cycle_tags
from .settings import Settings

SCHEDULE_NAME = "meta_ads_cycle_schedule"
IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def cycle_schedule(job, accounts: StaticPartitionsDefinition, settings: Settings):
    running = settings.meta_cycle_enabled and settings.meta_cycle_auto_start
    tags = cycle_tags(settings, "schedule")

    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=settings.cycle_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="One cycle run per ad account every interval, except accounts whose previous cycle is still "
        "queued or running; the queue runs them in parallel up to dagster.yaml's limits. On by default when "
        "META_CYCLE_ENABLED and META_CYCLE_AUTO_START are true; every tick skips while META_AUTO_ENABLED is false.",
    )
    def meta_ads_cycle_schedule(context: ScheduleEvaluationContext):
        if not settings.meta_auto_enabled:
            # The seed's kill switch: the autonomous system is stopped, no cycle launches.
            return SkipReason("META_AUTO_ENABLED is false: the autonomous system is stopped, no cycle launched")
        # An account whose last cycle has not even started yet (more accounts than the machines
        # can cycle in one interval) gets no second one: the queue would only grow, tick by tick.
        in_flight = context.instance.get_runs(RunsFilter(job_name=CYCLE_JOB_NAME, statuses=IN_FLIGHT))
        busy = {run.tags.get(ACCOUNT_TAG) for run in in_flight}
        due = [account for account in accounts.get_partition_keys() if account not in busy]
        skipped = sorted(set(accounts.get_partition_keys()) - set(due))
        if skipped:
            context.log.info(f"skipped, previous cycle still queued or running: {', '.join(skipped)}")
        if not due:
            return SkipReason("every account's previous cycle is still queued or running")
        # The scheduler dedupes a tick's requests by (scheduled time, run key): with the account as
        # run key, a tick evaluated again (e.g. after a daemon restart) launches no account twice.
        return [RunRequest(run_key=account, partition_key=account, tags=tags) for account in due]

    return meta_ads_cycle_schedule
