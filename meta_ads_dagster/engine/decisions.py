"""Decision rules: metrics, A/B results, spikes and fatigue in; one candidate action per entity out.

| rule             | condition                                        | proposal                          |
|------------------|--------------------------------------------------|-----------------------------------|
| hard_stop        | ROAS < HARD_STOP_ROAS and confidence ≥ HARD_STOP_CONFIDENCE | pause (any level)      |
| ab_winner        | A/B test has a winner (see ab_tests.py)          | publish winner, pause losers      |
| roas_low         | 7-day ROAS < 1.5                                 | scale down 20–40 %                |
| spike_down       | purchases spiked down and ROAS ≤ 1.5             | scale down 10 %                   |
| creative_fatigue | last-day CTR ≥ 30 % below 7-day CTR              | create a creative variant         |
| roas_high        | 7-day ROAS > 3.0                                 | scale up 20–40 %                  |
| spike_up         | purchases spiked up and ROAS > 2                 | scale up 15 %                     |

Budget rules apply to budget holders only (the campaign under CBO, else its ad sets). The 20–40 %
range grows with how far ROAS is past the threshold (full at ROAS 6 / ROAS 0) times the confidence.

Hysteresis: within HYSTERESIS_DAYS of a raise a budget holder is cut (roas_low, spike_down) only at
ROAS < CLEARLY_LOW (1.25), within HYSTERESIS_DAYS of a cut it is raised (roas_high, spike_up) only at
ROAS > CLEARLY_HIGH (3.6); hard stops are never held.

Raises after a change: within HYSTERESIS_DAYS of a budget holder's last budget change, a raise
(roas_high, spike_up) also needs the reported ROAS of the full days since the change's day above
ROAS_HIGH, and waits while there is no such day. The 7-day window lags a change: the day after a
raise it is still six parts the budget before it, so raises compounded past saturation. Measured
on the simulated market (BENCHMARKS.md, "Raises judged on the days since the last budget change").

Budget rules need a ROAS confidence of at least MIN_CONFIDENCE (0.65, the seed's
``evaluate_campaign(min_confidence=0.65)``); hard stops keep their own HARD_STOP_CONFIDENCE. A
negative spike on a profitable entity (ROAS above 1.5) is reported, not acted on: the seed's safety
matrix cuts only at ROAS ≤ 1.5 (see :func:`spikes_not_acted_on`).

One entity gets one action, the first in the table's order (a pause beats everything; a cut beats
a raise; the larger of two cuts or two raises wins); the rules it overruled are named in its
reasons. Nothing is proposed under an entity that is itself being paused.

Scope: the campaigns a tick evaluates are those that can act (active, past the MIN_AGE_HOURS
embargo), at most MAX_CAMPAIGNS_PER_TICK of them; see :func:`campaigns_in_scope` for the rotation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import HOLD_BAND_LOW, Settings
from .actions import ACTION_COLUMNS, BUDGET_TYPES, action_id, empty_actions, pct, written_entities
from .history import over_written_entities
from .metrics import CONFIDENCE_TOLERANCE, window_insights
from .policy import MIN_CONFIDENCE, SCALE_UP_MIN_ROAS, PolicyEngine
from .snapshot import AccountSnapshot

ROAS_HIGH = 3.0
ROAS_LOW = HOLD_BAND_LOW
SPIKE_UP_MIN_ROAS = SCALE_UP_MIN_ROAS
SCALE_MIN, SCALE_MAX = 0.20, 0.40
SPIKE_BOOST, SPIKE_CUT = 0.15, 0.10
FULL_STRENGTH_ROAS_HIGH = 6.0

# The levels that hold a budget, with their insights id column.
BUDGET_LEVELS = (("campaign", "campaign_id"), ("adset", "adset_id"))
# Hysteresis: within HYSTERESIS_DAYS of a raise (its days still in the 7-day window) a cut needs a
# ROAS below the hold band by the confidence's own ±20 % band (1.5 / 1.2 = 1.25), and within
# HYSTERESIS_DAYS of a cut a raise needs 3.0 × 1.2 = 3.6: a noisy window straying across the band
# must not undo the last change.
HYSTERESIS_DAYS = 7
CLEARLY_LOW = ROAS_LOW / (1 + CONFIDENCE_TOLERANCE)
CLEARLY_HIGH = ROAS_HIGH * (1 + CONFIDENCE_TOLERANCE)

# Meta's learning phase ends after about 50 optimization events within 7 days (Meta Help Center,
# "About the learning phase"; the market's learning_events).
LEARNING_EXIT_EVENTS = 50

RULE_ORDER = ["hard_stop", "ab_winner", "roas_low", "spike_down", "creative_fatigue", "roas_high", "spike_up"]


def campaigns_in_scope(
    metrics: pd.DataFrame, settings: Settings, as_of: pd.Timestamp, last_evaluated: pd.Series | None = None
) -> pd.Series:
    """Ids of the campaigns this tick evaluates: active and past the MIN_AGE_HOURS embargo (a
    campaign that cannot act must not take a slot), at most MAX_CAMPAIGNS_PER_TICK.

    ``last_evaluated`` (campaign id → when a tick last evaluated it) makes the slots rotate: a
    campaign that would otherwise go a day without being looked at comes first (the one evaluated
    longest ago, or never, first), then the highest 7-day spend, then again the longest ago.
    """
    campaigns = metrics[(metrics["entity_type"] == "campaign") & metrics["effective_active"]]
    age_hours = (as_of - campaigns["created_time"]).dt.total_seconds() / 3600
    campaigns = campaigns[(age_hours >= settings.min_age_hours).to_numpy()]
    seen = pd.Series(dtype="datetime64[ns, UTC]") if last_evaluated is None else pd.to_datetime(last_evaluated, utc=True)
    last = pd.Series(seen.reindex(campaigns["entity_id"]).to_numpy(), index=campaigns.index, dtype="datetime64[ns, UTC]")
    hours_ago = ((as_of - last).dt.total_seconds() / 3600).fillna(np.inf).to_numpy()
    # Picked now or next tick at the latest, a campaign this overdue is still evaluated within 24 h.
    overdue = hours_ago >= 24 - settings.meta_cycle_interval_minutes / 60
    ranked = campaigns.assign(urgency=np.where(overdue, hours_ago, -np.inf), hours_ago=hours_ago).sort_values(
        ["urgency", "spend_7d", "hours_ago", "entity_id"], ascending=[False, False, False, True]
    )
    return ranked["entity_id"].head(settings.max_campaigns_per_tick).reset_index(drop=True)


def spikes_not_acted_on(metrics: pd.DataFrame, spikes: pd.DataFrame) -> pd.DataFrame:
    """Negative spikes on budget holders whose 7-day ROAS is above ROAS_LOW: the safety matrix
    cuts only at ROAS ≤ 1.5, so they are reported (entity, ROAS, reason), never cut."""
    down = spikes[spikes["direction"].eq("down")][["entity_type", "entity_id", "z"]]
    # The spiked entities' rows first: a merge with the whole table would hash all its keys.
    spiked = metrics[metrics["entity_id"].isin(down["entity_id"])]
    rows = down.merge(spiked[["entity_type", "entity_id", "roas_7d", "roas_matured"]], on=["entity_type", "entity_id"])
    rows = rows[rows["roas_7d"] > ROAS_LOW].reset_index(drop=True)
    rows["reason"] = [
        f"purchases spiked down (z {row['z']:.1f}), but 7-day ROAS {row['roas_7d']:.2f} > {ROAS_LOW}{maturity_note(row)}: reported, not cut "
        f"(safety matrix: scale_down only when ROAS ≤ {ROAS_LOW})"
        for _, row in rows.iterrows()
    ]
    return rows


def hysteresis(holders: pd.DataFrame, history: pd.DataFrame | None, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(may cut, may raise) per budget holder: one whose last budget change within HYSTERESIS_DAYS
    was a raise is cut only at a 7-day ROAS clearly below the hold band (< CLEARLY_LOW), one last
    cut is raised only clearly above it (> CLEARLY_HIGH); rollbacks do not count."""
    direction = np.full(len(holders), "", dtype=object)
    if history is not None and not history.empty and len(holders):
        recent = history[
            history["type"].isin(["scale_up", "scale_down"]) & history["rule"].ne("rollback")
            & ((as_of - history["executed_at"]) < pd.Timedelta(days=HYSTERESIS_DAYS))
        ].sort_values("executed_at")
        last = recent.drop_duplicates(["entity_type", "entity_id"], keep="last").set_index(["entity_type", "entity_id"])["type"]
        direction = pd.MultiIndex.from_frame(holders[["entity_type", "entity_id"]]).map(last.get).to_numpy(dtype=object)
    roas = holders["roas_7d"].to_numpy(dtype=float)
    return (direction != "scale_up") | (roas < CLEARLY_LOW), (direction != "scale_down") | (roas > CLEARLY_HIGH)


def roas_since_last_change(holders: pd.DataFrame, history: pd.DataFrame | None, snapshot: AccountSnapshot) -> np.ndarray:
    """Per budget holder whose budget changed within HYSTERESIS_DAYS: its reported ROAS over the
    full days after the day of its last change (NaN: no full day yet, or no spend on them);
    +inf for a holder with no such change, which nothing holds back. The 7-day window lags a
    change: a raised entity would otherwise keep being judged on its days before the raise."""
    since = np.full(len(holders), np.inf)
    if history is None or history.empty or not len(holders):
        return since
    recent = history[
        history["type"].isin(BUDGET_TYPES) & history["rule"].ne("rollback")
        & ((snapshot.as_of - history["executed_at"]) < pd.Timedelta(days=HYSTERESIS_DAYS))
    ]
    last = recent.groupby(["entity_type", "entity_id"])["executed_at"].max()
    changed_at = pd.to_datetime(pd.Series(pd.MultiIndex.from_frame(holders[["entity_type", "entity_id"]]).map(last.get)), utc=True)
    first_day = changed_at.dt.tz_convert(snapshot.timezone_name).dt.normalize().dt.tz_localize(None) + pd.Timedelta(days=1)
    window = window_insights(snapshot)
    for level, id_column in BUDGET_LEVELS:
        at_level = (holders["entity_type"].to_numpy() == level) & first_day.notna().to_numpy()
        if not at_level.any():
            continue
        starts = pd.DataFrame({id_column: holders["entity_id"].to_numpy()[at_level], "first_day": first_day.to_numpy()[at_level]})
        rows = window.merge(starts, on=id_column)
        sums = rows[rows["date"] >= rows["first_day"]].groupby(id_column)[["spend", "revenue"]].sum()
        sums = sums.reindex(starts[id_column])
        with np.errstate(divide="ignore", invalid="ignore"):
            since[at_level] = np.where(sums["spend"].to_numpy() > 0, (sums["revenue"] / sums["spend"]).to_numpy(), np.nan)
    return since


def refreshable(live: pd.DataFrame, metrics: pd.DataFrame) -> np.ndarray:
    """Per row: an ad whose ad set may take a new creative. A variant is a new ad in the ad set, a
    significant edit that restarts its learning phase (CPA about × 1.25 until ~50 optimization
    events within 7 days): not while the ad set is still learning, and only where its last 7 days
    brought the LEARNING_EXIT_EVENTS purchases that take it out again within a week."""
    adsets = metrics[metrics["entity_type"].eq("adset")].set_index("entity_id")["purchases_7d"]
    events = live["adset_id"].map(adsets).fillna(0.0).to_numpy(dtype=float)
    learning = live["learning_adsets"].map(len).to_numpy() > 0
    return ~learning & (events >= LEARNING_EXIT_EVENTS)


def maturity_note(row: pd.Series) -> str:
    """What late conversions will make of the judged 7-day ROAS: " (1.46 observed, 1.56 expected
    when matured)", or nothing when they change it by less than a cent."""
    observed, expected = row["roas_7d"], row["roas_matured"]
    if f"{observed:.2f}" == f"{expected:.2f}":
        return ""
    return f" ({observed:.2f} observed, {expected:.2f} expected when matured)"


def scale_pct(strength: pd.Series, confidence: pd.Series) -> pd.Series:
    """20 % plus up to 20 % more for a stronger signal held with more confidence."""
    # Rounded to 0.1 %: finer steps are noise, and 20.04 % would read as "clamped from 20 % to 20 %".
    return (SCALE_MIN + (SCALE_MAX - SCALE_MIN) * strength.clip(0, 1) * confidence.fillna(0).clip(0, 1)).round(3)


def propose_actions(
    snapshot: AccountSnapshot,
    metrics: pd.DataFrame,
    ab_tests: pd.DataFrame,
    spikes: pd.DataFrame,
    fatigue: pd.DataFrame,
    settings: Settings,
    scope: pd.Series,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Candidate actions (verdict ``proposed``) for the campaigns in ``scope`` (campaign ids,
    :func:`campaigns_in_scope`); ``history`` (engine/history.py) feeds the hysteresis.

    Hard stops are looked for in every active campaign, in scope or not: they only cut spend, and
    a low-spend money pit outside the top MAX_CAMPAIGNS_PER_TICK must not run on forever.
    """
    active = metrics[metrics["effective_active"]]
    live = active[active["campaign_id"].isin(scope)]
    holders = live[live["is_budget_holder"]]
    # The seed's min_confidence: no budget action on a ROAS held with less confidence than this.
    # Budget rules judge the reported 7-day ROAS; its matured value (late conversions included,
    # engine/metrics.py) is shown beside it. Measured on the simulated market, deciding on the
    # matured ROAS cut less and raised more, and earned less (BENCHMARKS.md).
    holders = holders[(holders["confidence"] >= MIN_CONFIDENCE).to_numpy()]
    roas = holders["roas_7d"]
    spike = holders[["entity_type", "entity_id"]].merge(spikes, how="left")["direction"].fillna("none").to_numpy()
    may_cut, may_raise = hysteresis(holders, history, snapshot.as_of)
    # A raise also needs the days since the last budget change to be above ROAS_HIGH (NaN: wait).
    may_raise &= roas_since_last_change(holders, history, snapshot) > ROAS_HIGH

    policy = PolicyEngine(settings)
    halt, _ = policy.must_halt(active["roas_7d"], active["confidence"], active["spend_7d"])
    winners = _winners_by_ad(ab_tests)
    fatigued = fatigue[fatigue["fatigued"]]

    candidates = [
        _rule(active[halt], "pause", "hard_stop", None, lambda m: [
            policy.hard_stop_reason(r, c) for r, c in zip(m["roas_7d"], m["confidence"])
        ]),
        _rule(
            live[(live["entity_type"] == "ad") & live["entity_id"].isin(winners["winner_ad_id"])],
            "publish_winner", "ab_winner", None,
            lambda m: [
                f"A/B test {t.test_id}: ad {t.winner_ad_id} is best with probability {t.prob_best:.3f}; "
                f"pause {', '.join(t.loser_ad_ids)}"
                for t in m[["entity_id"]].merge(winners, left_on="entity_id", right_on="winner_ad_id").itertuples()
            ],
        ),
        _rule(holders[(roas < ROAS_LOW).to_numpy() & may_cut], "scale_down", "roas_low",
              lambda m: scale_pct((ROAS_LOW - m["roas_7d"]) / ROAS_LOW, m["confidence"]),
              lambda m: [f"7-day ROAS {row['roas_7d']:.2f} < {ROAS_LOW}{maturity_note(row)}" for _, row in m.iterrows()]),
        _rule(holders[(spike == "down") & (roas <= ROAS_LOW).to_numpy() & may_cut], "scale_down", "spike_down", lambda m: SPIKE_CUT,
              lambda m: [f"purchases spiked down; cut {pct(SPIKE_CUT)}"] * len(m)),
        _rule(live[(live["entity_type"] == "ad") & live["entity_id"].isin(fatigued["entity_id"]) & refreshable(live, metrics)],
              "create_variant", "creative_fatigue", None,
              lambda m: [
                  f"creative fatigue: last-day CTR {f.ctr_last_day:.2%} is {f.ctr_drop:.0%} below the 7-day CTR {f.ctr_7d:.2%}"
                  for f in m[["entity_id"]].merge(fatigued, on="entity_id").itertuples()
              ]),
        _rule(holders[(roas > ROAS_HIGH).to_numpy() & may_raise], "scale_up", "roas_high",
              lambda m: scale_pct((m["roas_7d"] - ROAS_HIGH) / (FULL_STRENGTH_ROAS_HIGH - ROAS_HIGH), m["confidence"]),
              lambda m: [f"7-day ROAS {row['roas_7d']:.2f} > {ROAS_HIGH} (confidence {row['confidence']:.2f}){maturity_note(row)}" for _, row in m.iterrows()]),
        _rule(holders[(spike == "up") & (roas > SPIKE_UP_MIN_ROAS).to_numpy() & may_raise], "scale_up", "spike_up",
              lambda m: SPIKE_BOOST,
              lambda m: [f"purchases spiked up with ROAS {row['roas_7d']:.2f} > {SPIKE_UP_MIN_ROAS}{maturity_note(row)}; boost {pct(SPIKE_BOOST)}" for _, row in m.iterrows()]),
    ]
    found = [c for c in candidates if not c.empty]
    if not found:
        return empty_actions()
    actions = _drop_under_paused(_one_per_entity(pd.concat(found, ignore_index=True))).reset_index(drop=True)
    losers = winners.set_index("winner_ad_id")["loser_ad_ids"]
    actions["loser_ad_ids"] = actions["entity_id"].map(losers).where(actions["type"].eq("publish_winner"), None)
    unacted = spikes_not_acted_on(metrics, spikes)
    unacted = dict(zip(zip(unacted["entity_type"], unacted["entity_id"]), unacted["reason"]))
    noted = [unacted.get(entity) for entity in zip(actions["entity_type"], actions["entity_id"])]
    actions["reasons"] = [reasons + [n] if isinstance(n, str) else reasons for reasons, n in zip(actions["reasons"], noted)]

    as_of = snapshot.as_of.isoformat()
    actions["entity_name"] = actions["name"]
    actions["id"] = [action_id(as_of, t, e, a) for t, e, a in zip(actions["entity_type"], actions["entity_id"], actions["type"])]
    actions["current_budget_minor"] = actions["daily_budget"].where(actions["type"].isin(["scale_up", "scale_down"]))
    actions["amount_pct"] = actions["proposed_pct"]
    actions["new_budget_minor"] = np.nan
    # The youngest entity the action writes (an A/B decision writes every arm) sets its age.
    # The ages of the entities the actions write, not of the whole table (every ad of the account).
    written = metrics[metrics["entity_id"].isin(written_entities(actions)["entity_id"])]
    ages = written.set_index(["entity_type", "entity_id"])["created_time"]
    actions["age_hours"] = over_written_entities(actions, (snapshot.as_of - ages).dt.total_seconds() / 3600)
    actions["hours_since_last_action"] = np.nan
    actions["hours_since_creative_change"] = np.nan
    actions["changed_24h_pct"] = 0.0
    actions["budget_edits_1h"] = 0
    actions["minor_per_unit"] = snapshot.minor_per_unit
    actions["unit_id"] = None
    actions["verdict"] = "proposed"
    return actions[ACTION_COLUMNS].reset_index(drop=True)


def _winners_by_ad(ab_tests: pd.DataFrame) -> pd.DataFrame:
    """Tests with a winner, one row per winning ad: an ad that wins several tests gets one
    publish_winner that pauses the losers of all of them."""
    winners = ab_tests[ab_tests["status"] == "winner"]
    return winners.groupby("winner_ad_id", as_index=False, sort=False).agg(
        test_id=("test_id", ", ".join),
        prob_best=("prob_best", "min"),
        loser_ad_ids=("loser_ad_ids", lambda tests: tuple(dict.fromkeys(ad for losers in tests for ad in losers))),
    )


def _rule(rows: pd.DataFrame, action_type: str, rule: str, proposed, explain) -> pd.DataFrame:
    if rows.empty:
        return rows.iloc[0:0]
    out = rows.copy()
    out["type"] = action_type
    out["rule"] = rule
    out["proposed_pct"] = np.nan if proposed is None else proposed(out)
    out["reasons"] = [[text] for text in explain(out)]
    return out


def _one_per_entity(actions: pd.DataFrame) -> pd.DataFrame:
    """Keep the first action per entity in rule order (larger change first within a rule order tie)."""
    actions["rule_rank"] = actions["rule"].map({rule: rank for rank, rule in enumerate(RULE_ORDER)})
    # Two cuts or two raises on one entity: the larger one wins, whatever rule proposed it.
    actions["direction_rank"] = actions["type"].map({"pause": 0, "publish_winner": 1, "scale_down": 2, "create_variant": 3, "scale_up": 4})
    actions = actions.sort_values(["direction_rank", "proposed_pct", "rule_rank"], ascending=[True, False, True], na_position="last")
    keys = ["entity_type", "entity_id"]
    second = actions.duplicated(keys).to_numpy()
    overruled: dict[tuple[str, str], list[str]] = {}  # few entities get two rules: a dict, not a groupby
    for entity, rule in zip(zip(actions["entity_type"].to_numpy()[second], actions["entity_id"].to_numpy()[second]),
                            actions["rule"].to_numpy()[second]):
        overruled.setdefault(entity, []).append(rule)
    kept = actions[~second].copy()
    kept["reasons"] = [
        reasons + ([f"also proposed by {', '.join(overruled[entity])}; overruled"] if entity in overruled else [])
        for reasons, entity in zip(kept["reasons"], zip(kept["entity_type"].to_numpy(), kept["entity_id"].to_numpy()))
    ]
    return kept.drop(columns=["rule_rank", "direction_rank"])


def _drop_under_paused(actions: pd.DataFrame) -> pd.DataFrame:
    """Nothing is proposed for an ad set or ad whose campaign or ad set is being paused."""
    paused = actions[actions["type"] == "pause"]
    paused_campaigns = paused.loc[paused["entity_type"] == "campaign", "entity_id"]
    paused_adsets = paused.loc[paused["entity_type"] == "adset", "entity_id"]
    under_campaign = actions["entity_type"].ne("campaign") & actions["campaign_id"].isin(paused_campaigns)
    under_adset = actions["entity_type"].eq("ad") & actions["adset_id"].isin(paused_adsets)
    return actions[~(under_campaign | under_adset)]
