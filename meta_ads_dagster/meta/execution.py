"""Execution: apply the actions routed to ``executed`` through the Meta client.

A failed write fails that action only (verdict ``failed`` with Meta's message); the cycle goes on.
Each action yields one log record with the seed's fields, executed or not, so the run's event log
is the complete account of the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..engine.actions import add_reason
from .client import MetaAdsClient


def apply_action(client: MetaAdsClient, action) -> dict[str, Any]:
    """One write for one action row (a namedtuple of the action frame)."""
    if action.type in ("scale_up", "scale_down"):
        return client.update_budget(action.entity_type, action.entity_id, int(action.new_budget_minor))
    if action.type == "pause":
        return client.pause(action.entity_type, action.entity_id)
    if action.type == "publish_winner":
        return client.publish_winner_ad(action.entity_id, list(action.loser_ad_ids))
    if action.type == "create_variant":
        return client.create_new_ad_variant(action.entity_id)
    raise ValueError(f"action {action.id}: type {action.type!r} cannot be executed automatically")


def _input_snapshot(action) -> dict[str, Any]:
    return {
        "rule": action.rule,
        "current_budget_minor": None if pd.isna(action.current_budget_minor) else int(action.current_budget_minor),
        "new_budget_minor": None if pd.isna(action.new_budget_minor) else int(action.new_budget_minor),
        "confidence": None if pd.isna(action.confidence) else round(float(action.confidence), 4),
    }


def execute_actions(
    actions: pd.DataFrame,
    client: MetaAdsClient,
    mark_outcome: Callable[[str, str | None], None],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Apply every ``executed`` action; ``mark_outcome(action_id, error)`` is called after each write.

    Returns the actions (failures re-labelled ``failed``) and one log record per action.
    """
    actions = actions.copy()
    records = []
    for position, action in enumerate(actions.itertuples(index=False)):
        record = {
            "step": "execute" if action.verdict == "executed" else "route",
            "action": action.type,
            "action_id": action.id,
            "entity_type": action.entity_type,
            "entity_id": action.entity_id,
            "verdict": action.verdict,
            "input_snapshot": _input_snapshot(action),
            "output_snapshot": None,
            "success": None,
            "error_message": None,
        }
        if action.verdict == "executed":
            try:
                record["output_snapshot"] = apply_action(client, action)
                record["success"] = True
                mark_outcome(action.id, None)
            except Exception as exc:  # a failed write fails this action only
                error = f"{type(exc).__name__}: {exc}"
                record.update(success=False, error_message=error, verdict="failed")
                actions.iloc[position, actions.columns.get_loc("verdict")] = "failed"
                add_reason(actions, actions.index == actions.index[position], f"write failed: {error}")
                mark_outcome(action.id, error)
        records.append(record)
    return actions, records
