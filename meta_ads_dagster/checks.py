"""Asset checks: declared safety nets that show up beside the assets in the UI.

Each is declared on its asset (``check_specs``) and evaluated in that asset's own run, on the
run's account (in the asset's step, or in an op of its graph): the checks are partitioned exactly
like the assets without needing a partitioned check of their own. Their bodies are plain
functions, testable alone, which ``cycle.steps.run_cycle`` also runs without Dagster.

The blocking ones (``blocking=True``, ERROR severity) stand between the data and the writes: on
the insights (fresh, possible rows) and on the plan (within the guard rails, held on a tracking
outage). A failure stops the run before ``execute``; nothing is written to Meta.
"""


import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from .engine.actions import PROTECTIVE_TYPES, is_approval, written_entities
from .engine.outage import tracking_outage
from .engine.policy import EPS
from .engine.snapshot import AccountSnapshot
from .settings import Settings


def roas_metrics_are_sane(roas_metrics: pd.DataFrame) -> AssetCheckResult:
    """ROAS is non-negative and every confidence lies in [0, 1]."""
    bad_roas = int((roas_metrics["roas_7d"].dropna() < 0).sum())
    bad_confidence = int((~roas_metrics["confidence"].between(0, 1)).sum())
    return AssetCheckResult(
        check_name="roas_metrics_are_sane",
        passed=bad_roas == 0 and bad_confidence == 0,
        metadata={"bad_roas": bad_roas, "bad_confidence": bad_confidence},
    )


def guard_rail_breaches(settings: Settings, actions: pd.DataFrame, snapshot: AccountSnapshot) -> dict[str, int]:
    """How often the actions marked ``executed`` break a guard rail: a budget change beyond the
    limit it was allowed under (MAX_DAILY_CHANGE_PCT for a person's approval, the mode's limit
    otherwise), a raised campaign's total daily budget above MAX_CAMPAIGN_BUDGET_USD, an entity
    written twice, more than MAX_ACTIONS_PER_TICK executed actions besides hard stops, an entity
    inside its MIN_AGE_HOURS embargo written by anything but a hard-stop pause or a person's
    approved pause.

    Recomputed from the snapshot's own budgets and creation times, not from the engine's
    arithmetic (nor from the ages, changes and totals the engine wrote into the frame)."""
    settings = settings.for_account(snapshot.account_id)
    snap = snapshot
    executed = actions[actions["verdict"] == "executed"].reset_index(drop=True)
    budget = executed[executed["type"].isin(["scale_up", "scale_down"])]
    budgets_now = {("campaign", c.id): c.daily_budget for c in snap.campaigns.itertuples()} | {
        ("adset", a.id): a.daily_budget for a in snap.adsets.itertuples()
    }
    current = np.array([float(budgets_now.get(key, np.nan)) for key in zip(budget["entity_type"], budget["entity_id"])])
    limit = np.where(is_approval(budget), settings.max_daily_change_pct, settings.budget_change_limit)
    change = np.abs(budget["new_budget_minor"].astype(float).to_numpy() - current) / current
    over_limit = int((~(change <= limit + EPS)).sum())

    raised = budget[budget["type"].eq("scale_up")]
    over_max = 0
    if not raised.empty:
        new_budget = dict(zip(zip(raised["entity_type"], raised["entity_id"]), raised["new_budget_minor"].astype(float)))
        cbo = {("campaign", c.id): float(c.daily_budget) for c in snap.campaigns.itertuples() if pd.notna(c.daily_budget)}
        live_campaigns = set(snap.campaigns.loc[snap.campaigns["status"].eq("ACTIVE"), "id"])
        totals = {key[1]: new_budget.get(key, value) for key, value in cbo.items()}
        for adset in snap.adsets.itertuples():
            if pd.notna(adset.daily_budget) and adset.status == "ACTIVE" and adset.campaign_id in live_campaigns:
                totals[adset.campaign_id] = totals.get(adset.campaign_id, 0.0) + new_budget.get(("adset", adset.id), float(adset.daily_budget))
        cap = settings.max_campaign_budget_usd * snap.minor_per_unit
        over_max = sum(totals.get(campaign, 0.0) > cap + EPS for campaign in set(raised["campaign_id"]))

    written = written_entities(executed)
    written_twice = int(written.duplicated(["entity_type", "entity_id"]).sum())
    live = int((executed["rule"] != "hard_stop").sum())
    created = pd.concat(
        [frame[["id", "created_time"]].assign(entity_type=kind) for kind, frame in (("campaign", snap.campaigns), ("adset", snap.adsets), ("ad", snap.ads))]
    ).rename(columns={"id": "entity_id"})
    ages = written.merge(created, on=["entity_type", "entity_id"], how="left")
    young = ((snap.as_of - ages["created_time"]) < pd.Timedelta(hours=settings.min_age_hours)).to_numpy()
    pause = executed["type"].eq("pause") & (executed["rule"].eq("hard_stop") | pd.Series(is_approval(executed)))
    in_embargo = int((young & ~pause.to_numpy()[ages["position"].to_numpy()]).sum())
    return {
        "over_change_limit": over_limit, "over_campaign_max": over_max, "over_tick_limit": max(0, live - settings.max_actions_per_tick),
        "entities_written_twice": written_twice, "written_in_embargo": in_embargo,
    }


def _guard_rail_result(check_name: str, settings: Settings, actions: pd.DataFrame, snapshot: AccountSnapshot) -> AssetCheckResult:
    breaches = guard_rail_breaches(settings, actions, snapshot)
    broken = [f"{name}: {count}" for name, count in breaches.items() if count]
    return AssetCheckResult(
        check_name=check_name,
        passed=not broken,
        severity=AssetCheckSeverity.ERROR,
        description="guard rails broken: " + ", ".join(broken) if broken else None,
        metadata={**breaches, "live_actions": int(((actions["verdict"] == "executed") & (actions["rule"] != "hard_stop")).sum())},
    )


def executed_actions_within_guard_rails(
    settings: Settings, optimization_cycle: pd.DataFrame, account_snapshot: AccountSnapshot
) -> AssetCheckResult:
    """The audit of what this cycle wrote: the actions it executed kept the account's guard rails
    (:func:`guard_rail_breaches`)."""
    return _guard_rail_result("executed_actions_within_guard_rails", settings, optimization_cycle, account_snapshot)


def planned_actions_within_guard_rails(settings: Settings, plan: pd.DataFrame, account_snapshot: AccountSnapshot) -> AssetCheckResult:
    """Before anything is written: the actions the plan would execute keep the account's guard
    rails (:func:`guard_rail_breaches`, the same independent arithmetic as the audit after the writes)."""
    return _guard_rail_result("planned_actions_within_guard_rails", settings, plan, account_snapshot)


def plan_holds_on_tracking_outage(plan: pd.DataFrame, account_snapshot: AccountSnapshot) -> AssetCheckResult:
    """On a tracking outage (engine/outage.py) the plan writes nothing but pauses (the cycle's own
    hard stops, a person's approved pauses) and a person's approved cuts and A/B decisions: no raise,
    no creative variant, nothing of its own decided on the ROAS the outage pulled down."""
    outage = tracking_outage(account_snapshot)
    executed = plan[plan["verdict"] == "executed"]
    approval = is_approval(executed)
    pause = executed["type"].eq("pause").to_numpy()
    allowed = (pause & executed["rule"].eq("hard_stop").to_numpy()) | (approval & executed["type"].isin(PROTECTIVE_TYPES).to_numpy())
    written = 0 if outage is None else int((~allowed).sum())
    return AssetCheckResult(
        check_name="plan_holds_on_tracking_outage",
        passed=written == 0,
        severity=AssetCheckSeverity.ERROR,
        description=None if outage is None else f"{outage.describe()}: {written} action(s) the outage must hold would be written",
        metadata={"tracking_outage": outage is not None, "not_held": written, "outage_days": 0 if outage is None else len(outage.days)},
    )


def no_tracking_outage(account_snapshot: AccountSnapshot) -> AssetCheckResult:
    """The account's purchases did not fall to about zero on its last full day(s) while it kept
    spending (engine/outage.py). A warning, not a block: the plan still runs, to hold every action
    the outage makes doubtful and to carry out the hard stops that hold without the dark days."""
    outage = tracking_outage(account_snapshot)
    return AssetCheckResult(
        check_name="no_tracking_outage",
        passed=outage is None,
        severity=AssetCheckSeverity.WARN,
        description=None if outage is None else outage.describe() + ": every action but the hard stops it does not explain waits for a person",
        metadata={
            "outage_days": 0 if outage is None else len(outage.days),
            "purchases_reported": 0.0 if outage is None else outage.purchases,
            "purchases_expected": 0.0 if outage is None else round(outage.expected_purchases, 1),
        },
    )


def insights_are_fresh(settings: Settings, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> AssetCheckResult:
    """The newest insights row is no older than MAX_INSIGHTS_AGE_HOURS: the hours since the end of
    its day in the account's time zone (a row of today is 0 h old). An account with no active
    campaign passes: nothing of it spends, so nothing can be stale."""
    settings = settings.for_account(account_snapshot.account_id)
    delivering = bool(account_snapshot.campaigns["status"].eq("ACTIVE").any())
    newest = insights["date"].max() if not insights.empty else None
    if newest is None:
        age = float("inf")
    else:
        day_end = (newest + pd.Timedelta(days=1)).tz_localize(account_snapshot.timezone_name)
        age = max(0.0, (account_snapshot.as_of - day_end).total_seconds() / 3600)
    passed = not delivering or age <= settings.max_insights_age_hours
    shown_age = "no insights rows" if newest is None else f"the newest row is of {newest.date()}, {age:.1f} h old"
    return AssetCheckResult(
        check_name="insights_are_fresh",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=None if passed else f"stale insights: {shown_age} > MAX_INSIGHTS_AGE_HOURS {settings.max_insights_age_hours:g}",
        metadata={
            "newest_day": "none" if newest is None else str(newest.date()),
            "age_hours": round(age, 2) if np.isfinite(age) else -1.0,
            "max_age_hours": float(settings.max_insights_age_hours),
        },
    )


def impossible_insight_rows(insights: pd.DataFrame, today: pd.Timestamp) -> dict[str, pd.Series]:
    """Per rule, the insights rows no real ad day can produce. The parser refuses most of them in
    a document already; this also catches a frame that reached the cycle another way, and
    revenue without purchases, which the parser lets through (each field is valid alone).
    Purchases above clicks are *not* impossible: the 1-day view window counts purchases after an
    impression without a click, and 7-day click purchases land days after their click."""
    numbers = insights[["spend", "impressions", "clicks", "purchases", "revenue"]].astype(float)
    return {
        "negative_or_not_finite": ~np.isfinite(numbers).all(axis=1) | (numbers < 0).any(axis=1),
        "clicks_exceed_impressions": insights["clicks"] > insights["impressions"],
        "purchases_exceed_impressions": insights["purchases"] > insights["impressions"],
        "revenue_without_purchases": (insights["revenue"] > 0) & (insights["purchases"] == 0),
        "dated_after_today": insights["date"] > today,
    }


def insight_rows_are_possible(account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> AssetCheckResult:
    """No insights row is impossible (:func:`impossible_insight_rows`); the first offender is named."""
    found = impossible_insight_rows(insights, account_snapshot.today)
    counts = {rule: int(bad.sum()) for rule, bad in found.items()}
    first = [f"{rule} ({counts[rule]} row(s), first: ad {insights.loc[bad, 'ad_id'].iloc[0]} on {insights.loc[bad, 'date'].iloc[0].date()})"
             for rule, bad in found.items() if counts[rule]]
    return AssetCheckResult(
        check_name="insight_rows_are_possible",
        passed=not first,
        severity=AssetCheckSeverity.ERROR,
        description="impossible insights rows: " + "; ".join(first) if first else None,
        metadata=counts,
    )


ROAS_CHECK = AssetCheckSpec("roas_metrics_are_sane", asset="roas_metrics", description=roas_metrics_are_sane.__doc__)
GUARD_RAIL_CHECK = AssetCheckSpec(
    "executed_actions_within_guard_rails", asset="optimization_cycle", description=executed_actions_within_guard_rails.__doc__
)
# Blocking: a failure (ERROR) stops the run before anything downstream runs, so before execute writes.
FRESH_INSIGHTS_CHECK = AssetCheckSpec("insights_are_fresh", asset="insights", blocking=True, description=insights_are_fresh.__doc__)
POSSIBLE_ROWS_CHECK = AssetCheckSpec(
    "insight_rows_are_possible", asset="insights", blocking=True, description=insight_rows_are_possible.__doc__
)
OUTAGE_CHECK = AssetCheckSpec("no_tracking_outage", asset="insights", description=no_tracking_outage.__doc__)
PLAN_GUARD_RAIL_CHECK = AssetCheckSpec(
    "planned_actions_within_guard_rails", asset="cycle_plan", blocking=True, description=planned_actions_within_guard_rails.__doc__
)
PLAN_OUTAGE_CHECK = AssetCheckSpec(
    "plan_holds_on_tracking_outage", asset="cycle_plan", blocking=True, description=plan_holds_on_tracking_outage.__doc__
)
