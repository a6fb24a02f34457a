"""The action frame: one row per proposed action, shared by decisions, guard rails and routing.

Verdicts move one way: ``proposed`` → ``policy_blocked`` | ``safety_blocked`` | ``queued`` |
``executed`` (→ ``failed`` when the write itself fails). Each step only touches rows that are still
``proposed`` (routing: still undecided), so a block can never be undone by a later step. Two more
verdicts say an action was not written *this* cycle without judging it: ``deferred`` (it waits:
the per-tick limit, the kill switch, another run wrote the entity meanwhile) and ``superseded``
(another action on the same entity replaced it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

BUDGET_TYPES = ("scale_up", "scale_down")  # a reallocation's legs are these too (engine/reallocate.py)
PROTECTIVE_TYPES = ("pause", "publish_winner", "scale_down")  # cut or hold spend; never raise it
VERDICTS = ("proposed", "policy_blocked", "safety_blocked", "deferred", "superseded", "queued", "executed", "failed")

# The worst verdict of a unit's legs is the unit's (a leg that cannot go holds every leg back).
_VERDICT_RANK = {v: r for r, v in enumerate(
    ["policy_blocked", "safety_blocked", "failed", "superseded", "deferred", "queued", "executed", "proposed"])}

ACTION_COLUMNS = [
    "id", "type", "entity_type", "entity_id", "entity_name", "campaign_id", "adset_id", "rule", "proposed_pct", "amount_pct",
    "current_budget_minor", "new_budget_minor", "confidence", "roas_7d", "spend_7d", "impressions_7d",
    "age_hours", "creative_id", "creative_approved", "countries", "spain_share", "top_country_share",
    "loser_ad_ids", "hours_since_last_action", "hours_since_creative_change", "changed_24h_pct", "budget_edits_1h",
    "learning_adsets", "minor_per_unit", "unit_id", "verdict", "reasons",
]


def action_id(as_of: str, entity_type: str, entity_id: str, action_type: str) -> str:
    """Deterministic id: the same snapshot time, entity and type always give the same id."""
    return hashlib.sha256(f"{as_of}|{entity_type}|{entity_id}|{action_type}".encode()).hexdigest()[:16]


def empty_actions() -> pd.DataFrame:
    return pd.DataFrame(columns=ACTION_COLUMNS)


def written_entities(actions: pd.DataFrame) -> pd.DataFrame:
    """Every entity each action writes, one row each: (position, entity_type, entity_id).

    ``position`` is the row's position in ``actions``. An A/B decision writes its winner (kept
    ACTIVE) and every loser (PAUSED); any other action writes its own entity.
    """
    own = pd.DataFrame({"position": np.arange(len(actions)), "entity_type": actions["entity_type"].to_numpy(),
                        "entity_id": actions["entity_id"].to_numpy()})
    losers = [
        (position, "ad", ad)
        for position, ads in enumerate(actions["loser_ad_ids"]) if isinstance(ads, (list, tuple))
        for ad in ads
    ]
    frame = pd.concat([own, pd.DataFrame(losers, columns=["position", "entity_type", "entity_id"])], ignore_index=True)
    return frame.astype({"position": int, "entity_type": object, "entity_id": object})


def is_approval(actions: pd.DataFrame) -> np.ndarray:
    """Rows that carry out a person's approval (``approved_in_run`` set), not this cycle's own proposals."""
    if "approved_in_run" not in actions:
        return np.zeros(len(actions), dtype=bool)
    return actions["approved_in_run"].notna().to_numpy()


def add_reason(actions: pd.DataFrame, mask: Iterable[bool], message: str | Iterable[str]) -> None:
    """Append ``message`` (one string, or one per row) to the reasons of the rows in ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    messages = [message] * len(actions) if isinstance(message, str) else list(message)
    actions["reasons"] = [
        [*reasons, text] if flag else reasons for reasons, flag, text in zip(actions["reasons"], mask, messages)
    ]


def note(actions: pd.DataFrame, mask: Iterable[bool], message: str | Iterable[str]) -> np.ndarray:
    """Add a reason to the rows in ``mask`` that are still proposed (e.g. a clamp); returns them."""
    target = np.asarray(mask, dtype=bool) & actions["verdict"].eq("proposed").to_numpy()
    add_reason(actions, target, message)
    return target


def set_verdict(actions: pd.DataFrame, mask: Iterable[bool], verdict: str, message: str | Iterable[str]) -> None:
    """Give ``verdict`` and a reason to the rows in ``mask`` that are still proposed."""
    actions.loc[note(actions, mask, message), "verdict"] = verdict


def give_verdict(actions: pd.DataFrame, mask: Iterable[bool], verdict: str, message: str | Iterable[str]) -> None:
    """Route, limit or overrule rows: the rows in ``mask`` get ``verdict`` and ``message`` as the
    reason that states it. A reason that stated an earlier verdict (e.g. "queued for human
    approval") is taken out first, so a row never carries two contradictory verdict reasons: the
    final verdict's reason comes last and alone decides. Findings and clamps are kept."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    messages = [message] * len(actions) if isinstance(message, str) else list(message)
    stated = actions["verdict_reason"] if "verdict_reason" in actions else pd.Series([None] * len(actions), index=actions.index)
    actions["reasons"] = [
        [r for r in reasons if r != old] + [text] if flag else reasons
        for reasons, flag, old, text in zip(actions["reasons"], mask, stated, messages)
    ]
    actions["verdict_reason"] = np.where(mask, np.array(messages, dtype=object), stated.to_numpy(dtype=object))
    actions.loc[mask, "verdict"] = verdict


def keep_units_whole(actions: pd.DataFrame) -> pd.DataFrame:
    """All or none: every leg of a reallocation takes its unit's worst verdict (a blocked,
    deferred or superseded leg holds the others back), and a unit whose legs no longer add up to
    zero (a leg clamped by a limit) is blocked."""
    if "unit_id" not in actions or actions["unit_id"].isna().all():
        return actions
    actions = actions.copy()
    legs = actions[actions["unit_id"].notna()]
    net = (legs["new_budget_minor"].astype(float) - legs["current_budget_minor"].astype(float)).groupby(legs["unit_id"]).sum()
    unbalanced = legs["unit_id"].map(net.abs() > 0.5).fillna(False).to_numpy() & legs["verdict"].eq("proposed").to_numpy()
    give_verdict(actions, actions.index.isin(legs.index[unbalanced]), "policy_blocked",
                 "reallocation is all or none: a leg was clamped by a limit, so the total would change")
    legs = actions[actions["unit_id"].notna()]
    rank = legs["verdict"].map(_VERDICT_RANK)
    worst = rank.groupby(legs["unit_id"]).transform("min")
    lagging = legs[rank > worst]
    if lagging.empty:
        return actions
    cause = legs[rank == worst].drop_duplicates("unit_id").set_index("unit_id")
    verdict = lagging["unit_id"].map(cause["verdict"])
    why = [
        f"reallocation is all or none: leg {cause.at[u, 'type']} of ad set {cause.at[u, 'entity_id']} is {cause.at[u, 'verdict']} "
        f"({cause.at[u, 'reasons'][-1] if cause.at[u, 'reasons'] else 'no reason'})"
        for u in lagging["unit_id"]
    ]
    for target in verdict.unique():
        mask = actions.index.isin(lagging.index[verdict.eq(target).to_numpy()])
        give_verdict(actions, mask, target, pd.Series(why, index=lagging.index).reindex(actions.index).fillna("").to_numpy())
    return actions


def checked(inputs, allowed: np.ndarray, reason: np.ndarray, ok: str):
    """Return ``(allowed, reason)`` as scalars when the check was called with a scalar, else arrays.

    Guard-rail checks are written once over arrays; the seed's per-action API calls them with
    scalars, the cycle with whole columns.
    """
    reason = np.where(allowed, ok, reason)
    if np.ndim(inputs) == 0:
        return bool(allowed[0]), str(reason[0])
    return allowed, reason


def as_array(values) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=float))


def pct_text(values) -> np.ndarray:
    """Percent labels for an array of fractions (NaN/inf shown as '?')."""
    return np.array([pct(v) if np.isfinite(v) else "?" for v in as_array(values)], dtype=object)


def optional_int(value) -> int | None:
    """A frame cell as an int, or None where it is missing (NaN, NA, None)."""
    return None if value is None or pd.isna(value) else int(value)


def optional_float(value, digits: int | None = None) -> float | None:
    """A frame cell as a float (rounded to ``digits`` when given), or None where it is missing."""
    if value is None or pd.isna(value):
        return None
    return float(value) if digits is None else round(float(value), digits)


def pct(value: float) -> str:
    """20 % → "20%", 20.5 % → "20.5%" (one decimal only where it carries information)."""
    return f"{value * 100:.1f}".removesuffix(".0") + "%"
