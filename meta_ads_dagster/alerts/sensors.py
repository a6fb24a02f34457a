"""The alert sensors: thin shells that read what Dagster and the ledger recorded, judge it with
``conditions.py`` and send what is new through the ``notifier`` resource.

Built like dagster-slack's ``make_slack_on_run_failure_sensor``: factories returning a
``@run_failure_sensor`` / ``@run_status_sensor`` that judge the cycle job's finished runs
(Dagster's own cursor walks the run-status events, so every finished cycle is judged exactly
once), plus one schedule-aware ``@sensor`` for what no run event shows: a cycle that does not
come, or takes too long.

Which alerts were sent (and not yet cleared) is JSON state: the schedule-aware sensor keeps it in
its own cursor. A run-status sensor's cursor belongs to Dagster (a ``SensorResult`` carrying a
cursor is refused there), so the finished-cycle sensors keep theirs per account as a cursor value
of the instance's key-value store, where Dagster's daemons keep their own cursors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetKey, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, DefaultScheduleStatus, DefaultSensorStatus, RunFailureSensorContext,
    RunsFilter, RunStatusSensorContext, ScheduleDefinition, SensorEvaluationContext, SkipReason, run_failure_sensor,
    run_status_sensor, sensor,
)
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from ..jobs import ACCOUNT_TAG, CYCLE_JOB_NAME
from ..resources import LedgerResource
from ..settings import Settings
from ..store.ledger import Ledger
from . import conditions
from .conditions import CheckOutcome, CycleOutcome, Finding
from .notifier import Alert, AlertNotDelivered, Notifier

CYCLE_ASSET = AssetKey("optimization_cycle")
STATE_KEY = "meta_ads_dagster.alerts.cycle.{account}"  # the finished-cycle alerts of one account
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def run_url(settings: Settings, run_id: str | None) -> str:
    """A run's page in the Dagster UI (DAGSTER_UI_URL), or the run list."""
    return f"{settings.dagster_ui_url}/runs/{run_id}" if run_id else f"{settings.dagster_ui_url}/runs"


def send_new(
    notifier: Notifier, account: str, active: set[str], findings: Sequence[Finding], link: str, log
) -> tuple[set[str], list[str]]:
    """Send each finding's new items as one alert; returns the keys alerted afterwards and the
    delivery problems. An alert a channel refused is not recorded, so it goes out again next time."""
    state, fired = conditions.advance(active, findings)
    problems = []
    for finding in fired:
        try:
            notifier.send(Alert(account, finding.title, tuple(finding.items.values()), link), log)
        except AlertNotDelivered as exc:
            state -= set(finding.items)
            problems.append(str(exc))
    return state, problems


# --- finished cycles -----------------------------------------------------------------------------


def cycle_stats(instance: DagsterInstance, run_id: str) -> dict[str, float] | None:
    """The numeric metadata of the run's ``optimization_cycle`` materialization (None: none)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == CYCLE_ASSET:
            return {
                name: value.value for name, value in materialization.metadata.items()
                if isinstance(value.value, (int, float)) and not isinstance(value.value, bool)
            }
    return None


def check_outcomes(instance: DagsterInstance, run_id: str) -> tuple[CheckOutcome, ...]:
    """The asset checks the run evaluated, the latest evaluation of each."""
    latest = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        metadata = {name: value.value for name, value in evaluation.metadata.items() if isinstance(value.value, (int, float, str))}
        latest[(evaluation.asset_key, evaluation.check_name)] = CheckOutcome(
            evaluation.check_name, evaluation.asset_key.to_user_string(), evaluation.passed, evaluation.severity.value, metadata
        )
    return tuple(latest.values())


def cycle_outcome(instance: DagsterInstance, ledger: Ledger, run: DagsterRun, status: str, error: str | None) -> CycleOutcome:
    """What the finished run recorded, in Dagster and in the ledger."""
    actions = ledger.cycle_actions(run.run_id)
    return CycleOutcome(
        status=status,
        error=error,
        stats=cycle_stats(instance, run.run_id),
        actions=actions if status == "success" or not actions.empty else None,
        pending=ledger.pending(run.tags[ACCOUNT_TAG]),
        checks=check_outcomes(instance, run.run_id),
    )


def failure_message(context: RunFailureSensorContext) -> str:
    """The failed step and the first line of its error, or the run's failure message."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return f"step {event.step_key} failed: {error.message.strip().splitlines()[0]}"
    return context.failure_event.message or "the run failed"


def alert_on_finished_cycle(
    context: RunStatusSensorContext, notifier: Notifier, ledger: LedgerResource, settings: Settings, status: str, error: str | None = None
) -> None:
    """Judge a finished cycle run and send what is new for its account.

    Returns None whatever it finds: a run-status sensor that returns something ends its tick
    there, and a tick should judge every run that finished since the last one."""
    run = context.dagster_run
    if run.job_name != CYCLE_JOB_NAME:
        return None
    account = run.tags.get(ACCOUNT_TAG)
    if account is None:  # the run refused to guess its account; its failure names why
        context.log.warning(f"run {run.run_id} names no account ({ACCOUNT_TAG} tag): not judged")
        return None
    outcome = cycle_outcome(context.instance, ledger.open(), run, status, error)
    findings = conditions.cycle_findings(outcome, settings.for_account(account).max_daily_spend_usd)
    storage = context.instance.daemon_cursor_storage
    state_key = STATE_KEY.format(account=account)
    stored = storage.get_cursor_values({state_key}).get(state_key)
    active = set(json.loads(stored)) if stored else set()
    state, problems = send_new(notifier, account, active, findings, run_url(settings, run.run_id), context.log)
    storage.set_cursor_values({state_key: json.dumps(sorted(state))})
    if problems:
        raise AlertNotDelivered("; ".join(problems))
    return None


def make_cycle_alert_sensors(settings: Settings) -> list:
    """Sensors over the cycle job's finished runs: failed, canceled, succeeded.

    They watch every run of the instance and keep the cycle job's (``alert_on_finished_cycle``):
    a ``monitored_jobs`` sensor only sees runs launched through this code location (schedule, UI,
    daemon), not the ones a process runs itself (``meta-ads cycle``, ``dagster job execute``),
    which carry no code location."""
    common = {"monitor_all_code_locations": True, "default_status": DefaultSensorStatus.RUNNING}

    @run_failure_sensor(name="meta_ads_cycle_failed_alert", description="Alerts when a cycle run fails (and what it recorded before).", **common)
    def meta_ads_cycle_failed_alert(context: RunFailureSensorContext, notifier: Notifier, ledger: LedgerResource):
        return alert_on_finished_cycle(context, notifier, ledger, settings, "failure", failure_message(context))

    @run_status_sensor(
        name="meta_ads_cycle_canceled_alert", run_status=DagsterRunStatus.CANCELED,
        description="Alerts when a cycle run is canceled (run monitoring cancels one past its max runtime).", **common,
    )
    def meta_ads_cycle_canceled_alert(context: RunStatusSensorContext, notifier: Notifier, ledger: LedgerResource):
        return alert_on_finished_cycle(context, notifier, ledger, settings, "canceled", context.dagster_event.message)

    @run_status_sensor(
        name="meta_ads_cycle_outcome_alert", run_status=DagsterRunStatus.SUCCESS,
        description="Judges each finished cycle: Meta API errors, big budget changes, hard stops, spend near the cap, "
        "blocked actions, newly queued actions, failed asset checks.", **common,
    )
    def meta_ads_cycle_outcome_alert(context: RunStatusSensorContext, notifier: Notifier, ledger: LedgerResource):
        return alert_on_finished_cycle(context, notifier, ledger, settings, "success")

    return [meta_ads_cycle_failed_alert, meta_ads_cycle_canceled_alert, meta_ads_cycle_outcome_alert]


# --- the clock -----------------------------------------------------------------------------------


def schedule_running(context: SensorEvaluationContext, schedule: ScheduleDefinition) -> bool:
    """Whether the schedule runs now, as the UI shows it: its stored state (started or stopped in
    the UI / CLI), else its default status in code. A stored "declared in code" state counts only
    while the code still declares it running (Dagster's own rule)."""
    location = context.code_location_origin.location_name if context.code_location_origin else None
    stored = [
        state for state in context.instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        if state.instigator_name == schedule.name
        and (location is None or state.repository_selector.location_name == location)
        and (context.repository_name is None or state.repository_selector.repository_name == context.repository_name)
    ]
    declared_running = schedule.default_status == DefaultScheduleStatus.RUNNING
    if not stored:
        return declared_running
    status = stored[0].status
    return status == InstigatorStatus.RUNNING or (status == InstigatorStatus.DECLARED_IN_CODE and declared_running)


def watch_findings(
    instance: DagsterInstance, accounts: Sequence[str], watching_since: datetime | None, now: datetime
) -> dict[str, tuple[list[Finding], str | None]]:
    """Per account: the clock's findings and the run an alert should link to."""
    window = now - 2 * conditions.NO_SUCCESS_WITHIN
    finished = instance.get_run_records(RunsFilter(job_name=CYCLE_JOB_NAME, statuses=FINISHED, updated_after=window))
    running = instance.get_run_records(RunsFilter(job_name=CYCLE_JOB_NAME, statuses=[DagsterRunStatus.STARTED]))
    result = {}
    for account in accounts:
        mine = sorted((r for r in finished if r.dagster_run.tags.get(ACCOUNT_TAG) == account), key=lambda r: r.end_time or 0, reverse=True)
        successes = [r for r in mine if r.dagster_run.status == DagsterRunStatus.SUCCESS and r.end_time]
        last_success = datetime.fromtimestamp(successes[0].end_time, timezone.utc) if successes else None
        last = mine[0] if mine else None
        last_duration = timedelta(seconds=last.end_time - last.start_time) if last and last.end_time and last.start_time else None
        in_flight = [r for r in running if r.dagster_run.tags.get(ACCOUNT_TAG) == account]
        current = min(in_flight, key=_started) if in_flight else None
        running_since = datetime.fromtimestamp(_started(current), timezone.utc) if current else None
        findings = [
            conditions.no_recent_success(now, last_success, watching_since),
            conditions.slow_cycle(now, running_since, last_duration),
        ]
        linked = current or last
        result[account] = (findings, linked.dagster_run.run_id if linked else None)
    return result


def _started(record) -> float:
    return record.start_time or record.create_timestamp.timestamp()


def make_cycle_watch_sensor(settings: Settings, schedule: ScheduleDefinition, accounts: Sequence[str]):
    """The schedule-aware sensor: per account, no successful cycle within an hour while the
    schedule runs (and the kill switch is off), and a cycle longer than ten minutes."""

    @sensor(
        name="meta_ads_cycle_watch",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts when an account has had no successful cycle for an hour while the schedule runs, "
        "and when a cycle runs longer than 10 minutes.",
    )
    def meta_ads_cycle_watch(context: SensorEvaluationContext, notifier: Notifier):
        now = datetime.now(timezone.utc)
        cursor = json.loads(context.cursor) if context.cursor else {}
        watching = settings.meta_auto_enabled and schedule_running(context, schedule)
        since = datetime.fromisoformat(cursor["watching_since"]) if watching and cursor.get("watching_since") else (now if watching else None)
        active = cursor.get("active", {})
        problems = []
        for account, (findings, run_id) in watch_findings(context.instance, accounts, since, now).items():
            state, failed = send_new(notifier, account, set(active.get(account, [])), findings, run_url(settings, run_id), context.log)
            active[account] = sorted(state)
            problems += failed
        context.update_cursor(json.dumps({"watching_since": since.isoformat() if since else None, "active": active}))
        if problems:
            # Not raised: a failed tick would not keep the cursor, and the alerts that did go
            # out would go out again every minute. What was not delivered is retried next tick.
            context.log.error("; ".join(problems))
            return SkipReason("alert delivery failed: " + "; ".join(problems))
        return SkipReason("watching: the schedule is running" if watching else "the schedule is stopped: only slow cycles are watched")

    return meta_ads_cycle_watch
