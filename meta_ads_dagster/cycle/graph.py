"""STEPS 2–4 of the cycle as ops composed into one graph-backed asset, ``optimization_cycle``.

A plain ``@job`` of ops cannot take asset values as inputs, so the decision, guard-rail,
execution and finalize ops form a ``@graph_asset`` downstream of the collection assets; one asset
job runs collection and this graph, so one Dagster run is one cycle and the UI shows every op.
Each op is a thin shell around the engine (``engine/cycle.py``).
"""


import json

import pandas as pd
from dagster import Failure, In, MetadataValue, Nothing, OpExecutionContext, Output, ResourceParam, graph_asset, op

from ..checks import GUARD_RAIL_CHECK, executed_actions_within_guard_rails
from ..engine import cycle as engine
from ..engine.approvals import approved_candidates, revalidate, supersede_by_approvals
from ..engine.metrics import account_roas
from ..engine.policy import PolicyEngine
from ..engine.reconcile import reconcile_writes, with_prior_state
from ..engine.routing import route_actions
from ..engine.safety import SafetyEngine
from ..engine.snapshot import AccountSnapshot, parse_snapshot
from ..meta.client import MetaAdsClient
from ..meta.execution import execute_actions, hold_back_already_sent, hold_back_changed_since
from ..resources import LedgerResource
from ..settings import Settings
from ..store import approvals
from ..store.ledger import entity_history
from ..store.locks import AccountLocked, account_lock



@op
def reconcile(context: OpExecutionContext, ledger: LedgerResource, account_snapshot: AccountSnapshot) -> pd.DataFrame:
    """STEP 2·0: settle earlier writes whose outcome was left open (unknown, or a run that died
    mid-write) from what the account shows now. Nothing is ever re-sent blindly."""
    store = ledger.open()
    return settle(context, store, store.open_writes(account_snapshot.account_id, context.run_id), account_snapshot)


def settle(context: OpExecutionContext, store, open_writes: pd.DataFrame, snapshot: AccountSnapshot) -> pd.DataFrame:
    """Close open writes in the ledger from what ``snapshot`` shows (engine/reconcile.py) and log each."""
    settled = reconcile_writes(open_writes, snapshot)
    for row in settled.itertuples(index=False):
        note = f"{'landed' if row.landed else 'did not land'} ({row.observed})"
        store.settle(row.cycle_run_id, row.action_id, row.landed, note)
        context.log.info(f"reconciled {row.type} {row.entity_type} {row.entity_id} of run {row.cycle_run_id}: {note}")
    return settled


@op(ins={"reconciled": In(Nothing)})
def decide(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    creative_fatigue: pd.DataFrame,
) -> pd.DataFrame:
    """STEP 2a: the decision rules propose at most one action per entity (after reconcile, so the
    cooldown history is settled)."""
    history = entity_history([ledger.open().last_actions(account_snapshot.account_id), account_snapshot.recent_actions])
    actions = engine.decide(account_snapshot, roas_metrics, ab_tests, spikes, creative_fatigue, settings.for_account(account_snapshot.account_id), history)
    context.log.info(f"{len(actions)} action(s) proposed")
    return actions


@op
def apply_policy(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2b: PolicyEngine clamps budget changes and blocks what policy forbids."""
    return PolicyEngine(settings.for_account(account_snapshot.account_id)).evaluate(actions)


@op
def apply_safety(
    settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, roas_metrics: pd.DataFrame, actions: pd.DataFrame
) -> pd.DataFrame:
    """STEP 2c: SafetyEngine enforces embargo, minimum data, cooldown, approvals and the spend cap."""
    return SafetyEngine(settings.for_account(account_snapshot.account_id)).evaluate(actions, engine.account_spend(account_snapshot, roas_metrics))


@op
def route(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot, actions: pd.DataFrame) -> pd.DataFrame:
    """STEP 2d: execute now (hard stops; auto mode's safety matrix) or queue for a human."""
    return route_actions(actions, settings.for_account(account_snapshot.account_id))


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
    store = ledger.open()
    account = account_snapshot.account_id
    approved = approvals.queue(store, "approved", account)
    # An approval whose write a run already sent (e.g. one that crashed right after it) is done.
    sent = store.already_sent(account, approved["action_id"])
    approvals.close_approvals(store, {i: ("carried_out", f"already sent by run {run}") for i, run in sent.items()})
    approved = approved[~approved["action_id"].isin(list(sent))].reset_index(drop=True)
    if approved.empty:
        return actions
    history = entity_history([store.last_actions(account), account_snapshot.recent_actions])
    candidates = approved_candidates(approved, roas_metrics, account_snapshot.minor_per_unit, account_snapshot.as_of, history)
    checked = revalidate(candidates, actions, engine.account_spend(account_snapshot, roas_metrics), settings.for_account(account))
    checked["actor"] = approved["decided_by"].to_numpy()
    checked["approved_in_run"] = approved["cycle_run_id"].to_numpy()
    context.log.info(f"{len(checked)} approved action(s): {int((checked['verdict'] == 'executed').sum())} still hold")
    actions = supersede_by_approvals(actions, checked)
    return pd.concat([actions, checked], ignore_index=True)


def settle_open_writes(context: OpExecutionContext, store, meta_client: MetaAdsClient, account: str, action_ids: pd.Series) -> None:
    """This step is sending writes a dead run already started (a re-execution from failure, a
    retry): read the account *now* and settle them first. What landed is then held back as already
    sent; what did not is sent by this run, so each write lands exactly once. Under the account
    lock, so the run that left them open cannot still be writing."""
    open_writes = store.open_writes(account, context.run_id)
    open_writes = open_writes[open_writes["action_id"].isin(set(action_ids))]
    if open_writes.empty:
        return
    settle(context, store, open_writes, parse_snapshot(meta_client.fetch_snapshot()))


@op
def execute(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    meta_client: MetaAdsClient,
    ledger: LedgerResource,
    account_snapshot: AccountSnapshot,
    actions: pd.DataFrame,
) -> pd.DataFrame:
    """STEP 3: record the cycle in the ledger, then apply the executable actions through the client,
    holding the account's write lock (two cycles never write at once)."""
    store = ledger.open()
    run_id = context.run_id
    account = account_snapshot.account_id
    meta_client = meta_client.for_account(account)
    try:
        with account_lock(store, account, run_id, stale_after=settings.cycle_max_runtime):
            executable = actions.loc[actions["verdict"] == "executed", "id"]
            settle_open_writes(context, store, meta_client, account, executable)
            actions = hold_back_already_sent(actions, store.already_sent(account, executable))
            history = entity_history([store.last_actions(account), account_snapshot.recent_actions])
            actions = hold_back_changed_since(actions, history, account_snapshot.as_of)
            actions = with_prior_state(actions, account_snapshot)
            ttl = settings.for_account(account).approval_ttl_hours
            store.record_cycle(actions, run_id, account, account_snapshot.as_of, approval_ttl_hours=ttl)
            executed, records = execute_actions(
                actions,
                meta_client,
                lambda outcome: store.mark_outcome(
                    run_id, outcome.action_id, account_snapshot.as_of, outcome.error, outcome.status, outcome.result
                ),
            )
    except AccountLocked as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    if "approved_in_run" in executed:
        done = executed[executed["approved_in_run"].notna()]
        approvals.close_approvals(
            store,
            {a.id: ("carried_out" if a.verdict == "executed" else "refused", f"cycle {run_id}: {a.reasons[-1]}") for a in done.itertuples()},
        )
    for record in records:
        context.log.info("action " + json.dumps(record, default=str, sort_keys=True))
    return executed


@op
def finalize(
    context: OpExecutionContext,
    settings: ResourceParam[Settings],
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    actions: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """STEP 4: the cycle's stats snapshot, as numeric metadata the UI plots, and the action table."""
    evaluated = len(engine.campaigns_in_scope(roas_metrics, settings.for_account(account_snapshot.account_id).max_campaigns_per_tick))
    stats = engine.summarize(actions, evaluated)
    snapshot_stats = cycle_snapshot_stats(account_snapshot, roas_metrics, actions)
    metadata = {
        **snapshot_stats,
        **{key: value for key, value in stats.items() if key != "errors"},
        "mode": settings.meta_auto_mode,
        "actions": MetadataValue.md(action_table(actions)),
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


def action_table(actions: pd.DataFrame) -> str:
    """One markdown table of the cycle's actions (budgets in major units)."""
    if actions.empty:
        return "_no actions this cycle_"
    rows = pd.DataFrame(engine.contract_actions(actions))
    rows["reasons"] = rows["reasons"].map("; ".join)
    return rows[[*engine.SUMMARY_COLUMNS, "reasons"]].to_markdown(index=False)


@graph_asset(group_name="cycle", check_specs=[GUARD_RAIL_CHECK])
def optimization_cycle(
    account_snapshot: AccountSnapshot,
    roas_metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    creative_fatigue: pd.DataFrame,
) -> pd.DataFrame:
    """One optimization cycle: reconcile → decide → policy → safety → route → add approved →
    execute → finalize.

    Its value is the cycle's action frame (every action with verdict and reasons); the guard-rail
    check runs on the same frame.
    """
    proposed = decide(account_snapshot, roas_metrics, ab_tests, spikes, creative_fatigue, reconciled=reconcile(account_snapshot))
    checked = apply_safety(account_snapshot, roas_metrics, apply_policy(account_snapshot, proposed))
    with_approvals = add_approved(account_snapshot, roas_metrics, route(account_snapshot, checked))
    done = execute(account_snapshot, with_approvals)
    return {
        "result": finalize(account_snapshot, roas_metrics, done),
        GUARD_RAIL_CHECK.get_python_identifier(): check_guard_rails(account_snapshot, done),
    }
