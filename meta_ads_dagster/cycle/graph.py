"""STEPS 2–4 of the cycle as ops composed into two graph-backed assets: ``cycle_plan`` and
``optimization_cycle``.

A plain ``@job`` of ops cannot take asset values as inputs, so the ops form ``@graph_asset``s
downstream of the collection assets. ``cycle_plan`` decides (reconcile → decide → policy → safety →
route → add approved → hold on an outage → limit writes) and writes nothing to Meta; its blocking
checks judge the plan before ``optimization_cycle`` (execute → finalize) may write it: a failed
one (ERROR) stops the run there. One asset job runs collection and both, so one Dagster run is
still one cycle and the UI shows every op. Each op is a thin shell around one step of
``steps.py`` (plain Python over the engine, the ledger and the client), which ``steps.run_cycle``
also runs without Dagster, checks included.
"""


import json
from datetime import datetime, timezone

import pandas as pd
from dagster import DagsterInstance, Failure, In, Nothing, OpExecutionContext, Out, Output, ResourceParam, graph_asset, op

from .. import ui_metadata
from ..checks import (
    GUARD_RAIL_CHECK, PLAN_GUARD_RAIL_CHECK, PLAN_OUTAGE_CHECK, executed_actions_within_guard_rails, plan_holds_on_tracking_outage,
    planned_actions_within_guard_rails,
)
from ..engine import cycle as engine
from ..engine.actions import VERDICTS
from ..engine.decisions import spikes_not_acted_on
from ..engine.metrics import account_roas
from ..engine.outage import TrackingOutage
from ..engine.snapshot import AccountSnapshot
from ..meta.client import MetaAdsClient
from ..resources import LedgerResource
from ..settings import Settings
from ..store.locks import AccountLocked, RunAlive
from . import steps


def run_alive(instance: DagsterInstance) -> RunAlive:
    """Whether a run still goes on, as the instance's run storage says: not finished (queued,
    starting, started, canceling); None for a run it does not know (not a Dagster run, e.g. a CLI
    rollback, or another instance's)."""

    def alive(run_id: str) -> bool | None:
        run = instance.get_run_by_id(run_id)
        return None if run is None else not run.is_finished

    return alive


@op
def reconcile(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    meta_client: MetaAdsClient,
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
) -> pd.DataFrame:
    """STEP 2·0: under the account's write lock, settle earlier writes whose outcome was left open
    (unknown, or a run that died mid-write) from what the account shows now, never those of a run
    still going on; then take stale proposals out of the queue. Nothing is ever re-sent blindly."""
    return steps.reconcile(ledger.open(), meta_client, account_snapshot, settings, context.run_id, context.log, run_alive(context.instance))


@op(ins={"reconciled": In(Nothing)}, out={"actions": Out(pd.DataFrame), "scope": Out(list)})
def decide(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    creative_fatigue: pd.DataFrame,
):
    """STEP 2a: the decision rules propose at most one action per entity for the campaigns in this
    tick's scope (after reconcile, so the cooldown history is settled)."""
    frames = {"roas_metrics": roas_metrics, "ab_tests": ab_tests, "spikes": spikes, "creative_fatigue": creative_fatigue}
    actions, scope = steps.decide(ledger.open(), account_snapshot, frames, settings, context.log)
    return actions, scope


@op
def apply_policy(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2b: PolicyEngine clamps budget changes and blocks what policy forbids."""
    return steps.apply_policy(account_snapshot, actions, settings)


@op
def apply_safety(
    settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, roas_metrics: pd.DataFrame, actions: pd.DataFrame
) -> pd.DataFrame:
    """STEP 2c: SafetyEngine enforces embargo, minimum data, cooldown, approvals and the spend caps."""
    return steps.apply_safety(account_snapshot, roas_metrics, actions, settings)


@op
def route(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2d: execute now (hard stops; auto mode's safety matrix) or queue for a human."""
    return steps.route(account_snapshot, actions, settings)


@op
def add_approved(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    actions: pd.DataFrame,
) -> pd.DataFrame:
    """STEP 2e: actions a person approved since, re-validated against the account as it is now."""
    return steps.add_approved(ledger.open(), account_snapshot, roas_metrics, actions, settings, context.log)


@op(out={"actions": Out(pd.DataFrame), "outage": Out(TrackingOutage | None)})
def hold_on_outage(context: OpExecutionContext, settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame):
    """STEP 2f: on a tracking outage every executable action but the hard stops that hold without
    the dark days and a person's protective approvals waits for a person (engine/outage.py)."""
    return steps.hold_on_outage(account_snapshot, actions, settings, context.log)


@op
def limit_writes(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2g: one write per entity, at most MAX_ACTIONS_PER_TICK executed actions besides hard
    stops (approvals included), and nothing written while META_AUTO_ENABLED is false."""
    return steps.limit(account_snapshot, actions, settings)


@op
def plan(actions: pd.DataFrame, scope: list, outage: TrackingOutage | None) -> Output[steps.CyclePlan]:
    """The plan: what execute will write (verdict ``executed``) and what it will not, counted by
    verdict (every verdict every cycle, so the UI plots each one over cycles)."""
    verdicts = actions["verdict"].value_counts()
    return Output(
        steps.CyclePlan(actions, scope, outage),
        metadata={
            "to_execute": int(verdicts.get("executed", 0)),
            **{f"verdict_{verdict}": int(verdicts.get(verdict, 0)) for verdict in VERDICTS if verdict not in ("proposed", "executed", "failed")},
            "campaigns_in_scope": len(scope),
            "tracking_outage": outage.describe() if outage is not None else "none",
        },
    )


@op
def check_planned_guard_rails(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, cycle_plan: steps.CyclePlan):
    """The blocking ``planned_actions_within_guard_rails`` check over what the plan would write."""
    return planned_actions_within_guard_rails(settings, cycle_plan.actions, account_snapshot)


@op
def check_outage_hold(account_snapshot: AccountSnapshot, cycle_plan: steps.CyclePlan):
    """The blocking ``plan_holds_on_tracking_outage`` check over what the plan would write."""
    return plan_holds_on_tracking_outage(cycle_plan.actions, account_snapshot)


@op(out={"actions": Out(pd.DataFrame), "scope": Out(list)})
def execute(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    meta_client: MetaAdsClient,
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    cycle_plan: steps.CyclePlan,
):
    """STEP 3: record the plan in the ledger, then apply its executable actions through the client,
    holding the account's write lock (two cycles never write at once). Runs only once the plan's
    blocking checks passed."""
    try:
        executed, records = steps.execute(
            ledger.open(), meta_client, account_snapshot, cycle_plan.actions, cycle_plan.scope, settings, context.run_id, context.log,
            run_alive(context.instance),
        )
    except AccountLocked as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    for record in records:
        context.log.info("action " + json.dumps(record, default=str, sort_keys=True))
    return executed, cycle_plan.scope


def _run_started_at(context: OpExecutionContext) -> str:
    """When this run (the tick) started, from Dagster's run record."""
    record = context.instance.get_run_record_by_id(context.run_id)
    started = record.start_time if record is not None and record.start_time else None
    return (datetime.fromtimestamp(started, timezone.utc) if started else datetime.now(timezone.utc)).isoformat()


@op
def finalize(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    spikes: pd.DataFrame,
    actions: pd.DataFrame,
    scope: list,
) -> Output[pd.DataFrame]:
    """STEP 4: the cycle's stats snapshot, as numeric metadata the UI plots, and the action table."""
    started, completed = _run_started_at(context), datetime.now(timezone.utc).isoformat()
    stats = engine.summarize(actions, len(scope), started, completed)
    snapshot_stats = cycle_snapshot_stats(account_snapshot, roas_metrics, actions)
    unacted = spikes_not_acted_on(roas_metrics, spikes)
    for reason in unacted["reason"]:
        context.log.info(reason)
    daily_cap = settings.for_account(account_snapshot.account_id).max_daily_spend_usd
    metadata = {
        **snapshot_stats,
        **{key: value for key, value in stats.items() if key != "errors"},
        **ui_metadata.cycle_numbers(snapshot_stats["total_spend_today"], daily_cap, started, completed),
        "spikes_down_not_acted_on": len(unacted),
        "mode": settings.meta_auto_mode,
        "actions": ui_metadata.action_table(actions, account_snapshot),
        ui_metadata.ROW_COUNT: len(actions),
    }
    context.log.info("cycle stats " + json.dumps({**snapshot_stats, **stats}))
    return Output(actions, metadata=metadata)


@op
def check_guard_rails(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame):
    """The ``executed_actions_within_guard_rails`` check over what this cycle executed (an
    AssetCheckResult: Dagster records it as the check's evaluation, not as a stored value)."""
    return executed_actions_within_guard_rails(settings, actions, account_snapshot)


def cycle_snapshot_stats(snapshot: AccountSnapshot, metrics: pd.DataFrame, actions: pd.DataFrame) -> dict:
    """The seed's stats snapshot: what was live, what it spent and earned, what the cycle did."""
    active = metrics[metrics["effective_active"]]
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    return {
        "campaigns_active": int((active["entity_type"] == "campaign").sum()),
        "adsets_active": int((active["entity_type"] == "adset").sum()),
        "ads_active": int((active["entity_type"] == "ad").sum()),
        "total_spend_today": round(float(campaigns["spend_today"].sum()), 2),
        "avg_roas": account_roas(metrics),
        "actions_taken": int((actions["verdict"] == "executed").sum()),
    }


@graph_asset(group_name="cycle", check_specs=[PLAN_GUARD_RAIL_CHECK, PLAN_OUTAGE_CHECK])
def cycle_plan(
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    creative_fatigue: pd.DataFrame,
) -> steps.CyclePlan:
    """What this cycle will write, before anything is: reconcile → decide → policy → safety →
    route → add approved → hold on an outage → limit writes.

    Its value is the plan (every action with verdict and reasons, the campaigns evaluated, the
    outage if any); its blocking checks must pass before ``optimization_cycle`` writes it.
    """
    proposed, scope = decide(account_snapshot, roas_metrics, ab_tests, spikes, creative_fatigue, reconciled=reconcile(account_snapshot))
    checked = apply_safety(account_snapshot, roas_metrics, apply_policy(account_snapshot, proposed))
    with_approvals = add_approved(account_snapshot, roas_metrics, route(account_snapshot, checked))
    held, outage = hold_on_outage(account_snapshot, with_approvals)
    planned = plan(limit_writes(account_snapshot, held), scope, outage)
    return {
        "result": planned,
        PLAN_GUARD_RAIL_CHECK.get_python_identifier(): check_planned_guard_rails(account_snapshot, planned),
        PLAN_OUTAGE_CHECK.get_python_identifier(): check_outage_hold(account_snapshot, planned),
    }


@graph_asset(group_name="cycle", check_specs=[GUARD_RAIL_CHECK])
def optimization_cycle(
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    spikes: pd.DataFrame,
    cycle_plan: steps.CyclePlan,
) -> pd.DataFrame:
    """One optimization cycle's writes: execute the checked plan → finalize.

    Its value is the cycle's action frame (every action with verdict and reasons); the guard-rail
    check audits what was written on the same frame.
    """
    done, scope = execute(account_snapshot, cycle_plan)
    return {
        "result": finalize(account_snapshot, roas_metrics, spikes, done, scope),
        GUARD_RAIL_CHECK.get_python_identifier(): check_guard_rails(account_snapshot, done),
    }
