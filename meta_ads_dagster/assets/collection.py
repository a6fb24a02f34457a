"""STEP 1 of the cycle, collection: thin asset shells around the engine's pure functions."""


import dataclasses

import pandas as pd
from dagster import AssetExecutionContext, Backoff, Failure, Jitter, Output, ResourceParam, RetryPolicy, asset

from ..checks import (
    FRESH_INSIGHTS_CHECK, OUTAGE_CHECK, POSSIBLE_ROWS_CHECK, ROAS_CHECK, insight_rows_are_possible, insights_are_fresh, no_tracking_outage,
    roas_metrics_are_sane,
)
from ..engine.ab_tests import evaluate_ab_tests
from ..engine.fatigue import detect_fatigue
from ..engine.metrics import account_roas, entity_table, roas_metrics as compute_roas_metrics, window_insights
from ..engine.snapshot import AccountSnapshot, SnapshotError
from ..engine.spikes import detect_spikes
from ..io_manager import STORED_WITH
from ..jobs import ACCOUNT_TAG
from ..meta.client import MetaAdsClient
from ..meta.live import MetaApiError, MetaTransientError
from ..settings import Settings
from ..ui_metadata import ab_test_table, campaign_ranking, entity_names

GROUP = "collection"
# Reading the account is idempotent: retry transient failures with backoff and jitter.
READ_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@asset(group_name=GROUP, retry_policy=READ_RETRY, kinds={"python"})
def account_snapshot(context: AssetExecutionContext, meta_client: MetaAdsClient) -> AccountSnapshot:
    """The run's ad account (its partition) at this moment: campaigns, ad sets, ads, creatives,
    insights, validated.

    A document that breaks the snapshot format fails this step with a message naming the object
    and field; nothing downstream runs, so nothing is executed or written.
    """
    accounts = context.assets_def.partitions_def
    if not context.has_partition_key:
        # A run launched without a partition (`dagster job execute` without --tags) while several
        # accounts are configured (with one, the job's own tag names it): which account is not
        # ours to guess.
        configured = accounts.get_partition_keys()
        raise Failure(
            description=f"{ACCOUNT_TAG}: this run names no ad account and several are configured ({', '.join(configured)}): "
            f"add --tags '{{\"{ACCOUNT_TAG}\": \"{configured[0]}\"}}' to `dagster job execute`, or pick the account as the partition in the UI",
            allow_retries=False,
        )
    account = context.partition_key
    if accounts is not None and not accounts.has_partition_key(account):
        # A run tagged by hand with an account that is not (or no longer) configured: read nothing.
        raise Failure(description=f"dagster/partition: {account} is not a configured ad account", allow_retries=False)
    client = meta_client.for_account(account)
    try:
        client.sync_insights()
        snapshot = client.fetch_account()
    except (SnapshotError, MetaApiError) as exc:
        if isinstance(exc, MetaTransientError):
            raise  # the client's own retries ran out: the step's RetryPolicy may try again later
        # A rejected document, an invalid token or a refused request is not transient: fail now
        # instead of retrying the step (each retry would sync again and only delay the same answer).
        raise Failure(description=str(exc), allow_retries=False) from None
    if snapshot.account_id != account:
        # Every later step keys the ledger, lock and guard rails by the snapshot's account: one
        # that is not the run's would put another account's cycle under this account's name.
        raise Failure(description=f"account.id: the snapshot is of {snapshot.account_id}, not of this run's account {account}", allow_retries=False)
    context.add_output_metadata(
        {
            "account_id": snapshot.account_id,
            "as_of": snapshot.as_of.isoformat(),
            "campaigns": len(snapshot.campaigns),
            "adsets": len(snapshot.adsets),
            "ads": len(snapshot.ads),
            # The read's Graph API requests (plotted per account; zero in stub mode).
            **client.request_counts(),
        }
    )
    return snapshot


def analyze(analysis, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """Run an engine analysis ``(snapshot, entities) -> frame`` on the snapshot whose insights
    are the ``insights`` asset's (so the lineage tells the truth)."""
    snapshot = dataclasses.replace(account_snapshot, insights=insights)
    return analysis(snapshot, entity_table(snapshot))


# The insights are the snapshot's frame: stored once, with the snapshot (io_manager.py).
@asset(group_name=GROUP, kinds={"pandas"}, check_specs=[FRESH_INSIGHTS_CHECK, POSSIBLE_ROWS_CHECK, OUTAGE_CHECK],
       metadata={STORED_WITH: "account_snapshot.insights"})
def insights(settings: ResourceParam[Settings], account_snapshot: AccountSnapshot):
    """Daily ad-level insights by country: spend, impressions, clicks, purchases, revenue.

    Checked before anything decides on them: fresh and possible (blocking: a failure stops the
    run here, so nothing downstream runs and nothing is written), and no tracking outage (a
    warning: the plan holds what the outage makes doubtful)."""
    frame = account_snapshot.insights
    window = window_insights(account_snapshot)
    yield Output(
        frame,
        metadata={
            "rows": len(frame),
            "spend_7d": float(window["spend"].sum()),
            "revenue_7d": float(window["revenue"].sum()),
            "spend_today": float(frame.loc[frame["date"] == account_snapshot.today, "spend"].sum()),
        },
    )
    yield insights_are_fresh(settings, account_snapshot, frame)
    yield insight_rows_are_possible(account_snapshot, frame)
    yield no_tracking_outage(account_snapshot)


@asset(group_name=GROUP, kinds={"pandas"}, check_specs=[ROAS_CHECK])
def roas_metrics(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame):
    """7-day ROAS, CTR and ROAS confidence for every campaign, ad set and ad."""
    metrics = analyze(compute_roas_metrics, account_snapshot, insights)
    yield Output(
        metrics,
        metadata={
            "account_roas_7d": account_roas(metrics),
            "campaigns_by_roas": campaign_ranking(metrics, account_snapshot.currency),
        },
    )
    yield roas_metrics_are_sane(metrics)


@asset(group_name=GROUP, kinds={"pandas"})
def ab_tests(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """A/B tests with each arm's probability to be best and a winner when one is clear."""
    tests = analyze(evaluate_ab_tests, account_snapshot, insights)
    arms = ab_test_table(tests, entity_names(account_snapshot)["ad"])
    context.add_output_metadata({"tests": len(tests), "winners": int((tests["status"] == "winner").sum()), "arms": arms})
    return tests


@asset(group_name=GROUP, kinds={"pandas"})
def spikes(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """Purchase spikes (up or down) of each budget holder on the last full day."""
    frame = analyze(detect_spikes, account_snapshot, insights)
    context.add_output_metadata(
        {"spikes_up": int((frame["direction"] == "up").sum()), "spikes_down": int((frame["direction"] == "down").sum())}
    )
    return frame


@asset(group_name=GROUP, kinds={"pandas"})
def creative_fatigue(context: AssetExecutionContext, account_snapshot: AccountSnapshot, insights: pd.DataFrame) -> pd.DataFrame:
    """Ads whose last-day CTR fell ≥ 30 % below their 7-day CTR."""
    frame = analyze(detect_fatigue, account_snapshot, insights)
    context.add_output_metadata({"fatigued_ads": int(frame["fatigued"].sum())})
    return frame
