"""Execution: apply the actions routed to ``executed`` through the Meta client.

A failed write fails that action only (verdict ``failed`` with Meta's message); the cycle goes on.
A write whose outcome is unknown (sent, no answer) is also reported ``failed`` for this cycle, with
a reason saying so; the ledger keeps it as ``unknown`` so it is never re-sent blindly. Each action
yields one log record with the seed's fields, executed or not, so the run's event log is the complete
account of the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..engine.actions import add_reason, give_verdict, optional_float, optional_int
from ..engine.history import hours_since_last_action
from .client import MetaAdsClient, Write, WriteOutcome


def to_writes(actions: pd.DataFrame, variant_status: str = "PAUSED") -> list[Write]:
    """The ``executed`` rows of an action frame as writes for the client; creative variants are
    created with ``variant_status`` (CREATIVE_VARIANT_STATUS)."""
    executed = actions[actions["verdict"] == "executed"]
    return [
        Write(
            action_id=a.id,
            type=a.type,
            entity_type=a.entity_type,
            entity_id=a.entity_id,
            new_budget_minor=optional_int(a.new_budget_minor),
            loser_ad_ids=tuple(a.loser_ad_ids) if isinstance(a.loser_ad_ids, (list, tuple)) else (),
            unit_id=a.unit_id if isinstance(a.unit_id, str) else None,
            prior_budget_minor=optional_int(a.current_budget_minor),
            variant_status=variant_status,
        )
        for a in executed.itertuples(index=False)
    ]


def hold_back_already_sent(actions: pd.DataFrame, sent: dict[str, str]) -> pd.DataFrame:
    """Executable actions whose write an earlier run already sent are not sent again.

    Re-executing a run (or one step of it) replays its routed actions; their ids are the same, so
    the ledger knows them. They are ``superseded`` by the write of the run that sent them.
    """
    actions = actions.copy()
    repeat = (actions["verdict"].eq("executed") & actions["id"].isin(list(sent))).to_numpy()
    give_verdict(actions, repeat, "superseded", [f"already sent by run {sent.get(i, '')}; not sent again" for i in actions["id"]])
    return actions


def hold_back_changed_since(actions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """What the ledger says now against what this cycle decided from: an executable action whose
    entity another run changed after this cycle read the ledger (a manual cycle next to a
    scheduled one) is not sent on top of that change; the next cycle decides it again."""
    actions = actions.copy()
    seen = actions["hours_since_last_action"].astype(float).to_numpy()
    now = hours_since_last_action(actions, history, as_of)
    changed = np.where(np.isnan(seen), ~np.isnan(now), now < seen - 1e-6) & actions["verdict"].eq("executed").to_numpy()
    give_verdict(actions, changed, "deferred", "changed by another run after this cycle read the account: not sent, decided again next cycle")
    return actions


def _input_snapshot(action) -> dict[str, Any]:
    return {
        "rule": action.rule,
        "current_budget_minor": optional_int(action.current_budget_minor),
        "new_budget_minor": optional_int(action.new_budget_minor),
        "confidence": optional_float(action.confidence, 4),
    }


def execute_actions(
    actions: pd.DataFrame,
    client: MetaAdsClient,
    mark_outcome: Callable[[WriteOutcome], None],
    variant_status: str = "PAUSED",
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Apply every ``executed`` action; ``mark_outcome`` is called once per write's outcome;
    creative variants are created ``variant_status`` (ACTIVE or PAUSED).

    Returns the actions (failed and unknown writes re-labelled ``failed``) and one log record per action.
    """
    outcomes = {outcome.action_id: outcome for outcome in client.apply_writes(to_writes(actions, variant_status))}
    for outcome in outcomes.values():
        mark_outcome(outcome)

    actions = actions.copy()
    unsuccessful = actions["id"].map(lambda i: i in outcomes and outcomes[i].status != "executed").to_numpy()
    add_reason(
        actions,
        unsuccessful,
        [
            (f"outcome unknown: {outcomes[i].error}; not re-sent, reconciled next cycle"
             if outcomes[i].status == "unknown" else f"write failed: {outcomes[i].error}") if i in outcomes else ""
            for i in actions["id"]
        ],
    )
    actions.loc[unsuccessful, "verdict"] = "failed"

    records = []
    for action in actions.itertuples(index=False):
        outcome = outcomes.get(action.id)
        records.append(
            {
                "step": "execute" if outcome else "route",
                "action": action.type,
                "action_id": action.id,
                "entity_type": action.entity_type,
                "entity_id": action.entity_id,
                "verdict": action.verdict,
                "input_snapshot": _input_snapshot(action),
                "output_snapshot": outcome.result if outcome else None,
                "success": (outcome.status == "executed") if outcome else None,
                "error_message": outcome.error if outcome else None,
                "outcome": outcome.status if outcome else None,
            }
        )
    return actions, records
