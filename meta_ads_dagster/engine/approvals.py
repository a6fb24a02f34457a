"""Approved actions are re-validated against the account as it is now, then executed.

An approval is a person saying "yes" to what a cycle proposed hours ago; it never bypasses the
guard rails. Each approved action is rebuilt from the *current* metrics (today's budget, today's
confidence, the cooldown history) and passes the PolicyEngine (with the human limit,
MAX_DAILY_CHANGE_PCT) and the SafetyEngine (spend cap, cooldown, embargo, minimum data) again.
It is also refused when the entity is no longer active or a newer hard stop holds on it or on
its campaign or ad set. What survives is executed with the reviewer as the actor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import ACTION_COLUMNS, add_reason, set_verdict
from .policy import PolicyEngine
from .safety import AccountSpend, SafetyEngine, hours_since_last_action

APPROVAL_COLUMNS = ["action_id", "cycle_run_id", "type", "entity_type", "entity_id", "rule", "amount_pct", "loser_ad_ids", "decided_by"]


def approved_candidates(approved: pd.DataFrame, metrics: pd.DataFrame, minor_per_unit: int, as_of: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
    """Approved ledger rows as action rows built from the current metrics (verdict ``proposed``)."""
    current = approved[APPROVAL_COLUMNS].merge(metrics, on=["entity_type", "entity_id"], how="left")
    is_budget = current["type"].isin(["scale_up", "scale_down"])
    actions = pd.DataFrame(
        {
            "id": current["action_id"],
            "type": current["type"],
            "entity_type": current["entity_type"],
            "entity_id": current["entity_id"],
            "campaign_id": current["campaign_id"],
            "adset_id": current["adset_id"],
            "rule": current["rule"],
            "proposed_pct": current["amount_pct"].where(is_budget),
            "amount_pct": current["amount_pct"].where(is_budget),
            "current_budget_minor": current["daily_budget"].astype(float).where(is_budget),
            "new_budget_minor": np.nan,
            "confidence": current["confidence"],
            "roas_7d": current["roas_7d"],
            "spend_7d": current["spend_7d"],
            "impressions_7d": current["impressions_7d"],
            "age_hours": (as_of - current["created_time"]).dt.total_seconds() / 3600,
            "creative_id": current["creative_id"],
            "creative_approved": current["creative_approved"],
            "countries": current["countries"],
            "spain_share": current["spain_share"],
            "top_country_share": current["top_country_share"],
            "loser_ad_ids": current["loser_ad_ids"],
            "hours_since_last_action": np.nan,
            "minor_per_unit": minor_per_unit,
            "verdict": "proposed",
            "reasons": [[f"approved by {who} (proposed in run {run})"] for who, run in zip(current["decided_by"], current["cycle_run_id"])],
        },
        columns=ACTION_COLUMNS,
    )
    actions["hours_since_last_action"] = hours_since_last_action(actions, history, as_of)
    actions["active"] = current["effective_active"].fillna(False).astype(bool).to_numpy()
    return actions


def revalidate(candidates: pd.DataFrame, cycle_actions: pd.DataFrame, spend: AccountSpend, settings: Settings) -> pd.DataFrame:
    """Guard rails again, then ``executed`` for what still holds (see the module docstring)."""
    actions = candidates.copy()
    set_verdict(actions, ~actions.pop("active").to_numpy(), "safety_blocked", "no longer active: approval not carried out")
    stops = cycle_actions[cycle_actions["rule"].eq("hard_stop") & cycle_actions["verdict"].isin(["executed", "queued"])]
    stopped = (
        actions["entity_id"].isin(stops["entity_id"])
        | actions["campaign_id"].isin(stops.loc[stops["entity_type"] == "campaign", "entity_id"])
        | actions["adset_id"].isin(stops.loc[stops["entity_type"] == "adset", "entity_id"])
    )
    set_verdict(actions, stopped.to_numpy(), "safety_blocked", "a newer hard stop holds on this entity: approval not carried out")
    touched = cycle_actions.loc[cycle_actions["verdict"] == "executed", ["entity_type", "entity_id"]]
    busy = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]]).isin(pd.MultiIndex.from_frame(touched)) if len(touched) else np.zeros(len(actions), bool)
    set_verdict(actions, busy, "safety_blocked", "this cycle already changes this entity: approval not carried out")

    # The cycle's own raises come first: an approval gets only the room they left under the cap.
    raised = cycle_actions[cycle_actions["type"].eq("scale_up") & cycle_actions["verdict"].eq("executed")]
    raised_by = float(((raised["new_budget_minor"] - raised["current_budget_minor"]) / raised["minor_per_unit"]).sum())
    spend_now = AccountSpend(spend.total_active_daily_budget + raised_by, spend.spend_today + raised_by)

    human = settings.with_mode("suggest")  # a person approved it: the human limit applies
    actions = SafetyEngine(human).evaluate(PolicyEngine(human).evaluate(actions), spend_now)
    go = actions["verdict"].eq("proposed").to_numpy()
    add_reason(actions, go, "re-validated against the current account: executing")
    actions.loc[go, "verdict"] = "executed"
    return actions


def supersede_by_approvals(actions: pd.DataFrame, approved: pd.DataFrame) -> pd.DataFrame:
    """This cycle's own newly queued proposal for an entity whose approved twin (same entity and
    type) executes in this cycle is moot: it is not queued again."""
    going = approved.loc[approved["verdict"] == "executed", ["entity_type", "entity_id", "type"]]
    actions = actions.copy()
    if going.empty or actions.empty:
        return actions
    keys = ["entity_type", "entity_id", "type"]
    moot = pd.MultiIndex.from_frame(actions[keys]).isin(pd.MultiIndex.from_frame(going)) & actions["verdict"].eq("queued").to_numpy()
    add_reason(actions, moot, "an approved action for this entity executes in this cycle: not queued again")
    actions.loc[moot, "verdict"] = "safety_blocked"
    return actions
