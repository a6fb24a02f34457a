"""The cycle's steps as plain functions over the ledger, the Meta client and the engine.

Each Dagster op in ``graph.py`` is a thin shell around one of these; :func:`run_cycle` runs them
all in a row without Dagster, which is how the multi-cycle property test and the guard-rail
simulator drive hundreds of cycles in seconds through exactly the code a scheduled run uses.

reconcile → decide → policy → safety → route → add approvals → hold on an outage → limit writes
(the plan) → the blocking checks → execute → summarize
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import pandas as pd

from ..checks import insight_rows_are_possible, insights_are_fresh, plan_holds_on_tracking_outage, planned_actions_within_guard_rails
from ..engine import cycle as engine
from ..engine.actions import keep_units_whole
from ..engine.approvals import approved_candidates, revalidate, supersede_by_approvals
from ..engine.decisions import HYSTERESIS_DAYS
from ..engine.history import CHANGE_WINDOW_HOURS, COOLDOWN_HOURS, history_frame
from ..engine.outage import TrackingOutage, hold_on_outage as hold_actions_on_outage
from ..engine.reconcile import VERIFIABLE, reconcile_writes, with_prior_state
from ..engine.routing import limit_writes, route_actions
from ..engine.policy import PolicyEngine
from ..engine.reallocate import RESUME_LOOKBACK_HOURS
from ..engine.safety import SafetyEngine
from ..engine.snapshot import AccountSnapshot, parse_snapshot
from ..meta.client import MetaAdsClient
from ..meta.execution import execute_actions, hold_back_already_sent, hold_back_changed_since
from ..settings import Settings
from ..store import approvals, controls
from ..store.ledger import Ledger
from ..store.locks import AccountLocked, RunAlive, TakenOver, account_lock


@dataclass(frozen=True)
class CyclePlan:
    """What a cycle will do, before anything is written: every action with its verdict
    (``executed``: to be written), the campaigns it evaluated, and the tracking outage it held
    actions for (None: none)."""

    actions: pd.DataFrame
    scope: list[str]
    outage: TrackingOutage | None = None


class PlanRefused(RuntimeError):
    """A blocking check failed: the cycle writes nothing. The message names each failed check and why."""


class Log(Protocol):
    """What the steps log through: a Dagster ``context.log`` or a ``logging.Logger``."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...


def account_history(store: Ledger, snapshot: AccountSnapshot, settings: Settings) -> pd.DataFrame:
    """The writes the guard rails and rules look back on: the ledger's and the snapshot's
    ``recent_actions``, as far back as the longest of the cooldown, the 24 h change window, the
    creative embargo and the decision rules' HYSTERESIS_DAYS (hysteresis, raises after a change)."""
    hours = max(COOLDOWN_HOURS, CHANGE_WINDOW_HOURS, settings.creative_embargo_hours, HYSTERESIS_DAYS * 24)
    return history_frame([store.history(snapshot.account_id, snapshot.as_of - timedelta(hours=hours)), snapshot.recent_actions])


def settle(store: Ledger, open_writes: pd.DataFrame, snapshot: AccountSnapshot, log: Log) -> pd.DataFrame:
    """Close open writes in the ledger from what ``snapshot`` shows (engine/reconcile.py) and log
    each; returns those this call closed (a row closed meanwhile keeps its outcome)."""
    settled = reconcile_writes(open_writes, snapshot)
    notes = [f"{'landed' if row.landed else 'did not land'} ({row.observed})" for row in settled.itertuples(index=False)]
    closed = [store.settle(row.cycle_run_id, row.action_id, row.landed, note) for row, note in zip(settled.itertuples(index=False), notes)]
    for row, note, done in zip(settled.itertuples(index=False), notes, closed):
        if done:
            log.info(f"reconciled {row.type} {row.entity_type} {row.entity_id} of run {row.cycle_run_id}: {note}")
    return settled[pd.Series(closed, index=settled.index, dtype=bool)]


def settle_open_writes(
    store: Ledger, client: MetaAdsClient, account: str, run_id: str, log: Log, taken_over: TakenOver | None, run_alive: RunAlive | None,
) -> pd.DataFrame:
    """Settle the open writes other runs left, from the account read *now*. The caller holds the
    account lock, so no other run is writing; a run that may still be alive (``run_alive``; a
    stale lock's holder is only late) keeps its rows open. The read comes after every write those
    runs sent: a snapshot read before them would call what landed "did not land"."""
    open_writes = store.open_writes(account, run_id)
    open_writes = open_writes[open_writes["type"].isin(VERIFIABLE)]  # the others cannot be told: no read for them
    # A run whose lock was taken over because its process is gone is over, whatever its status says.
    ended = taken_over.run_id if taken_over is not None and taken_over.ended else None
    if run_alive is not None:
        open_writes = open_writes[open_writes["cycle_run_id"].map(lambda r: r == ended or run_alive(r) is not True).astype(bool)]
    if open_writes.empty:
        return open_writes
    return settle(store, open_writes, client.fetch_account(), log)


def reconcile(
    store: Ledger, client: MetaAdsClient, snapshot: AccountSnapshot, settings: Settings, run_id: str, log: Log,
    run_alive: RunAlive | None = None,
) -> pd.DataFrame:
    """STEP 2·0: settle earlier writes whose outcome was left open (unknown, or a run that died
    mid-write) from what the account shows now, under the account's write lock, then take out of
    the queue what the account no longer bears out (a budget that moved since it was proposed).
    Nothing is ever re-sent blindly. While a live run holds the lock its writes are its own: they
    stay open (and count for the cooldown) and the execute step refuses this cycle.

    ``run_alive``: run id → whether it still runs (True/False, None: unknown); by default only the
    lock's holder counts as alive (:mod:`..store.locks`)."""
    account = snapshot.account_id
    try:
        with account_lock(store, account, run_id, settings.for_account(account).cycle_max_runtime, run_alive) as taken_over:
            if taken_over is not None:
                log.warning(str(taken_over))
            settled = settle_open_writes(store, client.for_account(account), account, run_id, log, taken_over, run_alive)
    except AccountLocked as exc:
        log.warning(f"open writes not reconciled now: {exc}")
        settled = store.open_writes(account, run_id).iloc[:0]
    for line in approvals.supersede_stale(store, snapshot):
        log.info(line)
    return settled


def decide(store: Ledger, snapshot: AccountSnapshot, frames: dict[str, pd.DataFrame], settings: Settings, log: Log) -> tuple[pd.DataFrame, list[str]]:
    """STEP 2a: the rules propose at most one action per entity, for the campaigns in this tick's
    scope (returned too). After reconcile, so the cooldown history is settled."""
    settings = settings.for_account(snapshot.account_id)
    for warning in engine.sanity_warnings(frames["roas_metrics"], settings):
        log.warning(warning)
    actions, scope = engine.decide(
        snapshot, frames["roas_metrics"], frames["ab_tests"], frames["spikes"], frames["creative_fatigue"], settings,
        account_history(store, snapshot, settings), store.last_evaluated(snapshot.account_id),
        store.history(snapshot.account_id, snapshot.as_of - timedelta(hours=RESUME_LOOKBACK_HOURS)) if settings.resume_proposals else None,
    )
    log.info(f"{len(actions)} action(s) proposed for {len(scope)} campaign(s) in scope")
    return actions, list(scope)


def apply_policy(snapshot: AccountSnapshot, actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """STEP 2b: the PolicyEngine clamps budget changes and blocks what policy forbids."""
    return PolicyEngine(settings.for_account(snapshot.account_id)).evaluate(actions)


def apply_safety(snapshot: AccountSnapshot, metrics: pd.DataFrame, actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """STEP 2c: the SafetyEngine enforces embargo, minimum data, cooldown, approvals and the spend caps."""
    return SafetyEngine(settings.for_account(snapshot.account_id)).evaluate(actions, engine.account_spend(snapshot, metrics))


def route(snapshot: AccountSnapshot, actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """STEP 2d: execute now (hard stops; auto mode's safety matrix) or queue for a person."""
    return route_actions(actions, settings.for_account(snapshot.account_id))


def add_approved(store: Ledger, snapshot: AccountSnapshot, metrics: pd.DataFrame, actions: pd.DataFrame, settings: Settings, log: Log) -> pd.DataFrame:
    """STEP 2e: actions a person approved since, re-validated against the account as it is now."""
    account = snapshot.account_id
    approved = approvals.queue(store, "approved", account)
    # An approval whose write a run already sent (e.g. one that crashed right after it) is done.
    sent = store.already_sent(account, approved["action_id"])
    approvals.close_approvals(store, {i: ("carried_out", f"already sent by run {run}") for i, run in sent.items()})
    approved = approved[~approved["action_id"].isin(list(sent))].reset_index(drop=True)
    if approved.empty:
        return actions
    settings = settings.for_account(account)
    candidates = approved_candidates(approved, metrics, snapshot.minor_per_unit, snapshot.as_of, account_history(store, snapshot, settings))
    checked = revalidate(candidates, actions, engine.account_spend(snapshot, metrics), settings)
    log.info(f"{len(checked)} approved action(s): {int((checked['verdict'] == 'executed').sum())} still hold")
    return pd.concat([actions, checked], ignore_index=True)


def hold_on_outage(snapshot: AccountSnapshot, actions: pd.DataFrame, settings: Settings, log: Log) -> tuple[pd.DataFrame, TrackingOutage | None]:
    """STEP 2f: on a tracking outage (engine/outage.py) every executable action but the hard stops
    that hold without the dark days and a person's protective approvals waits for a person."""
    held, outage = hold_actions_on_outage(actions, snapshot, settings.for_account(snapshot.account_id))
    if outage is not None:
        was = int(actions["verdict"].eq("executed").sum())
        log.warning(f"{outage.describe()}: {was - int(held['verdict'].eq('executed').sum())} action(s) held for a person")
    return held, outage


def limit(snapshot: AccountSnapshot, actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """STEP 2g: one write per entity, the per-tick limit (approvals included), the kill switch;
    then this cycle's own proposals an approval already covers leave the queue."""
    return supersede_by_approvals(limit_writes(actions, settings.for_account(snapshot.account_id)))


def close_carried_approvals(store: Ledger, executed: pd.DataFrame, run_id: str) -> None:
    """The approved queue rows this cycle dealt with: carried out, superseded or refused; a
    deferred one stays approved for the next cycle."""
    if "approved_in_run" not in executed:
        return
    done = executed[executed["approved_in_run"].notna() & executed["verdict"].ne("deferred")]
    status = {"executed": "carried_out", "superseded": "superseded"}
    approvals.close_approvals(
        store, {a.id: (status.get(a.verdict, "refused"), f"cycle {run_id}: {a.reasons[-1]}") for a in done.itertuples()}
    )


def execute(
    store: Ledger, client: MetaAdsClient, snapshot: AccountSnapshot, actions: pd.DataFrame, scope: Sequence[str],
    settings: Settings, run_id: str, log: Log, run_alive: RunAlive | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """STEP 3: record the cycle in the ledger, then apply the executable actions through the
    client, holding the account's write lock (two cycles never write at once). Returns the actions
    with their outcomes and one log record per action.

    Open writes a run left since reconcile (one that died meanwhile; the parent of a re-execution
    from failure, which sends the same action ids) are settled first, from the account read now:
    what landed is then held back as already sent, what did not is sent by this run, so each write
    lands exactly once."""
    account = snapshot.account_id
    client = client.for_account(account)
    settings = settings.for_account(account)
    with account_lock(store, account, run_id, settings.cycle_max_runtime, run_alive) as taken_over:
        if taken_over is not None:
            log.warning(str(taken_over))
        settle_open_writes(store, client, account, run_id, log, taken_over, run_alive)
        executable = actions.loc[actions["verdict"] == "executed", "id"]
        actions = hold_back_already_sent(actions, store.already_sent(account, executable))
        actions = keep_units_whole(hold_back_changed_since(actions, account_history(store, snapshot, settings), snapshot.as_of))
        actions = with_prior_state(actions, snapshot)
        store.record_cycle(actions, run_id, account, snapshot.as_of, approval_ttl_hours=settings.approval_ttl_hours, currency=snapshot.currency)
        store.record_evaluated(account, scope, snapshot.as_of)
        executed, records = execute_actions(
            actions, client,
            lambda outcome: store.mark_outcome(run_id, outcome.action_id, snapshot.as_of, outcome.error, outcome.status, outcome.result),
            settings.creative_variant_status,
        )
    close_carried_approvals(store, executed, run_id)
    for line in approvals.supersede_written_by(store, account, run_id):
        log.info(line)
    return executed, records


def input_checks(snapshot: AccountSnapshot, settings: Settings) -> list:
    """The blocking checks on the insights (checks.py), as the ``insights`` asset runs them."""
    return [insights_are_fresh(settings, snapshot, snapshot.insights), insight_rows_are_possible(snapshot, snapshot.insights)]


def plan_checks(snapshot: AccountSnapshot, plan: CyclePlan, settings: Settings) -> list:
    """The blocking checks on the plan (checks.py), as the ``cycle_plan`` asset runs them."""
    return [planned_actions_within_guard_rails(settings, plan.actions, snapshot), plan_holds_on_tracking_outage(plan.actions, snapshot)]


def refuse_on_failure(results: list) -> None:
    """Raise PlanRefused naming every failed check (each is blocking with ERROR severity)."""
    failed = [f"{result.check_name}: {result.description}" for result in results if not result.passed]
    if failed:
        raise PlanRefused("blocking check(s) failed, nothing written: " + "; ".join(failed))


def run_cycle(
    store: Ledger, client: MetaAdsClient, settings: Settings, run_id: str, log: Log | None = None, document: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """One whole cycle of ``client``'s account without Dagster: the same steps, in the same order,
    as the ``meta_ads_cycle`` job, and the same blocking checks (a failed one raises PlanRefused
    before anything is written). Returns the cycle's actions and its stats.

    ``document``: the account as the caller already synced and read it (the simulator keeps a
    copy of what each cycle saw); by default the cycle syncs and reads it itself."""
    log = log or logging.getLogger(__name__)
    started = datetime.now(timezone.utc).isoformat()
    if document is None:
        client.sync_insights()
        document = client.fetch_snapshot()
    snapshot = parse_snapshot(document)
    settings = controls.cycle_settings(store, settings, snapshot.account_id)  # as a cycle run's settings resource does
    frames = engine.analyze(snapshot)
    reconcile(store, client, snapshot, settings, run_id, log)
    refuse_on_failure(input_checks(snapshot, settings))
    metrics = frames["roas_metrics"]
    proposed, scope = decide(store, snapshot, frames, settings, log)
    routed = route(snapshot, apply_safety(snapshot, metrics, apply_policy(snapshot, proposed, settings), settings), settings)
    held, outage = hold_on_outage(snapshot, add_approved(store, snapshot, metrics, routed, settings, log), settings, log)
    plan = CyclePlan(limit(snapshot, held, settings), scope, outage)
    refuse_on_failure(plan_checks(snapshot, plan, settings))
    executed, _ = execute(store, client, snapshot, plan.actions, plan.scope, settings, run_id, log)
    return executed, engine.summarize(executed, len(scope), started, datetime.now(timezone.utc).isoformat())
