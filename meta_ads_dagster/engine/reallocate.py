"""Reallocate and resume: the seed's two actions that are never automatic (always queued for a person).

Reallocate. Within a campaign whose budget lives on its ad sets (not CBO: under a campaign budget
Meta itself spreads the money over the ad sets, and ads have no budget anywhere), when at least
REALLOCATE_MIN_ENTITIES running ad sets with a budget, each held with at least MIN_CONFIDENCE, show a
7-day ROAS spread of at least REALLOCATE_MIN_SPREAD (best / worst), budget moves from the weakest to
the strongest. The amount is sized by *marginal* return, not average ROAS: each ad set's response
curve value = a · spend^b is fitted to its own daily (spend, value) history over the insights' days
(the log-log slope b, its elasticity), so one more unit of budget earns b · ROAS there. Money moves
while the strongest's marginal return, falling as it gets more, stays above the weakest's, rising as
it gets less (bisection), and never past what the 24 h change limits leave on either leg (a raise
also within SIGNIFICANT_EDIT_PCT). No move when the strongest's marginal return is not above the
weakest's (a flat curve at a high average earns nothing more).

A reallocation is one decision written as its legs: a ``scale_down`` of the donor and a
``scale_up`` of the recipient, rule ``reallocate``, sharing ``unit_id`` (the decision's id). Each
leg is the budget change it is for every guard rail (24 h change limits, caps, embargo, cooldown,
Meta's edits per hour, the per-tick limit, the audit's checker); only the seed's ROAS gates of a
lone scale_up / scale_down (≥ 2.0 / ≤ 1.5) do not apply to a leg, since the reallocation's own
condition (the spread) replaces them. :func:`keep_units_whole` makes it all or none at every
step: a leg blocked, clamped, deferred or superseded takes the whole unit with it.

Resume. A paused entity is proposed for resuming when the engine itself paused it (the last write
to it in the ledger is a hard-stop pause: what a person paused is theirs, never proposed) and its
evidence recovered: the matured 7-day ROAS (late conversions included, engine/metrics.py) is at
least the hold band's floor (RESUME_MIN_ROAS: it would no longer be cut) with a matured confidence
of at least MIN_CONFIDENCE, and the hard stop no longer holds on the ROAS as reported (below
HARD_STOP_ROAS with HARD_STOP_CONFIDENCE). Its parents must be running (resuming an ad under a
paused ad set would change nothing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import HOLD_BAND_LOW, Settings
from .actions import ACTION_COLUMNS, action_id, pct
from .history import changed_in_window, history_frame
from .policy import EPS, MIN_CONFIDENCE, MIN_MEANINGFUL_CHANGE, PolicyEngine
from .snapshot import AccountSnapshot

REALLOCATE_RULE = "reallocate"
RESUME_RULE = "recovered"
REALLOCATE_MIN_ENTITIES = 3  # the seed's safety matrix: "If ≥3 ads, variance ≥ 1.5x"
REALLOCATE_MIN_SPREAD = 1.5
RESUME_MIN_ROAS = HOLD_BAND_LOW
RESUME_LOOKBACK_HOURS = 7 * 24  # a late conversion matures within the 7-day window
# The elasticity's fit: at least this many days with spend and value, enough spread in the log
# spend to see a slope; else the square-root curve practitioners assume (b = 0.5). Clipped so a
# noisy fit never claims a straight line (b = 1) or a flat one.
MIN_FIT_DAYS = 7
MIN_LOG_SPEND_SPREAD = 0.05
DEFAULT_ELASTICITY = 0.5
ELASTICITY_RANGE = (0.1, 0.95)
BISECTION_STEPS = 40


def elasticities(snapshot: AccountSnapshot, adset_ids: pd.Series) -> pd.Series:
    """Ad set id → the log-log slope of its daily value on its daily spend (complete days only)."""
    days = snapshot.insights[snapshot.insights["date"] < snapshot.today]
    days = days[days["adset_id"].isin(adset_ids)].groupby(["adset_id", "date"])[["spend", "revenue"]].sum()
    days = days[(days["spend"] > 0) & (days["revenue"] > 0)]
    x, y = np.log(days["spend"]), np.log(days["revenue"])
    frame = pd.DataFrame({"x": x, "y": y, "xy": x * y, "xx": x * x}).groupby(level="adset_id")
    sums, n = frame.sum(), frame.size()
    var = sums["xx"] / n - (sums["x"] / n) ** 2
    cov = sums["xy"] / n - sums["x"] / n * sums["y"] / n
    slope = (cov / var.where(var > 0)).clip(*ELASTICITY_RANGE)
    usable = (n >= MIN_FIT_DAYS) & (np.sqrt(var.clip(lower=0)) >= MIN_LOG_SPEND_SPREAD)
    return slope.where(usable).reindex(adset_ids.to_numpy()).fillna(DEFAULT_ELASTICITY)


def marginal_move(budget_from, budget_to, marginal_from, marginal_to, elasticity_from, elasticity_to, most) -> np.ndarray:
    """How much budget to move (same units as the budgets) so the two marginal returns meet,
    at most ``most``: marginal return at budget B' is marginal · (B'/B)^(b − 1)."""
    low, high = np.zeros_like(most), np.asarray(most, dtype=float).copy()

    def gap(move):
        to = marginal_to * ((budget_to + move) / budget_to) ** (elasticity_to - 1)
        frm = marginal_from * (np.maximum(budget_from - move, EPS) / budget_from) ** (elasticity_from - 1)
        return to - frm

    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        earns = gap(middle) > 0
        low, high = np.where(earns, middle, low), np.where(earns, high, middle)
    return np.where(gap(np.zeros_like(most)) > 0, np.where(gap(most) > 0, most, low), 0.0)


def propose_more(
    snapshot: AccountSnapshot, metrics: pd.DataFrame, settings: Settings, scope: pd.Series, actions: pd.DataFrame,
    history: pd.DataFrame, pauses: pd.DataFrame | None,
) -> pd.DataFrame:
    """``actions`` (the rules' proposals) with the reallocations and resumes the settings ask for
    (REALLOCATE_PROPOSALS, RESUME_PROPOSALS) appended, in the action frame's columns."""
    found = [actions]
    if settings.reallocate_proposals:
        found.append(_as_actions(propose_reallocations(snapshot, metrics, settings, scope, actions, history), snapshot))
    if settings.resume_proposals and pauses is not None:
        taken = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]])
        resumes = propose_resumes(snapshot, metrics, settings, pauses)
        resumes = resumes[~pd.MultiIndex.from_frame(resumes[["entity_type", "entity_id"]]).isin(taken)] if len(resumes) else resumes
        found.append(_as_actions(resumes, snapshot))
    found = [f for f in found if len(f)]
    return pd.concat(found, ignore_index=True) if found else actions


def _as_actions(rows: pd.DataFrame, snapshot: AccountSnapshot) -> pd.DataFrame:
    """Metrics rows made proposals: the action frame's columns (history ones filled by ``describe``)."""
    if rows.empty:
        return rows.reindex(columns=ACTION_COLUMNS)
    rows = rows.copy()
    # A resume's budget is what it brings back into the spend caps' totals (engine/safety.py).
    budget = rows["type"].isin(["scale_up", "scale_down"]) | (rows["type"].eq("resume") & rows["is_budget_holder"])
    rows["current_budget_minor"] = rows["daily_budget"].where(budget)
    rows["amount_pct"] = rows["proposed_pct"]
    rows["new_budget_minor"] = np.nan
    rows["age_hours"] = ((snapshot.as_of - rows["created_time"]).dt.total_seconds() / 3600).to_numpy()
    rows["loser_ad_ids"] = None
    rows["hours_since_last_action"] = np.nan
    rows["hours_since_creative_change"] = np.nan
    rows["changed_24h_pct"] = 0.0
    rows["budget_edits_1h"] = 0
    rows["minor_per_unit"] = snapshot.minor_per_unit
    rows["verdict"] = "proposed"
    return rows[ACTION_COLUMNS].reset_index(drop=True)


def propose_reallocations(
    snapshot: AccountSnapshot, metrics: pd.DataFrame, settings: Settings, scope: pd.Series, taken: pd.DataFrame,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Reallocation legs (verdict ``proposed``) for the campaigns in ``scope``; ad sets another
    action of this cycle writes (``taken``: entity_type, entity_id) are left out. ``history``
    (engine/history.py) says what the legs' last 24 h already used of the change limits."""
    adsets = metrics[
        metrics["entity_type"].eq("adset") & metrics["effective_active"] & metrics["is_budget_holder"]
        & metrics["campaign_id"].isin(scope) & (metrics["confidence"] >= MIN_CONFIDENCE) & (metrics["spend_7d"] > 0)
        & metrics["roas_7d"].notna() & (metrics["daily_budget"] > 0)
    ]
    adsets = adsets[~adsets["entity_id"].isin(taken.loc[taken["entity_type"].eq("adset"), "entity_id"])]
    counts = adsets.groupby("campaign_id")["entity_id"].transform("size")
    adsets = adsets[counts >= REALLOCATE_MIN_ENTITIES]
    if adsets.empty:
        return pd.DataFrame(columns=ACTION_COLUMNS)
    ranked = adsets.sort_values(["campaign_id", "roas_7d", "entity_id"])
    weakest = ranked.groupby("campaign_id").head(1).set_index("campaign_id", drop=False)
    strongest = ranked.groupby("campaign_id").tail(1).set_index("campaign_id", drop=False).reindex(weakest.index)
    spread = strongest["roas_7d"] / weakest["roas_7d"].where(weakest["roas_7d"] > 0)
    wide = (spread >= REALLOCATE_MIN_SPREAD - EPS) | (weakest["roas_7d"] <= 0)
    weakest, strongest, spread = weakest[wide], strongest[wide], spread[wide]
    if weakest.empty:
        return pd.DataFrame(columns=ACTION_COLUMNS)

    history = history if history is not None else history_frame([])
    used_from = changed_in_window(weakest, history, snapshot.as_of)
    used_to = changed_in_window(strongest, history, snapshot.as_of)
    limit = settings.budget_change_limit
    budget_from = weakest["daily_budget"].astype(float).to_numpy()
    budget_to = strongest["daily_budget"].astype(float).to_numpy()
    most = np.minimum(np.maximum(limit - used_from, 0) * budget_from,
                      np.maximum(min(limit, settings.significant_edit_pct) - used_to, 0) * budget_to)
    curve = elasticities(snapshot, pd.concat([weakest["entity_id"], strongest["entity_id"]]))
    b_from, b_to = curve.iloc[:len(weakest)].to_numpy(), curve.iloc[len(weakest):].to_numpy()
    marginal_from = b_from * weakest["roas_7d"].clip(lower=0).to_numpy()
    marginal_to = b_to * strongest["roas_7d"].to_numpy()
    move = np.floor(marginal_move(budget_from, budget_to, marginal_from, marginal_to, b_from, b_to, most))
    meaningful = (move >= MIN_MEANINGFUL_CHANGE * budget_to - EPS) & (move > 0)

    as_of = snapshot.as_of.isoformat()
    legs = []
    minor = snapshot.minor_per_unit
    for i in np.flatnonzero(meaningful):
        donor, recipient = weakest.iloc[i], strongest.iloc[i]
        unit = action_id(as_of, "campaign", weakest.index[i], REALLOCATE_RULE)
        why = (
            f"reallocate {move[i] / minor:,.2f} a day in campaign {weakest.index[i]} (ROAS spread {spread.iloc[i]:.2f}× ≥ "
            f"{REALLOCATE_MIN_SPREAD}×) from ad set {donor['entity_id']} (ROAS {donor['roas_7d']:.2f}, marginal return "
            f"{marginal_from[i]:.2f} at elasticity {b_from[i]:.2f}) to ad set {recipient['entity_id']} (ROAS "
            f"{recipient['roas_7d']:.2f}, marginal return {marginal_to[i]:.2f} at elasticity {b_to[i]:.2f}); total daily "
            f"budget unchanged; one unit, all or none"
        )
        for row, kind in ((donor, "scale_down"), (recipient, "scale_up")):
            leg = row.to_dict()
            leg.update(
                id=action_id(as_of, "adset", row["entity_id"], REALLOCATE_RULE), type=kind, rule=REALLOCATE_RULE,
                unit_id=unit, entity_name=row["name"], proposed_pct=move[i] / float(row["daily_budget"]),
                reasons=[f"{why} (leg: {kind} {pct(move[i] / float(row['daily_budget']))})"],
            )
            legs.append(leg)
    return pd.DataFrame(legs)


def creative_judged(rows: pd.DataFrame) -> pd.Series:
    """The ``creative_approved`` a resume is checked on: an ad's own creative; resuming an ad set
    or a campaign puts no new creative live (its ads were judged when they ran)."""
    return rows["creative_approved"].where(rows["entity_type"].eq("ad"), True)


def propose_resumes(snapshot: AccountSnapshot, metrics: pd.DataFrame, settings: Settings, pauses: pd.DataFrame) -> pd.DataFrame:
    """Resume proposals (verdict ``proposed``) for what the engine's hard stop paused and whose
    matured evidence recovered. ``pauses``: the ledger's writes over RESUME_LOOKBACK_HOURS
    (engine/history.py rows)."""
    if pauses.empty:
        return pd.DataFrame(columns=ACTION_COLUMNS)
    last = pauses.sort_values("executed_at").drop_duplicates(["entity_type", "entity_id"], keep="last")
    ours = last[last["type"].eq("pause") & last["rule"].eq("hard_stop")]
    rows = metrics.merge(ours[["entity_type", "entity_id"]], on=["entity_type", "entity_id"])
    status = metrics.set_index(["entity_type", "entity_id"])["status"]
    campaign_on = rows["campaign_id"].map(lambda c: status.get(("campaign", c))).eq("ACTIVE")
    adset_on = rows["adset_id"].map(lambda a: status.get(("adset", a), "ACTIVE") if isinstance(a, str) else "ACTIVE").eq("ACTIVE")
    parents_on = np.where(rows["entity_type"].eq("campaign"), True, campaign_on & np.where(rows["entity_type"].eq("ad"), adset_on, True))
    halted, _ = PolicyEngine(settings).must_halt(rows["roas_7d"], rows["confidence"], rows["spend_7d"])
    recovered = (rows["roas_matured"] >= RESUME_MIN_ROAS) & (rows["confidence_matured"] >= MIN_CONFIDENCE)
    rows = rows[(rows["status"].eq("PAUSED") & parents_on & recovered).to_numpy() & ~halted]
    if rows.empty:
        return pd.DataFrame(columns=ACTION_COLUMNS)
    as_of = snapshot.as_of.isoformat()
    return rows.assign(
        id=[action_id(as_of, t, e, "resume") for t, e in zip(rows["entity_type"], rows["entity_id"])],
        type="resume", rule=RESUME_RULE, unit_id=None, entity_name=rows["name"], proposed_pct=np.nan,
        creative_approved=creative_judged(rows),
        reasons=[
            [f"paused by the hard stop; matured 7-day ROAS {r.roas_matured:.2f} ≥ {RESUME_MIN_ROAS} with confidence "
             f"{r.confidence_matured:.2f} (reported {r.roas_7d:.2f}): late conversions lifted it, the hard stop no longer holds"]
            for r in rows.itertuples(index=False)
        ],
    )
