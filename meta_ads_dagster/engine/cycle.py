"""One optimization cycle as plain functions: the Dagster ops and ``meta-ads plan`` both call these.

collect (frames) → propose → policy → safety → route → (execute, outside the engine) → summarize
"""

from __future__ import annotations

import pandas as pd

from ..settings import Settings
from .ab_tests import evaluate_ab_tests
from .actions import optional_float
from .decisions import campaigns_in_scope, propose_actions
from .fatigue import detect_fatigue
from .metrics import entity_table, roas_metrics
from .policy import PolicyEngine
from .routing import route_actions
from .safety import AccountSpend, SafetyEngine, hours_since_last_action
from .snapshot import AccountSnapshot
from .spikes import detect_spikes

# The action fields a person scans first (the CLI's table, the run's markdown table).
SUMMARY_COLUMNS = ("id", "type", "entity_type", "entity_id", "rule", "amount_pct", "current_budget_usd", "new_budget_usd", "confidence", "verdict")


def analyze(snapshot: AccountSnapshot) -> dict[str, pd.DataFrame]:
    """The collection step's derived frames (each one is a Dagster asset)."""
    entities = entity_table(snapshot)
    return {
        "roas_metrics": roas_metrics(snapshot, entities),
        "ab_tests": evaluate_ab_tests(snapshot, entities),
        "spikes": detect_spikes(snapshot, entities),
        "creative_fatigue": detect_fatigue(snapshot, entities),
    }


def decide(
    snapshot: AccountSnapshot,
    metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    fatigue: pd.DataFrame,
    settings: Settings,
    last_actions: pd.DataFrame,
) -> pd.DataFrame:
    """Propose actions and note how long ago each entity was last changed (for the cooldown).

    ``last_actions``: rows of (entity_type, entity_id, executed_at) from the ledger and/or the
    snapshot's ``recent_actions``.
    """
    actions = propose_actions(snapshot, metrics, ab_tests, spikes, fatigue, settings)
    actions["hours_since_last_action"] = hours_since_last_action(actions, last_actions, snapshot.as_of)
    return actions


def account_spend(snapshot: AccountSnapshot, metrics: pd.DataFrame) -> AccountSpend:
    holders = metrics[metrics["is_budget_holder"] & metrics["effective_active"]]
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    return AccountSpend(
        total_active_daily_budget=float(holders["daily_budget"].astype(float).sum()) / snapshot.minor_per_unit,
        spend_today=float(campaigns["spend_today"].sum()),
    )


def apply_guard_rails(actions: pd.DataFrame, spend: AccountSpend, settings: Settings) -> pd.DataFrame:
    return SafetyEngine(settings).evaluate(PolicyEngine(settings).evaluate(actions), spend)


def plan_cycle(snapshot: AccountSnapshot, settings: Settings, last_actions: pd.DataFrame | None = None):
    """Everything up to execution: returns (routed actions, campaigns evaluated)."""
    settings = settings.for_account(snapshot.account_id)
    frames = analyze(snapshot)
    history = snapshot.recent_actions if last_actions is None else last_actions
    actions = decide(snapshot, frames["roas_metrics"], frames["ab_tests"], frames["spikes"], frames["creative_fatigue"], settings, history)
    guarded = apply_guard_rails(actions, account_spend(snapshot, frames["roas_metrics"]), settings)
    evaluated = len(campaigns_in_scope(frames["roas_metrics"], settings.max_campaigns_per_tick))
    return route_actions(guarded, settings), evaluated


def summarize(actions: pd.DataFrame, campaigns_evaluated: int) -> dict:
    """The tick counters of SNAPSHOT.md's ``stats``; ``errors`` names each failed action's error."""
    counts = actions["verdict"].value_counts()
    failed = actions[actions["verdict"] == "failed"]
    return {
        "campaigns_evaluated": int(campaigns_evaluated),
        "actions_generated": int(len(actions)),
        "actions_policy_blocked": int(counts.get("policy_blocked", 0)),
        "actions_safety_blocked": int(counts.get("safety_blocked", 0)),
        "actions_queued": int(counts.get("queued", 0)),
        "actions_executed": int(counts.get("executed", 0)),
        "actions_failed": int(counts.get("failed", 0)),
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
    """``meta-ads plan``: a pure dry run of one cycle (cooldowns from ``recent_actions`` only)."""
    actions, evaluated = plan_cycle(snapshot, settings)
    return {
        "as_of": snapshot.as_of.isoformat(),
        "mode": settings.meta_auto_mode,
        "actions": contract_actions(actions),
        "stats": summarize(actions, evaluated),
    }
