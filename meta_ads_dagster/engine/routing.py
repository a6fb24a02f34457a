"""Routing: what happens to an action that passed policy and safety.

- Hard-stop pauses execute immediately in both modes (they only cut spend; no approval needed).
- Suggest mode: everything else is queued for a human.
- Auto mode executes only what the seed's safety matrix allows: pauses (an A/B decision is one
  unit that only pauses losers), budget changes ≤ MAX_AUTO_CHANGE_PCT with confidence ≥ 0.75, and
  creative variants only when REQUIRE_HUMAN_APPROVAL_CREATIVES is off. Resume and reallocate are
  always queued. Everything else that passed is queued.
- Always a person, even in auto mode: a budget change above APPROVAL_MIN_BUDGET_CHANGE_USD ($500)
  and a mass pause (more than MASS_PAUSE_LIMIT pauses in one cycle, hard stops included).
- Per tick at most MAX_ACTIONS_PER_TICK live actions besides hard stops; protective actions
  (pauses, cuts) are served first, then by 7-day spend. The rest are deferred (safety_blocked) and
  proposed again next cycle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import BUDGET_TYPES, PROTECTIVE_TYPES, add_reason, note
from .policy import EPS
from .safety import AUTO_MIN_CONFIDENCE, SafetyEngine


def route_actions(actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    actions = actions.copy()
    proposed = actions["verdict"].eq("proposed").to_numpy()
    kind = actions["type"]
    hard_stop = actions["rule"].eq("hard_stop").to_numpy()

    if settings.is_auto:
        confident, low_reason = SafetyEngine(settings).validate_roas_confidence(actions["confidence"].astype(float), AUTO_MIN_CONFIDENCE)
        small = np.nan_to_num(actions["amount_pct"].astype(float).to_numpy(), nan=np.inf) <= settings.max_auto_change_pct + EPS
        budget = kind.isin(BUDGET_TYPES).to_numpy()
        auto_ok = (
            kind.isin(["pause", "publish_winner"]).to_numpy()
            | (budget & small & confident)
            | (kind.eq("create_variant").to_numpy() & (not settings.require_human_approval_creatives))
        )
        why_queued = np.where(
            kind.eq("create_variant"),
            "creative variants need human approval (REQUIRE_HUMAN_APPROVAL_CREATIVES)",
            "auto mode never executes " + kind.to_numpy(dtype=object) + "; queued for approval",
        )
        why_queued = np.where(budget & ~small, f"auto mode: change above {settings.max_auto_change_pct:.0%}; queued for approval", why_queued)
        why_queued = np.where(budget & ~confident, "auto mode: " + low_reason + "; queued for approval", why_queued)
    else:
        auto_ok = np.zeros(len(actions), dtype=bool)
        why_queued = np.full(len(actions), "suggest mode: queued for human approval", dtype=object)

    why_queued = why_queued.astype(object)  # filled in below with longer messages
    execute = _always_ask(actions, proposed & (hard_stop | auto_ok), why_queued, settings)
    note(actions, hard_stop & execute, "hard stop executes immediately in both modes")
    actions.loc[execute, "verdict"] = "executed"
    queue = proposed & ~execute
    note(actions, queue, why_queued)
    actions.loc[queue, "verdict"] = "queued"
    _limit_per_tick(actions, settings.max_actions_per_tick)
    return actions


def _always_ask(actions: pd.DataFrame, execute: np.ndarray, why_queued: np.ndarray, settings: Settings) -> np.ndarray:
    """What needs a person even in auto mode (the seed's security rules): a budget change larger
    than APPROVAL_MIN_BUDGET_CHANGE_USD, and a mass pause (more than MASS_PAUSE_LIMIT pauses in one
    cycle, hard stops and A/B losers included: so many at once smells of bad data). Fills in
    ``why_queued`` for them."""
    change = (actions["new_budget_minor"].astype(float) - actions["current_budget_minor"].astype(float)).abs()
    change = (change / actions["minor_per_unit"].astype(float)).fillna(0.0).to_numpy()
    big = execute & (change > settings.approval_min_budget_change_usd + EPS)
    why_queued[big] = [
        f"budget change of {c:,.2f} exceeds APPROVAL_MIN_BUDGET_CHANGE_USD {settings.approval_min_budget_change_usd:g}: needs approval"
        for c in change[big]
    ]
    pausing = execute & actions["type"].isin(["pause", "publish_winner"]).to_numpy()
    losers = actions.loc[pausing, "loser_ad_ids"].map(lambda ads: len(ads) if isinstance(ads, (list, tuple)) else 1)
    paused = int(losers.sum())
    mass = pausing if paused > settings.mass_pause_limit else np.zeros_like(execute)
    why_queued[mass] = f"mass pause: {paused} pauses in one cycle exceed MASS_PAUSE_LIMIT {settings.mass_pause_limit}: needs approval"
    return execute & ~big & ~mass


def _limit_per_tick(actions: pd.DataFrame, limit: int) -> None:
    live = actions[actions["verdict"].eq("executed") & actions["rule"].ne("hard_stop")]
    # Protective actions (pauses, cuts) first, then by 7-day spend.
    ranked = live.assign(raises_spend=~live["type"].isin(PROTECTIVE_TYPES)).sort_values(
        ["raises_spend", "spend_7d", "entity_id"], ascending=[True, False, True]
    )
    deferred = actions.index.isin(ranked.index[limit:])
    add_reason(actions, deferred, f"per-tick limit of {limit} live actions reached; proposed again next cycle")
    actions.loc[deferred, "verdict"] = "safety_blocked"
