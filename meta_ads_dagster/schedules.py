"""The cycle schedule: every META_CYCLE_INTERVAL_MINUTES (default */30), one run per ad account."""

from dagster import (
    DagsterRunStatus, DefaultScheduleStatus, RunRequest, RunsFilter, ScheduleEvaluationContext, SkipReason,
    StaticPartitionsDefinition, schedule,
)

from .jobs import ACCOUNT_TAG, AUTO_MODE_TAG, CYCLE_JOB_NAME, cycle_tags
from .settings import Settings
from .store import controls

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
        "queued or running and accounts an operator paused (meta-ads pause-automation); the queue runs them in "
        "parallel up to dagster.yaml's limits. On by default when META_CYCLE_ENABLED and META_CYCLE_AUTO_START are "
        "true; every tick skips while META_AUTO_ENABLED is false.",
    )
    def meta_ads_cycle_schedule(context: ScheduleEvaluationContext):
        if not settings.meta_auto_enabled:
            # The seed's kill switch: the autonomous system is stopped, no cycle launches.
            return SkipReason("META_AUTO_ENABLED is false: the autonomous system is stopped, no cycle launched")
        configured = accounts.get_partition_keys()
        stored = controls.current_in(settings.database_url(), configured)
        paused = {account: c.paused for account, c in stored.items() if c.paused is not None}
        for account, pause in sorted(paused.items()):
            context.log.info(f"skipped {account}: automation paused by {pause.describe()}")
        # An account whose last cycle has not even started yet (more accounts than the machines
        # can cycle in one interval) gets no second one: the queue would only grow, tick by tick.
        in_flight = context.instance.get_runs(RunsFilter(job_name=CYCLE_JOB_NAME, statuses=IN_FLIGHT))
        busy = {run.tags.get(ACCOUNT_TAG) for run in in_flight}
        due = [account for account in configured if account not in busy and account not in paused]
        skipped = sorted(set(configured) - set(due) - set(paused))
        if skipped:
            context.log.info(f"skipped, previous cycle still queued or running: {', '.join(skipped)}")
        if not due:
            if len(paused) == len(configured):
                return SkipReason(f"automation paused for every account ({', '.join(sorted(paused))}): no cycle launched")
            return SkipReason("every account's previous cycle is still queued or running, or its automation paused")
        # The scheduler dedupes a tick's requests by (scheduled time, run key): with the account as
        # run key, a tick evaluated again (e.g. after a daemon restart) launches no account twice.
        # Each run's mode tag is the mode the account will run in (the stored one, else the default).
        return [
            RunRequest(run_key=account, partition_key=account,
                       tags=tags | {AUTO_MODE_TAG: stored.get(account, controls.Controls()).mode_or(settings.meta_auto_mode)})
            for account in due
        ]

    return meta_ads_cycle_schedule
