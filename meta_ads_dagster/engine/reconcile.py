"""Reconcile writes whose outcome is open, against what the account shows now.

A write is *open* when the ledger holds it as ``unknown`` (sent, no answer) or still ``executing``
from a run that died between the Meta write and the ledger update. It is never re-sent: the next
cycle reads the account and decides from the entity's current state whether the write landed.

| action            | landed when the snapshot shows                                         |
|-------------------|------------------------------------------------------------------------|
| scale_up/down     | the entity's daily budget equals the new one                           |
| pause             | the entity is PAUSED                                                   |
| resume            | the entity is ACTIVE (a rollback's restore)                            |
| publish_winner    | every loser ad is PAUSED                                               |
| create_variant    | an ad copied from it (``source_ad_id``) created at or after the write's cycle read the account (``as_of``) |

Otherwise it did not land, and the next cycle decides again. Any other type (``reallocate``,
never sent automatically) cannot be told from the account and stays open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .snapshot import AccountSnapshot

VERIFIABLE = ("scale_up", "scale_down", "pause", "resume", "publish_winner", "create_variant")


def _current_state(snapshot: AccountSnapshot) -> pd.DataFrame:
    frames = [
        snapshot.campaigns.assign(entity_type="campaign"),
        snapshot.adsets.assign(entity_type="adset"),
        snapshot.ads.assign(entity_type="ad", daily_budget=pd.NA),
    ]
    state = pd.concat([f[["entity_type", "id", "status", "daily_budget"]] for f in frames], ignore_index=True)
    return state.rename(columns={"id": "entity_id", "status": "status_now", "daily_budget": "budget_now"})


def _copy_made(snapshot: AccountSnapshot, ad_id: str, since: pd.Timestamp) -> str | None:
    """The first ad copied from ``ad_id`` at or after ``since`` ("<id> created <time>"), or None:
    an older copy is an earlier variant's."""
    ads = snapshot.ads
    copies = ads[ads["source_ad_id"].eq(ad_id) & (ads["created_time"] >= since)].sort_values("created_time")
    return None if copies.empty else f"{copies['id'].iloc[0]} created {copies['created_time'].iloc[0].isoformat()}"


def reconcile_writes(open_writes: pd.DataFrame, snapshot: AccountSnapshot) -> pd.DataFrame:
    """``open_writes`` (ledger rows: action_id, cycle_run_id, as_of, type, entity_type, entity_id,
    new_budget_minor, loser_ad_ids) with ``landed`` (True/False) and ``observed`` (what the account
    shows), for the verifiable ones."""
    writes = open_writes[open_writes["type"].isin(VERIFIABLE)].merge(
        _current_state(snapshot), on=["entity_type", "entity_id"], how="left"
    )
    is_copy = writes["type"].eq("create_variant")
    since = pd.to_datetime(writes["as_of"], utc=True)
    copy_found = pd.Series(
        [_copy_made(snapshot, ad, at) if copy else None for copy, ad, at in zip(is_copy, writes["entity_id"], since)],
        index=writes.index, dtype=object,
    )
    ad_status = snapshot.ads.set_index("id")["status"]
    losers_paused = writes["loser_ad_ids"].map(
        lambda ads: bool(ads) and all(ad_status.get(ad) == "PAUSED" for ad in ads) if isinstance(ads, (list, tuple)) else False
    )
    budget_now = pd.to_numeric(writes["budget_now"], errors="coerce")
    is_budget = writes["type"].isin(["scale_up", "scale_down"])
    writes["landed"] = np.select(
        [is_budget, writes["type"].eq("pause"), writes["type"].eq("resume"), writes["type"].eq("publish_winner"), is_copy],
        [budget_now.eq(pd.to_numeric(writes["new_budget_minor"])).fillna(False),
         writes["status_now"].eq("PAUSED"), writes["status_now"].eq("ACTIVE"), losers_paused, copy_found.notna()],
        default=False,
    ).astype(bool)
    writes["observed"] = np.select(
        [is_budget, is_copy & copy_found.notna(), is_copy],
        ["daily budget now " + budget_now.astype("Int64").astype(str),
         "copy " + copy_found.fillna("").astype(str),
         [f"no copy of it created since {at.isoformat()}" for at in since]],
        default="status now " + writes["status_now"].fillna("missing").astype(str),
    )
    return writes[[*open_writes.columns, "landed", "observed"]]


def with_prior_state(actions: pd.DataFrame, snapshot: AccountSnapshot) -> pd.DataFrame:
    """The state each action's entity is in before the cycle writes (what a rollback restores):
    ``prior_status``, and for an A/B decision ``prior_loser_statuses`` (ad → status). A budget's
    prior value is the action's ``current_budget_minor``."""
    state = _current_state(snapshot).set_index(["entity_type", "entity_id"])["status_now"]
    ad_status = snapshot.ads.set_index("id")["status"]
    actions = actions.copy()
    actions["prior_status"] = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]]).map(state.get) if len(actions) else []
    actions["prior_loser_statuses"] = actions["loser_ad_ids"].map(
        lambda ads: {ad: ad_status.get(ad) for ad in ads} if isinstance(ads, (list, tuple)) else None
    )
    return actions


def stale_queued(queued: pd.DataFrame, snapshot: AccountSnapshot) -> pd.DataFrame:
    """Queued rows (pending or approved) whose numbers the account no longer bears out, with
    ``why``: a person must never approve (or have carried out) "100 → 80" for a budget that is 90
    now. Stale: the entity is gone; a budget action's entity has another budget than the one it was
    proposed against; any other action's entity is no longer ACTIVE."""
    rows = queued.merge(_current_state(snapshot), on=["entity_type", "entity_id"], how="left")
    budget_now = pd.to_numeric(rows["budget_now"], errors="coerce")
    proposed_from = pd.to_numeric(rows["current_budget_minor"], errors="coerce")
    per_unit = pd.to_numeric(rows["minor_per_unit"], errors="coerce").fillna(100)
    gone = rows["status_now"].isna()
    is_budget = rows["type"].isin(["scale_up", "scale_down"])
    budget_moved = is_budget & ~gone & proposed_from.notna() & budget_now.ne(proposed_from)
    # A resume is meant for an entity that is not ACTIVE: only the other actions go stale with it.
    not_active = ~is_budget & ~gone & rows["status_now"].ne("ACTIVE") & rows["type"].ne("resume")
    rows["why"] = [
        "superseded: the entity is no longer in the account" if g
        else f"superseded: the budget changed since it was proposed ({p / u:,.2f} → {b / u:,.2f})" if moved
        else f"superseded: the entity is {status} now" if inactive
        else ""
        for g, moved, inactive, p, b, u, status in zip(
            gone, budget_moved, not_active, proposed_from, budget_now, per_unit, rows["status_now"]
        )
    ]
    return rows[rows["why"] != ""][[*queued.columns, "why"]]
