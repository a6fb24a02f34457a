"""Routing: what happens to an action that passed policy and safety.

- Hard-stop pauses execute immediately in both modes (they only cut spend; no approval needed).
- Suggest mode: everything else is queued for a human.
- Auto mode executes only what the seed's safety matrix allows: pauses (an A/B decision is one
  unit that only pauses losers), budget changes ≤ MAX_AUTO_CHANGE_PCT with confidence ≥ 0.75, and
  creative variants only when REQUIRE_HUMAN_APPROVAL_CREATIVES is off. Resume and reallocate are
  always queued (a reallocation's legs are budget changes with rule ``reallocate``: never auto).
  Everything else that passed is queued. A reallocation is all or none at every step
  (``actions.keep_units_whole``).
- Always a person, even in auto mode: a budget change above APPROVAL_MIN_BUDGET_CHANGE_USD ($500).

Then, once a person's approvals have joined the cycle (:func:`limit_writes`):

- at most one write per entity per cycle: an entity written by two executable actions keeps the
  first (hard stops, a person's approved pauses first among them, then protective actions, then
  approvals, newest first) and the others are ``superseded``; an A/B decision writes every arm, so
  one ad is never paused twice;
- mass pause: more pauses of the cycle's own in one cycle than MASS_PAUSE_LIMIT (hard stops and
  A/B losers alike) smells of bad data, but the worst day is the day the brake must work. So up to
  MASS_PAUSE_LIMIT pauses execute, hard stops first and those losing the most money per day first
  (7-day spend per day × (1 − ROAS)); the rest are queued for a person with that reason. Pauses a
  person approved are theirs, not the cycle's: they never count against the limit;
- at most MAX_ACTIONS_PER_TICK executed actions besides hard stops, approvals included; protective
  actions (pauses, cuts) are served first, then approvals, then by 7-day spend. The rest are
  ``deferred``: proposed again next cycle (an approval stays approved);
- the kill switch (META_AUTO_ENABLED=false, or an operator's stored pause: ``Settings.stop_reason``)
  defers every write: the cycle evaluates and records, and writes nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import BUDGET_TYPES, PROTECTIVE_TYPES, give_verdict, is_approval, keep_units_whole, written_entities
from .policy import EPS
from .safety import AUTO_MIN_CONFIDENCE, SafetyEngine

PAUSING_TYPES = ("pause", "publish_winner")


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
            kind.isin(PAUSING_TYPES).to_numpy()
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

    # The seed's safety matrix: a reallocation (its legs are budget changes) never executes by itself.
    reallocating = actions["rule"].eq("reallocate").to_numpy()
    auto_ok = auto_ok & ~reallocating
    why_queued = np.where(reallocating, "a reallocation always needs human approval (safety matrix); queued", why_queued)
    why_queued = why_queued.astype(object)  # filled in below with longer messages
    execute = _always_ask(actions, proposed & (hard_stop | auto_ok), why_queued, settings)
    actions.loc[execute, "verdict"] = "executed"
    give_verdict(actions, proposed & ~execute, "queued", why_queued)
    return actions


def money_lost_per_day(actions: pd.DataFrame) -> np.ndarray:
    """7-day spend per day × (1 − ROAS): what an entity loses a day (negative: it earns)."""
    spend = actions["spend_7d"].astype(float).fillna(0.0).to_numpy() / 7
    return spend * (1 - actions["roas_7d"].astype(float).fillna(0.0).to_numpy())


def _pauses_of(actions: pd.DataFrame) -> np.ndarray:
    """How many ads, ad sets or campaigns each action pauses (an A/B decision: its losers)."""
    losers = actions["loser_ad_ids"].map(lambda ads: len(ads) if isinstance(ads, (list, tuple)) else 0).to_numpy()
    return np.where(actions["type"].eq("publish_winner").to_numpy(), losers, actions["type"].eq("pause").to_numpy().astype(int))


def _always_ask(actions: pd.DataFrame, execute: np.ndarray, why_queued: np.ndarray, settings: Settings) -> np.ndarray:
    """What needs a person even in auto mode: a budget change larger than
    APPROVAL_MIN_BUDGET_CHANGE_USD. Fills in ``why_queued`` for them."""
    change = (actions["new_budget_minor"].astype(float) - actions["current_budget_minor"].astype(float)).abs()
    change = (change / actions["minor_per_unit"].astype(float)).fillna(0.0).to_numpy()
    big = execute & (change > settings.approval_min_budget_change_usd + EPS)
    why_queued[big] = [
        f"budget change of {c:,.2f} exceeds APPROVAL_MIN_BUDGET_CHANGE_USD {settings.approval_min_budget_change_usd:g}: needs approval"
        for c in change[big]
    ]
    return execute & ~big


def _mass_paused(actions: pd.DataFrame, executed: np.ndarray, settings: Settings) -> np.ndarray:
    """The cycle's own pauses (among ``executed``) past MASS_PAUSE_LIMIT (see the module docstring)."""
    pausing = executed & actions["type"].isin(PAUSING_TYPES).to_numpy() & ~is_approval(actions)
    pauses = _pauses_of(actions)
    mass = np.zeros(len(actions), dtype=bool)
    if int(pauses[pausing].sum()) <= settings.mass_pause_limit:
        return mass
    # Hard stops first, most money lost per day first; a unit that does not fit in what is left
    # of the limit waits for a person, a smaller one after it may still fit.
    order = pd.DataFrame({"hard_stop": actions["rule"].eq("hard_stop").to_numpy(), "lost": money_lost_per_day(actions)})
    order = order[pausing].sort_values(["hard_stop", "lost"], ascending=[False, False], kind="stable").index
    left = settings.mass_pause_limit
    for position in order:
        if pauses[position] <= left:
            left -= pauses[position]
        else:
            mass[position] = True
    return mass


def _claims(actions: pd.DataFrame, order: pd.Index, executed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One write per entity: walk the executed actions in priority order, each claiming the
    entities it writes; one that finds an entity already claimed is superseded (mask, reasons)."""
    written = written_entities(actions)
    by_position: dict[int, list[tuple[str, str]]] = {}
    for position, entity in zip(written["position"].to_numpy(), zip(written["entity_type"].to_numpy(), written["entity_id"].to_numpy())):
        by_position.setdefault(position, []).append(entity)
    ids = actions["id"].to_numpy()
    claimed: dict[tuple[str, str], str] = {}
    superseded = np.zeros(len(actions), dtype=bool)
    why = np.full(len(actions), "", dtype=object)
    for position in (p for p in order if executed[p]):
        clash = [entity for entity in by_position[position] if entity in claimed]
        if clash:
            superseded[position] = True
            why[position] = f"{clash[0][0]} {clash[0][1]} is already written this cycle by action {claimed[clash[0]]}: superseded"
        else:
            claimed.update({entity: ids[position] for entity in by_position[position]})
    return superseded, why


def _write_priority(actions: pd.DataFrame) -> pd.Index:
    """Executed actions in the order they are served: hard stops, protective actions, approvals
    (newest approval first), then by 7-day spend."""
    executed = actions[actions["verdict"].eq("executed")]
    approved = is_approval(actions)[actions["verdict"].eq("executed").to_numpy()]
    decided = pd.to_datetime(executed["decided_at"], utc=True) if "decided_at" in executed else pd.Series(pd.NaT, index=executed.index, dtype="datetime64[ns, UTC]")
    ranked = pd.DataFrame(
        {
            "not_hard_stop": executed["rule"].ne("hard_stop"),
            "raises_spend": ~executed["type"].isin(PROTECTIVE_TYPES),
            "not_approved": ~approved,
            "decided": (decided - pd.Timestamp(0, tz="UTC")).dt.total_seconds().fillna(0.0),
            "spend": executed["spend_7d"].astype(float).fillna(0.0),
            "entity_id": executed["entity_id"],
        },
        index=executed.index,
    )
    return ranked.sort_values(
        ["not_hard_stop", "raises_spend", "not_approved", "decided", "spend", "entity_id"],
        ascending=[True, True, True, False, False, True], kind="stable",
    ).index


def limit_writes(actions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The last word before execution (see the module docstring): one write per entity, the mass
    pause, the kill switch, the per-tick limit."""
    actions = actions.reset_index(drop=True)
    order = _write_priority(actions)
    executable = actions["verdict"].eq("executed").to_numpy()

    # The claims and the mass pause settle together: a person's approved pause claims its entity
    # first, so it never uses the cycle's limit; a pause the limit sends to a person claims nothing,
    # so what it had superseded (an A/B decision pausing the same ad) is written after all.
    mass = np.zeros(len(actions), dtype=bool)
    while True:
        superseded, why = _claims(actions, order, executable & ~mass)
        more = _mass_paused(actions, executable & ~mass & ~superseded, settings)
        if not more.any():
            break
        mass |= more
    found = int(_pauses_of(actions)[executable & ~superseded & ~is_approval(actions) & actions["type"].isin(PAUSING_TYPES).to_numpy()].sum())
    give_verdict(actions, superseded, "superseded", why)
    give_verdict(actions, mass, "queued", f"mass pause: {found} pauses found in one cycle exceed MASS_PAUSE_LIMIT "
                 f"{settings.mass_pause_limit}; those losing the most money per day are paused now, this one needs approval")

    if settings.stop_reason:
        give_verdict(actions, actions["verdict"].eq("executed").to_numpy(), "deferred",
                     f"{settings.stop_reason}: the autonomous system is stopped, nothing is written")
        return actions

    executed = actions["verdict"].eq("executed").to_numpy()
    live = [position for position in order if executed[position] and actions.at[position, "rule"] != "hard_stop"]
    give_verdict(actions, actions.index.isin(live[settings.max_actions_per_tick:]), "deferred",
                 f"per-tick limit of {settings.max_actions_per_tick} executed actions reached; deferred to the next cycle")
    own_stops = actions["verdict"].eq("executed").to_numpy() & actions["rule"].eq("hard_stop").to_numpy() & ~is_approval(actions)
    give_verdict(actions, own_stops, "executed", "hard stop executes immediately in both modes")
    return keep_units_whole(actions)
