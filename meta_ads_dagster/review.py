"""Jobs beside the cycle: review the queue, undo a cycle, purge the audit ledger.

Each is a thin op over ``store/``; the same functions back the ``meta-ads`` CLI, so the Dagster
UI's launchpad and the command line do exactly the same thing.
"""

from typing import Literal

from dagster import Config, DefaultScheduleStatus, Failure, OpExecutionContext, ResourceParam, ScheduleDefinition, job, op

from .engine.snapshot import SnapshotError
from .meta.client import MetaAdsClient
from .resources import LedgerResource
from .settings import Settings
from .store import approvals
from .store.locks import AccountLocked
from .store.rollback import rollback_cycle_run


class ReviewConfig(Config):
    action_ids: list[str]
    decision: Literal["approve", "reject"]
    reviewer: str
    reason: str = ""


@op
def review(context: OpExecutionContext, config: ReviewConfig, settings: ResourceParam[Settings], ledger: LedgerResource) -> None:
    """Approve or reject queued actions (all or none); the next cycle carries approvals out."""
    try:
        decided = approvals.decide(ledger.open(), config.action_ids, config.decision, config.reviewer, config.reason, settings.approval_ttl_hours)
    except approvals.ReviewError as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    context.log.info(f"{config.reviewer} {config.decision}d {len(decided)} action(s): {', '.join(decided['action_id'])}")


@job(description="Approve or reject queued actions: config action_ids, decision (approve|reject), reviewer, reason.")
def review_actions():
    review()


class RollbackConfig(Config):
    run_id: str
    force: bool = False  # restore entities changed since, and past the guard rails, too (logged as forced)
    requested_by: str = "dagster"


@op
def rollback(
    context: OpExecutionContext, config: RollbackConfig, settings: ResourceParam[Settings], meta_client: MetaAdsClient, ledger: LedgerResource
) -> None:
    """Restore the budgets and statuses a cycle run changed, through the guard rails as they stand
    now; entities changed since, and restores a guard rail refuses, are skipped unless forced."""
    try:
        report = rollback_cycle_run(ledger.open(), meta_client, settings, config.run_id, context.run_id, config.requested_by, config.force)
    except (LookupError, AccountLocked, SnapshotError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    context.add_output_metadata({
        "restored": len(report.restored), "skipped": len(report.skipped), "refused": len(report.refused),
        "forced": len(report.forced), "failed": len(report.failed),
    })
    for line in report.skipped:
        context.log.warning(f"skipped: {line}")
    for line in report.refused:
        context.log.warning(f"refused: {line}")
    for line in report.forced:
        context.log.warning(f"forced: {line}")
    context.log.info(f"restored: {report.restored}")
    if report.failed:
        raise Failure(description="some restores failed: " + "; ".join(report.failed), allow_retries=False)


@job(description="Undo one cycle: config run_id (the cycle's run), force (restore entities changed since too).")
def rollback_cycle():
    rollback()


@op
def purge_ledger(context: OpExecutionContext, settings: ResourceParam[Settings], ledger: LedgerResource) -> None:
    """Drop audit rows older than AUDIT_RETENTION_DAYS (open rows are kept)."""
    deleted = approvals.purge(ledger.open(), settings.audit_retention_days)
    context.add_output_metadata({"rows_deleted": deleted})


@job(description="Delete audit ledger rows older than AUDIT_RETENTION_DAYS.")
def purge_audit_ledger():
    purge_ledger()


purge_schedule = ScheduleDefinition(
    name="purge_audit_ledger_daily",
    job=purge_audit_ledger,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
