"""Approved actions are re-validated against the account as it is now, then executed.

An approval is a person saying "yes" to what a cycle proposed hours ago; it never bypasses the
guard rails. Each approved action is rebuilt from the *current* metrics (today's budget, today's
confidence, the cooldown history) and passes the PolicyEngine (with the human limit,
MAX_DAILY_CHANGE_PCT) and the SafetyEngine (spend caps, cooldown, embargo, minimum data) again.

It is not carried out when the entity is no longer active, when its budget is no longer the one
the person saw (``superseded``: a person approved numbers that are no longer true), or, for
anything but a pause or a cut, when a newer hard stop holds on it or on its campaign or ad set. An
approved pause or cut agrees with a hard stop on the same entity: it is carried out (this cycle's
own queued hard stop for that entity is superseded by it). An approved resume is carried out
only while the entity is still paused and the hard stop does not hold on it again. An approved
reallocation is re-validated leg by leg and stays all or none (``actions.keep_units_whole``): its
legs are approved together (store/approvals.py). What survives is executed with the reviewer as the
actor; one write per entity and the per-tick limit then apply to approvals like to any action
(``routing.limit_writes``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import ACTION_COLUMNS, add_reason, give_verdict, is_approval, keep_units_whole, set_verdict, written_entities
from .history import describe, over_written_entities
from .policy import PolicyEngine
from .reallocate import creative_judged
from .safety import AccountSpend, SafetyEngine

APPROVAL_COLUMNS = [
    "action_id", "cycle_run_id", "type", "entity_type", "entity_id", "rule", "amount_pct", "current_budget_minor",
    "loser_ad_ids", "decided_by", "decided_at", "unit_id",
]


def approved_candidates(approved: pd.DataFrame, metrics: pd.DataFrame, minor_per_unit: int, as_of: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
    """Approved ledger rows as action rows built from the current metrics (verdict ``proposed``).

    Extra columns: ``active`` (the entity is live now), ``approved_budget_minor`` (the budget the
    person saw), ``actor``, ``approved_in_run`` and ``decided_at``.
    """
    current = approved[APPROVAL_COLUMNS].rename(columns={"current_budget_minor": "approved_budget_minor"}).merge(
        metrics, on=["entity_type", "entity_id"], how="left"
    )
    is_budget = current["type"].isin(["scale_up", "scale_down"])
    resume = current["type"].eq("resume")
    actions = pd.DataFrame(
        {
            "id": current["action_id"],
            "type": current["type"],
            "entity_type": current["entity_type"],
            "entity_id": current["entity_id"],
            "entity_name": current["name"],
            "campaign_id": current["campaign_id"],
            "adset_id": current["adset_id"],
            "rule": current["rule"],
            "proposed_pct": current["amount_pct"].where(is_budget),
            "amount_pct": current["amount_pct"].where(is_budget),
            "current_budget_minor": current["daily_budget"].astype(float).where(is_budget | (resume & current["is_budget_holder"].eq(True))),
            "new_budget_minor": np.nan,
            "confidence": current["confidence"],
            "roas_7d": current["roas_7d"],
            "spend_7d": current["spend_7d"],
            "impressions_7d": current["impressions_7d"],
            "age_hours": np.nan,
            "creative_id": current["creative_id"],
            "creative_approved": current["creative_approved"].where(~resume, creative_judged(current)),
            "countries": current["countries"],
            "spain_share": current["spain_share"],
            "top_country_share": current["top_country_share"],
            "loser_ad_ids": current["loser_ad_ids"],
            "learning_adsets": current["learning_adsets"],
            "minor_per_unit": minor_per_unit,
            "unit_id": current["unit_id"],
            "verdict": "proposed",
            "reasons": [[f"approved by {who} (proposed in run {run})"] for who, run in zip(current["decided_by"], current["cycle_run_id"])],
        },
        columns=ACTION_COLUMNS,
    )
    ages = metrics.set_index(["entity_type", "entity_id"])["created_time"]
    actions["age_hours"] = over_written_entities(actions, (as_of - ages).dt.total_seconds() / 3600)
    actions = describe(actions, history, as_of)
    # A resume still applies while the entity is paused; anything else while it is live.
    actions["active"] = np.where(resume, current["status"].eq("PAUSED"), current["effective_active"].fillna(False).astype(bool)).astype(bool)
    actions["approved_budget_minor"] = current["approved_budget_minor"].astype(float).to_numpy()
    actions["actor"] = current["decided_by"].to_numpy()
    actions["approved_in_run"] = current["cycle_run_id"].to_numpy()
    actions["decided_at"] = pd.to_datetime(current["decided_at"], utc=True).to_numpy()
    return actions


def _held_by_hard_stop(actions: pd.DataFrame, cycle_actions: pd.DataFrame) -> np.ndarray:
    """Rows whose entity, campaign or ad set this cycle hard-stops (executed or queued)."""
    stops = cycle_actions[cycle_actions["rule"].eq("hard_stop") & cycle_actions["verdict"].isin(["executed", "queued"])]
    return (
        actions["entity_id"].isin(stops["entity_id"])
        | actions["campaign_id"].isin(stops.loc[stops["entity_type"] == "campaign", "entity_id"])
        | actions["adset_id"].isin(stops.loc[stops["entity_type"] == "adset", "entity_id"])
    ).to_numpy()


def revalidate(candidates: pd.DataFrame, cycle_actions: pd.DataFrame, spend: AccountSpend, settings: Settings) -> pd.DataFrame:
    """Guard rails again, then ``executed`` for what still holds (see the module docstring)."""
    actions = candidates.copy()
    resume = actions["type"].eq("resume").to_numpy()
    applies = actions.pop("active").to_numpy()
    set_verdict(actions, ~applies & ~resume, "safety_blocked", "no longer active: approval not carried out")
    set_verdict(actions, ~applies & resume, "safety_blocked", "no longer paused: approval not carried out")
    halted, _ = PolicyEngine(settings).must_halt(actions["roas_7d"].astype(float), actions["confidence"].astype(float), actions["spend_7d"].astype(float))
    set_verdict(actions, resume & halted, "safety_blocked", "the hard stop holds on it again: resume not carried out")

    is_budget = actions["type"].isin(["scale_up", "scale_down"]).to_numpy()
    seen, now = actions.pop("approved_budget_minor").to_numpy(dtype=float), actions["current_budget_minor"].to_numpy(dtype=float)
    changed = is_budget & ~np.isnan(seen) & (seen != now)
    per_unit = actions["minor_per_unit"].astype(float).to_numpy()
    add_reason(actions, changed & actions["verdict"].eq("proposed").to_numpy(), [
        f"the budget changed since it was proposed ({s / u:,.2f} → {n / u:,.2f}): the approved numbers are no longer true, not carried out"
        for s, n, u in zip(seen, now, per_unit)
    ])
    actions.loc[changed & actions["verdict"].eq("proposed").to_numpy(), "verdict"] = "superseded"

    # A pause or a cut agrees with a hard stop (it only lowers spend): never a reason to refuse it.
    lowers_spend = actions["type"].isin(["pause", "scale_down"]).to_numpy()
    set_verdict(actions, _held_by_hard_stop(actions, cycle_actions) & ~lowers_spend, "safety_blocked",
                "a newer hard stop holds on this entity: approval not carried out")

    # The cycle's own raises come first: an approval gets only the room they left under the caps.
    human = settings.with_mode("suggest")  # a person approved it: the human limit applies
    actions = SafetyEngine(human).evaluate(PolicyEngine(human).evaluate(actions), spend.after_raises(cycle_actions))
    give_verdict(actions, actions["verdict"].eq("proposed").to_numpy(), "executed", "re-validated against the current account: executing")
    return keep_units_whole(actions)


def supersede_by_approvals(actions: pd.DataFrame) -> pd.DataFrame:
    """After the writes are limited: this cycle's own newly queued proposal for an entity a
    person's approval writes now, or will write once the per-tick limit lets it (deferred), is
    moot: it is superseded, not queued again beside the approval. A queued hard stop yields only to
    an approval written now: one that waits may still be refused, and the hard stop must stay
    before a person until the entity is paused."""
    approved = actions[is_approval(actions)]
    queued = actions["verdict"].eq("queued").to_numpy()
    keys = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]])

    def touched_by(verdicts: tuple[str, ...]) -> np.ndarray:
        going = approved[approved["verdict"].isin(verdicts)].reset_index(drop=True)
        if going.empty:
            return np.zeros(len(actions), dtype=bool)
        return keys.isin(pd.MultiIndex.from_frame(written_entities(going)[["entity_type", "entity_id"]]))

    hard_stop = actions["rule"].eq("hard_stop").to_numpy()
    moot = queued & (touched_by(("executed",)) | (touched_by(("deferred",)) & ~hard_stop))
    actions = actions.copy()
    give_verdict(actions, moot, "superseded", "an approved action for this entity is carried out now or in a coming cycle: superseded")
    return actions
