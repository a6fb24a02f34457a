"""STEP 1 of the cycle, collection: thin asset shells around the engine's pure functions."""


import dataclasses

import pandas as pd
from dagster import AssetExecutionContext, Backoff, Failure, Jitter, MetadataValue, RetryPolicy, asset

from ..engine.ab_tests import evaluate_ab_tests
from ..engine.fatigue import detect_fatigue
from ..engine.metrics import entity_table, roas_metrics as compute_roas_metrics, window_insights
from ..engine.snapshot import AccountSnapshot, SnapshotError, parse_snapshot
from ..engine.spikes import detect_spikes
from ..meta.client import MetaAdsClient

GROUP = "collection"
# Reading the account is idempotent: retry transient failures with backoff and jitter.
READ_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def _preview(frame: pd.DataFrame, rows: int = 20) -> MetadataValue:
    return MetadataValue.md(frame.head(rows).to_markdown(index=False) if not frame.empty else "_empty_")


@asset(group_name=GROUP, retry_policy=READ_RETRY, kinds={"python"})
def account_snapshot(context: AssetExecutionContext, meta_client: MetaAdsClient) -> AccountSnapshot:
    """The ad account at this moment (campaigns, ad sets, ads, creatives, insights), validated.

    A document that breaks the snapshot format fails this step with a message naming the object
    and field; nothing downstream runs, so nothing is executed or written.
    """
    meta_client.sync_insights()
    try:
        snapshot = parse_snapshot(meta_client.fetch_snapshot())
    except SnapshotError as exc:
        # A rejected document is not transient: fail now instead of retrying it (each retry would
        # sync again, advancing the stub's clock, and only delay the same answer).
        raise Failure(description=str(exc), allow_retries=False) from exc
    context.add_output_metadata(
        {
            "account_id": snapshot.account_id,
            "as_of": snapshot.as_of.isoformat(),
            "campaigns": len(snapshot.campaigns),
            "adsets": len(snapshot.adsets),
            "ads": len(snapshot.ads),
        }
    )
    return snapshot


def with_insights(snapshot: AccountSnapshot, insights: pd.DataFrame) -> AccountSnapshot:
    """The snapshot whose insights are the ``insights`` asset's (so lineage tells the truth)."""
    return dataclasses.replace(snapshot, insights=insights)


@asset(group_name=GROUP, kinds={"pandas"})
def insights(context: AssetExecutionContext, account_snapshot: AccountSnapshot) -> pd.DataFrame:
    """Daily ad-level insights by country: spend, impressions, clicks, purchases, revenue."""
    frame = account_snapshot.insights
    window = window_insights(account_snapshot)
    context.add_output_metadata(
        {
            "rows": len(frame),
            "spend_7d": float(window["spend"].sum()),
            "revenue_7d": float(window["revenue"].sum()),
            "spend_today": float(frame.loc[frame["date"] == account_snapshot.today, "spend"].sum()),
        }
    )
    return frame


@asset(group_name=GROUP, kinds={"pandas"})
def roas_metrics(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """7-day ROAS, CTR and ROAS confidence for every campaign, ad set and ad."""
    snapshot = with_insights(account_snapshot, insights)
    metrics = compute_roas_metrics(snapshot, entity_table(snapshot))
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    spend, revenue = campaigns["spend_7d"].sum(), campaigns["revenue_7d"].sum()
    context.add_output_metadata(
        {
            "account_roas_7d": float(revenue / spend) if spend else 0.0,
            "campaigns": _preview(campaigns[["entity_id", "name", "status", "spend_7d", "roas_7d", "confidence"]].round(3)),
        }
    )
    return metrics


@asset(group_name=GROUP, kinds={"pandas"})
def ab_tests(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """A/B tests with each arm's probability to be best and a winner when one is clear."""
    snapshot = with_insights(account_snapshot, insights)
    tests = evaluate_ab_tests(snapshot, entity_table(snapshot))
    context.add_output_metadata({"tests": len(tests), "winners": int((tests["status"] == "winner").sum()), "preview": _preview(tests)})
    return tests


@asset(group_name=GROUP, kinds={"pandas"})
def spikes(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """Purchase spikes (up or down) of each budget holder on the last full day."""
    snapshot = with_insights(account_snapshot, insights)
    frame = detect_spikes(snapshot, entity_table(snapshot))
    context.add_output_metadata(
        {"spikes_up": int((frame["direction"] == "up").sum()), "spikes_down": int((frame["direction"] == "down").sum())}
    )
    return frame


@asset(group_name=GROUP, kinds={"pandas"})
def creative_fatigue(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """Ads whose last-day CTR fell ≥ 30 % below their 7-day CTR."""
    snapshot = with_insights(account_snapshot, insights)
    frame = detect_fatigue(snapshot, entity_table(snapshot))
    context.add_output_metadata({"fatigued_ads": int(frame["fatigued"].sum())})
    return frame
