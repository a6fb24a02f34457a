"""Asset checks: declared safety nets that show up beside the assets in the UI.

Each is declared on its asset (``check_specs``) and evaluated in that asset's own step, on the
run's account: the checks are partitioned exactly like the assets without needing a partitioned
check of their own. Their bodies are plain functions, testable alone.
"""


import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

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
    """Every executed budget change is within the mode's limit and MAX_CAMPAIGN_BUDGET_USD, and no
    more than MAX_ACTIONS_PER_TICK non-hard-stop actions were executed (the account's own limits)."""
    settings = settings.for_account(account_snapshot.account_id)
    executed = optimization_cycle[optimization_cycle["verdict"] == "executed"]
    budget = executed[executed["type"].isin(["scale_up", "scale_down"])]
    over_limit = int((budget["amount_pct"].astype(float) > settings.budget_change_limit + EPS).sum())
    max_minor = settings.max_campaign_budget_usd * budget["minor_per_unit"].astype(float)
    over_max = int((budget["type"].eq("scale_up") & (budget["new_budget_minor"].astype(float) > max_minor + EPS)).sum())
    live = int((executed["rule"] != "hard_stop").sum())
    over_tick = max(0, live - settings.max_actions_per_tick)
    return AssetCheckResult(
        check_name="executed_actions_within_guard_rails",
        passed=over_limit == 0 and over_max == 0 and over_tick == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"over_change_limit": over_limit, "over_campaign_max": over_max, "over_tick_limit": over_tick, "live_actions": live},
    )


ROAS_CHECK = AssetCheckSpec("roas_metrics_are_sane", asset="roas_metrics", description=roas_metrics_are_sane.__doc__)
GUARD_RAIL_CHECK = AssetCheckSpec(
    "executed_actions_within_guard_rails", asset="optimization_cycle", description=executed_actions_within_guard_rails.__doc__
)
