"""Asset checks: declared safety nets that show up beside the assets in the UI.

Each is declared on its asset (``check_specs``) and evaluated in that asset's own step, on the
run's account: the checks are partitioned exactly like the assets without needing a partitioned
check of their own. Their bodies are plain functions, testable alone.
"""


import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from .engine.actions import is_approval, written_entities
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


def executed_actions_within_guard_rails(
    settings: Settings, optimization_cycle: pd.DataFrame, account_snapshot: AccountSnapshot
) -> AssetCheckResult:
    """What this cycle executed kept the account's guard rails: every budget change within the
    limit it was allowed under (MAX_DAILY_CHANGE_PCT for a person's approval, the mode's limit
    otherwise), no raised campaign's total daily budget above MAX_CAMPAIGN_BUDGET_USD, no entity
    written twice, and at most MAX_ACTIONS_PER_TICK executed actions besides hard stops.

    Recomputed from the snapshot's own budgets, not from the engine's arithmetic."""
    settings = settings.for_account(account_snapshot.account_id)
    snap = account_snapshot
    executed = optimization_cycle[optimization_cycle["verdict"] == "executed"].reset_index(drop=True)
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
    over_tick = max(0, live - settings.max_actions_per_tick)
    return AssetCheckResult(
        check_name="executed_actions_within_guard_rails",
        passed=over_limit == 0 and over_max == 0 and over_tick == 0 and written_twice == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"over_change_limit": over_limit, "over_campaign_max": over_max, "over_tick_limit": over_tick,
                  "entities_written_twice": written_twice, "live_actions": live},
    )


ROAS_CHECK = AssetCheckSpec("roas_metrics_are_sane", asset="roas_metrics", description=roas_metrics_are_sane.__doc__)
GUARD_RAIL_CHECK = AssetCheckSpec(
    "executed_actions_within_guard_rails", asset="optimization_cycle", description=executed_actions_within_guard_rails.__doc__
)
