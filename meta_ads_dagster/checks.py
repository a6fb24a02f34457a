"""Asset checks: declared safety nets that show up beside the assets in the UI."""


import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetIn, ResourceParam, asset_check

from .assets.collection import roas_metrics
from .cycle.graph import optimization_cycle
from .engine.policy import EPS
from .engine.snapshot import AccountSnapshot
from .settings import Settings


@asset_check(asset=roas_metrics, description="ROAS is non-negative and every confidence lies in [0, 1].")
def roas_metrics_are_sane(roas_metrics: pd.DataFrame) -> AssetCheckResult:
    bad_roas = int((roas_metrics["roas_7d"].dropna() < 0).sum())
    bad_confidence = int((~roas_metrics["confidence"].between(0, 1)).sum())
    return AssetCheckResult(passed=bad_roas == 0 and bad_confidence == 0, metadata={"bad_roas": bad_roas, "bad_confidence": bad_confidence})


@asset_check(
    asset=optimization_cycle,
    additional_ins={"account_snapshot": AssetIn("account_snapshot")},
    description="Every executed budget change is within the mode's limit and MAX_CAMPAIGN_BUDGET_USD, "
    "and no more than MAX_ACTIONS_PER_TICK non-hard-stop actions were executed.",
)
def executed_actions_within_guard_rails(
    settings: ResourceParam[Settings], optimization_cycle: pd.DataFrame, account_snapshot: AccountSnapshot
) -> AssetCheckResult:
    settings = settings.for_account(account_snapshot.account_id)
    executed = optimization_cycle[optimization_cycle["verdict"] == "executed"]
    budget = executed[executed["type"].isin(["scale_up", "scale_down"])]
    over_limit = int((budget["amount_pct"].astype(float) > settings.budget_change_limit + EPS).sum())
    max_minor = settings.max_campaign_budget_usd * budget["minor_per_unit"].astype(float)
    over_max = int((budget["type"].eq("scale_up") & (budget["new_budget_minor"].astype(float) > max_minor + EPS)).sum())
    live = int((executed["rule"] != "hard_stop").sum())
    over_tick = max(0, live - settings.max_actions_per_tick)
    return AssetCheckResult(
        passed=over_limit == 0 and over_max == 0 and over_tick == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"over_change_limit": over_limit, "over_campaign_max": over_max, "over_tick_limit": over_tick, "live_actions": live},
    )
