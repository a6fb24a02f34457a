"""What earlier writes say about each action's entities: the inputs of the 24 h cooldown, the
creative embargo, the rolling 24 h change limit and Meta's budget edits per hour.

A history row is one write that was executed (or may have been: outcome unknown), from the ledger
or a snapshot's ``recent_actions``: (entity_type, entity_id, type, rule, amount_pct, executed_at).
``amount_pct`` is a budget write's relative change, NaN where it is not known (``recent_actions``
carry no amounts); ``rule`` is ``rollback`` for a rollback's restores. An A/B decision's row also
names its losers (``loser_ad_ids``): it wrote them too.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .actions import BUDGET_TYPES, written_entities

HISTORY_COLUMNS = ["entity_type", "entity_id", "type", "rule", "amount_pct", "executed_at", "loser_ad_ids"]
COOLDOWN_HOURS = 24  # the seed: one action per entity per 24 h
CHANGE_WINDOW_HOURS = 24  # the seed's "per day" of the budget change limits, as a rolling window
EDIT_RATE_WINDOW_HOURS = 1  # Meta's budget edit limit counts the edits of the last hour


def history_frame(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of histories (the ledger's, a snapshot's ``recent_actions``), missing columns empty."""
    usable = [f.reindex(columns=HISTORY_COLUMNS) for f in frames if not f.empty]
    if not usable:
        return pd.DataFrame(columns=HISTORY_COLUMNS).astype({"executed_at": "datetime64[ns, UTC]", "amount_pct": float})
    merged = pd.concat(usable, ignore_index=True)
    merged["executed_at"] = pd.to_datetime(merged["executed_at"], utc=True)
    merged["amount_pct"] = pd.to_numeric(merged["amount_pct"], errors="coerce")
    return merged


def over_written_entities(actions: pd.DataFrame, per_entity: pd.Series, reduce: str = "min") -> np.ndarray:
    """``per_entity`` ((entity_type, entity_id) → value) reduced over each action's written entities."""
    written = written_entities(actions)
    values = written.merge(per_entity.rename("value").reset_index(), on=["entity_type", "entity_id"], how="left")
    reduced = values.groupby("position")["value"].agg(reduce)
    return reduced.reindex(np.arange(len(actions))).to_numpy(dtype=float)


def _hours_ago(moments: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    return (as_of - moments).dt.total_seconds() / 3600


def hours_since_last_action(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Hours since any entity an action writes was last written (NaN: never): the cooldown's input."""
    if history.empty or actions.empty:
        return np.full(len(actions), np.nan)
    written = written_entities(history.reset_index(drop=True))
    written["executed_at"] = history["executed_at"].to_numpy()[written["position"].to_numpy()]
    latest = written.groupby(["entity_type", "entity_id"])["executed_at"].max()
    return over_written_entities(actions, _hours_ago(latest, as_of))


def hours_since_creative_change(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Hours since the action's ad last got a creative variant (NaN: never): the creative embargo's input."""
    variants = history[history["type"].eq("create_variant")]
    if variants.empty or actions.empty:
        return np.full(len(actions), np.nan)
    latest = variants.groupby(["entity_type", "entity_id"])["executed_at"].max()
    keys = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]])
    return _hours_ago(latest.reindex(keys), as_of).to_numpy(dtype=float)


def changed_in_window(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """The budget change already spent on each action's entity in the last CHANGE_WINDOW_HOURS:
    the sum of its executed budget changes (relative, rollbacks excluded: they undo a change).

    A write of unknown size (a snapshot's ``recent_actions``) adds nothing here: any write within
    the window also puts the entity in its 24 h cooldown, which blocks every budget change anyway.
    """
    recent = history[
        history["type"].isin(BUDGET_TYPES)
        & history["rule"].ne("rollback")
        & (_hours_ago(history["executed_at"], as_of) < CHANGE_WINDOW_HOURS)
    ]
    if recent.empty or actions.empty:
        return np.zeros(len(actions))
    used = recent["amount_pct"].abs().fillna(0.0).groupby([recent["entity_type"], recent["entity_id"]]).sum()
    keys = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]])
    return used.reindex(keys).fillna(0.0).to_numpy(dtype=float)


def budget_edits_in_hour(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """How many budget writes each action's entity had in the last EDIT_RATE_WINDOW_HOURS, by any
    path (rollbacks included: Meta counts every edit)."""
    recent = history[history["type"].isin(BUDGET_TYPES) & (_hours_ago(history["executed_at"], as_of) < EDIT_RATE_WINDOW_HOURS)]
    if recent.empty or actions.empty:
        return np.zeros(len(actions), dtype=int)
    edits = recent.groupby(["entity_type", "entity_id"]).size()
    keys = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]])
    return edits.reindex(keys).fillna(0).to_numpy(dtype=int)


def describe(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """``actions`` with their history columns filled in (what the guard rails read)."""
    actions = actions.copy()
    actions["hours_since_last_action"] = hours_since_last_action(actions, history, as_of)
    actions["hours_since_creative_change"] = hours_since_creative_change(actions, history, as_of)
    actions["changed_24h_pct"] = changed_in_window(actions, history, as_of)
    actions["budget_edits_1h"] = budget_edits_in_hour(actions, history, as_of)
    return actions
