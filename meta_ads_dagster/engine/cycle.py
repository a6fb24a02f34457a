"""One optimization cycle as plain functions: the Dagster ops and ``meta-ads plan`` both call these.

collect (frames) → propose → policy → safety → route → (approvals join) → hold on an outage → limit writes →
(execute, outside the engine) → summarize
"""

from __future__ import annotations

import pandas as pd

from ..settings import Settings
from .ab_tests import evaluate_ab_tests
from .actions import is_approval, optional_float
from .decisions import campaigns_in_scope, propose_actions
from .fatigue import detect_fatigue
from .history import describe, history_frame
from .metrics import ad_days, entity_table, roas_metrics
from .policy import PolicyEngine
from .reallocate import propose_more
from .outage import hold_on_outage
from .routing import limit_writes, route_actions
from .safety import AccountSpend, SafetyEngine
from .snapshot import AccountSnapshot
from .spikes import detect_spikes

# The action fields a person scans first (the CLI's table, the run's markdown table).
SUMMARY_COLUMNS = ("id", "type", "entity_type", "entity_id", "rule", "amount_pct", "current_budget_usd", "new_budget_usd", "confidence", "verdict")


def analyze(snapshot: AccountSnapshot) -> dict[str, pd.DataFrame]:
    """The collection step's derived frames (each one is a Dagster asset)."""
    entities, days = entity_table(snapshot), ad_days(snapshot)  # the insights' one pass, shared
    return {
        "roas_metrics": roas_metrics(snapshot, entities, days),
        "ab_tests": evaluate_ab_tests(snapshot, entities, days),
        "spikes": detect_spikes(snapshot, entities, days),
        "creative_fatigue": detect_fatigue(snapshot, entities, days),
    }


def decide(
    snapshot: AccountSnapshot,
    metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    fatigue: pd.DataFrame,
    settings: Settings,
    history: pd.DataFrame,
    last_evaluated: pd.Series | None = None,
    pauses: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Propose actions for the campaigns in scope and describe each one's history (cooldown,
    creative embargo, the rolling 24 h change). Returns (actions, campaign ids in scope).

    ``history``: the ledger's and/or the snapshot's ``recent_actions`` (engine/history.py);
    ``last_evaluated``: campaign id → when a tick last evaluated it (the scope's rotation);
    ``pauses``: the ledger's writes over RESUME_LOOKBACK_HOURS, what resumes are proposed from
    (engine/reallocate.py; None: the history's).
    """
    scope = campaigns_in_scope(metrics, settings, snapshot.as_of, last_evaluated)
    actions = propose_actions(snapshot, metrics, ab_tests, spikes, fatigue, settings, scope, history)
    actions = propose_more(snapshot, metrics, settings, scope, actions, history, history if pauses is None else pauses)
    return describe(actions, history, snapshot.as_of), scope


def account_spend(snapshot: AccountSnapshot, metrics: pd.DataFrame) -> AccountSpend:
    holders = metrics[metrics["is_budget_holder"] & metrics["effective_active"]]
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    budgets = holders["daily_budget"].astype(float) / snapshot.minor_per_unit
    return AccountSpend(
        total_active_daily_budget=float(budgets.sum()),
        spend_today=float(campaigns["spend_today"].sum()),
        campaign_budgets=budgets.groupby(holders["campaign_id"]).sum(),
    )


def apply_guard_rails(actions: pd.DataFrame, spend: AccountSpend, settings: Settings) -> pd.DataFrame:
    return SafetyEngine(settings).evaluate(PolicyEngine(settings).evaluate(actions), spend)


def plan_cycle(snapshot: AccountSnapshot, settings: Settings, history: pd.DataFrame | None = None):
    """Everything up to execution: returns (routed actions, campaigns evaluated)."""
    settings = settings.for_account(snapshot.account_id)
    frames = analyze(snapshot)
    history = history_frame([snapshot.recent_actions]) if history is None else history
    actions, scope = decide(snapshot, frames["roas_metrics"], frames["ab_tests"], frames["spikes"], frames["creative_fatigue"], settings, history)
    guarded = apply_guard_rails(actions, account_spend(snapshot, frames["roas_metrics"]), settings)
    held, _ = hold_on_outage(route_actions(guarded, settings), snapshot, settings)
    return limit_writes(held, settings), len(scope)


def sanity_warnings(metrics: pd.DataFrame, settings: Settings) -> list[str]:
    """The seed's sanity check "very low ROAS + high confidence → warning": active entities whose
    7-day ROAS is below half the hard-stop threshold, held with at least the hard stop's
    confidence (the hard stop pauses them; so low a ROAS that firmly also smells of broken
    tracking, worth a person's look)."""
    active = metrics[metrics["effective_active"]]
    low = active[(active["roas_7d"] < settings.hard_stop_roas / 2) & (active["confidence"] >= settings.hard_stop_confidence)]
    return [
        f"sanity check: {row.entity_type} {row.entity_id} has a very low 7-day ROAS {row.roas_7d:.2f} with high confidence "
        f"{row.confidence:.2f} (spend {row.spend_7d:,.2f}): check its conversion tracking"
        for row in low.itertuples(index=False)
    ]


def summarize(actions: pd.DataFrame, campaigns_evaluated: int, started_at: str, completed_at: str) -> dict:
    """The tick counters of the plan output's ``stats`` (docs/snapshot-format.md), the seed's
    /run-once response. The ``actions_*`` counters count this cycle's own proposals; approvals a
    person gave earlier are counted apart (``approvals_executed``, ``approvals_not_executed``).
    ``errors`` names each failed write; ``success`` is true when no write failed."""
    approval = is_approval(actions)
    own = actions[~approval]["verdict"].value_counts()
    failed = actions[actions["verdict"] == "failed"]
    approvals = actions[approval]
    return {
        "success": failed.empty,
        "tick_started_at": started_at,
        "tick_completed_at": completed_at,
        "campaigns_evaluated": int(campaigns_evaluated),
        "actions_generated": int((~approval).sum()),
        "actions_policy_blocked": int(own.get("policy_blocked", 0)),
        "actions_safety_blocked": int(own.get("safety_blocked", 0)),
        "actions_deferred": int(own.get("deferred", 0)),
        "actions_superseded": int(own.get("superseded", 0)),
        "actions_queued": int(own.get("queued", 0)),
        "actions_executed": int(own.get("executed", 0)),
        "actions_failed": int(own.get("failed", 0)),
        "approvals_executed": int(approvals["verdict"].eq("executed").sum()),
        "approvals_not_executed": int((~approvals["verdict"].eq("executed")).sum()),
        "errors": [f"{a.type} {a.entity_type} {a.entity_id}: {a.reasons[-1]}" for a in failed.itertuples(index=False)],
    }


def contract_actions(actions: pd.DataFrame) -> list[dict]:
    """Actions in the shape of SNAPSHOT.md's ``plan`` output (budgets in major units)."""
    return [
        {
            "id": row.id,
            "type": row.type,
            "entity_type": row.entity_type,
            "entity_id": row.entity_id,
            "rule": row.rule,
            "proposed_pct": optional_float(row.proposed_pct, 4),
            "amount_pct": optional_float(row.amount_pct, 4),
            "current_budget_usd": optional_float(row.current_budget_minor / row.minor_per_unit, 2),
            "new_budget_usd": optional_float(row.new_budget_minor / row.minor_per_unit, 2),
            "confidence": optional_float(row.confidence, 4),
            "verdict": row.verdict,
            "reasons": list(row.reasons),
        }
        for row in actions.itertuples(index=False)
    ]


def plan_document(snapshot: AccountSnapshot, settings: Settings) -> dict:
    """``meta-ads plan``: a pure dry run of one cycle (cooldowns from ``recent_actions`` only).
    Its tick is the snapshot's moment: started and completed at ``as_of`` (the same document
    always gives the same output)."""
    actions, evaluated = plan_cycle(snapshot, settings)
    as_of = snapshot.as_of.isoformat()
    return {
        "as_of": as_of,
        "mode": settings.meta_auto_mode,
        "actions": contract_actions(actions),
        "stats": summarize(actions, evaluated, as_of, as_of),
    }
