"""STEPS 2–4 of the cycle as ops composed into one graph-backed asset, ``optimization_cycle``.

A plain ``@job`` of ops cannot take asset values as inputs, so the decision, guard-rail,
execution and finalize ops form a ``@graph_asset`` downstream of the collection assets; one asset
job runs collection and this graph, so one Dagster run is one cycle and the UI shows every op.
Each op is a thin shell around one step of ``steps.py`` (plain Python over the engine, the ledger
and the client), which ``steps.run_cycle`` also runs without Dagster.
"""


import json
from datetime import datetime, timezone

import pandas as pd
from dagster import DagsterInstance, Failure, In, Nothing, OpExecutionContext, Out, Output, ResourceParam, graph_asset, op

from .. import ui_metadata
from ..checks import GUARD_RAIL_CHECK, executed_actions_within_guard_rails
from ..engine import cycle as engine
from ..engine.decisions import spikes_not_acted_on
from ..engine.metrics import account_roas
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


@op
def limit_writes(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2f: one write per entity, at most MAX_ACTIONS_PER_TICK executed actions besides hard
    stops (approvals included), and nothing written while META_AUTO_ENABLED is false."""
    return steps.limit(account_snapshot, actions, settings)


@op
def execute(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    meta_client: MetaAdsClient,
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    actions: pd.DataFrame,
    scope: list,
) -> pd.DataFrame:
    """STEP 3: record the cycle in the ledger, then apply the executable actions through the client,
    holding the account's write lock (two cycles never write at once)."""
    try:
        executed, records = steps.execute(
            ledger.open(), meta_client, account_snapshot, actions, scope, settings, context.run_id, context.log, run_alive(context.instance)
        )
    except AccountLocked as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    for record in records:
        context.log.info("action " + json.dumps(record, default=str, sort_keys=True))
    return executed


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


@graph_asset(group_name="cycle", check_specs=[GUARD_RAIL_CHECK])
def optimization_cycle(
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    creative_fatigue: pd.DataFrame,
) -> pd.DataFrame:
    """One optimization cycle: reconcile → decide → policy → safety → route → add approved →
    limit writes → execute → finalize.

    Its value is the cycle's action frame (every action with verdict and reasons); the guard-rail
    check runs on the same frame.
    """
    proposed, scope = decide(account_snapshot, roas_metrics, ab_tests, spikes, creative_fatigue, reconciled=reconcile(account_snapshot))
    checked = apply_safety(account_snapshot, roas_metrics, apply_policy(account_snapshot, proposed))
    with_approvals = add_approved(account_snapshot, roas_metrics, route(account_snapshot, checked))
    done = execute(account_snapshot, limit_writes(account_snapshot, with_approvals), scope)
    return {
        "result": finalize(account_snapshot, roas_metrics, spikes, done, scope),
        GUARD_RAIL_CHECK.get_python_identifier(): check_guard_rails(account_snapshot, done),
    }
