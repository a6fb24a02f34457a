"""The collection assets and asset checks, invoked directly (no run) with the stub client."""

from __future__ import annotations

import inspect
import json

import pandas as pd
import pytest
from dagster import AssetCheckResult, Failure, Output, TableMetadataValue, build_asset_context

from meta_ads_dagster.assets.collection import (
    ab_tests,
    account_snapshot,
    creative_fatigue,
    insights,
    roas_metrics,
    spikes,
)
from meta_ads_dagster.checks import executed_actions_within_guard_rails, roas_metrics_are_sane
from meta_ads_dagster.engine.cycle import analyze, plan_cycle
from meta_ads_dagster.engine.snapshot import AccountSnapshot, parse_snapshot
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings


@pytest.fixture
def client(tmp_path) -> StubMetaAdsClient:
    return StubMetaAdsClient(state_dir=str(tmp_path / "stub"), account_id="act_1001")


ACCOUNT = "act_1001"


def invoke(asset_fn, resources=None, partition_key=ACCOUNT, **inputs):
    """Direct invocation for one account (the partition); the context is closed right away (it
    owns an ephemeral instance)."""
    with build_asset_context(resources=resources, partition_key=partition_key) as context:
        result = asset_fn(context=context, **inputs)
        return result if not inspect.isgenerator(result) else list(result)


def metrics_and_check(snapshot, insights_frame) -> tuple[pd.DataFrame, AssetCheckResult]:
    """``roas_metrics`` yields its value and then its check's result, in the same step."""
    output, check = invoke(roas_metrics, account_snapshot=snapshot, insights=insights_frame)
    assert isinstance(output, Output) and isinstance(check, AssetCheckResult)
    return output.value, check


@pytest.fixture
def snapshot(client):
    return invoke(account_snapshot, resources={"meta_client": client})


def test_account_snapshot_syncs_then_parses(client):
    with build_asset_context(resources={"meta_client": client}, partition_key=ACCOUNT) as context:
        snap = account_snapshot(context)
        metadata = context.get_output_metadata("result")
        assert metadata["campaigns"] == 8
        assert (metadata["api_calls"], metadata["api_errors"], metadata["api_retries"]) == (0, 0, 0)  # the stub sends no request
    assert snap.account_id == "act_1001" and snap.as_of == pd.Timestamp("2026-11-20T10:00:00+00:00")
    assert len(snap.campaigns) == 8
    assert [w["method"] for w in client.writes] == ["sync_insights"]
    # The resource can also be passed as an argument; the second sync moves the stub clock on.
    again = invoke(account_snapshot, meta_client=client)
    assert again.as_of == pd.Timestamp("2026-11-20T10:30:00+00:00")


def test_account_snapshot_rejects_a_broken_document(tmp_path):
    document = demo_snapshot()
    document["insights"][2]["clicks"] = str(int(document["insights"][2]["impressions"]) + 1)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    client = StubMetaAdsClient(state_dir=str(tmp_path / "stub"), snapshot_path=str(path))
    with pytest.raises(Failure, match=r"insights\[2\].*clicks") as caught:
        invoke(account_snapshot, resources={"meta_client": client})
    # Not transient: the run must not retry it.
    assert caught.value.allow_retries is False


def test_the_location_wide_client_reads_the_runs_account(tmp_path):
    """One resource serves every account: each run reads (and keeps stub state for) its partition's."""
    shared = StubMetaAdsClient(state_dir=str(tmp_path / "stub"))  # as resources.py builds it: no account
    first = invoke(account_snapshot, resources={"meta_client": shared}, partition_key="act_1001")
    second = invoke(account_snapshot, resources={"meta_client": shared}, partition_key="act_2002")
    assert (first.account_id, second.account_id) == ("act_1001", "act_2002")
    assert set(first.campaigns["id"]).isdisjoint(second.campaigns["id"])  # Graph ids are unique across accounts
    assert sorted(path.name for path in (tmp_path / "stub").glob("*.json")) == ["stub_act_1001.json", "stub_act_2002.json"]
    assert shared.account_id == ""  # binding made new clients; the shared one is untouched


class OtherAccountClient(StubMetaAdsClient):
    """Serves act_1001's document whatever account it reads (the stub itself refuses to)."""

    def fetch_snapshot(self) -> dict:
        return demo_snapshot("act_1001")

    def fetch_account(self) -> AccountSnapshot:
        return parse_snapshot(self.fetch_snapshot())  # the stub's own reads its state's files


def test_a_snapshot_of_another_account_fails_the_run(tmp_path):
    client = OtherAccountClient(state_dir=str(tmp_path / "stub"))
    with pytest.raises(Failure, match="account.id: the snapshot is of act_1001, not of this run's account act_3003") as caught:
        invoke(account_snapshot, resources={"meta_client": client}, partition_key="act_3003")
    assert caught.value.allow_retries is False


def test_the_stub_refuses_a_file_of_another_account_before_storing_it(tmp_path):
    path = tmp_path / "act_1001.json"
    path.write_text(json.dumps(demo_snapshot("act_1001")))
    client = StubMetaAdsClient(state_dir=str(tmp_path / "stub"), snapshot_path=str(path))
    with pytest.raises(Failure, match=r"act_1001\.json: account.id: the snapshot is of act_1001, not of act_3003") as caught:
        invoke(account_snapshot, resources={"meta_client": client}, partition_key="act_3003")
    assert caught.value.allow_retries is False
    assert not (tmp_path / "stub").exists()


def test_derived_assets_return_the_engines_frames(snapshot):
    output, *checks = insights(settings=load_settings(), account_snapshot=snapshot)
    frame = output.value
    pd.testing.assert_frame_equal(frame, snapshot.insights)
    # The insights' own checks come in the same step, after the value: all pass on the demo.
    assert [(c.check_name, c.passed) for c in checks] == [
        ("insights_are_fresh", True), ("insight_rows_are_possible", True), ("no_tracking_outage", True),
    ]

    expected = analyze(snapshot)
    metrics, check = metrics_and_check(snapshot, frame)
    pd.testing.assert_frame_equal(metrics, expected["roas_metrics"])
    assert check.check_name == "roas_metrics_are_sane" and check.passed
    campaigns = metrics[metrics["entity_type"] == "campaign"].set_index("entity_id")
    assert len(campaigns) == 8
    assert campaigns.loc["1001001", "roas_7d"] == pytest.approx(3.1, abs=0.1)
    assert campaigns.loc["1001001", "daily_budget"] == 50000
    assert metrics["confidence"].between(0, 1).all()

    tests = invoke(ab_tests, account_snapshot=snapshot, insights=frame)
    pd.testing.assert_frame_equal(tests, expected["ab_tests"])
    assert tests["status"].tolist() == ["winner"]
    assert list(tests["loser_ad_ids"].iloc[0]) == ["1001022"]

    found = invoke(spikes, account_snapshot=snapshot, insights=frame)
    pd.testing.assert_frame_equal(found, expected["spikes"])
    ups = found[found["direction"] == "up"]
    assert list(zip(ups["entity_type"], ups["entity_id"])) == [("campaign", "1001036")]  # "Flash sale"

    tired = invoke(creative_fatigue, account_snapshot=snapshot, insights=frame)
    pd.testing.assert_frame_equal(tired, expected["creative_fatigue"])
    assert tired.loc[tired["fatigued"], "entity_id"].tolist() == ["1001034"]  # "Video - fatigue"


def test_downstream_assets_read_the_insights_input(snapshot):
    """Lineage tells the truth: the metrics come from the ``insights`` asset, not the snapshot's copy."""
    without_bf = snapshot.insights[snapshot.insights["campaign_id"] != "1001001"]
    metrics, _ = metrics_and_check(snapshot, without_bf)
    campaign = metrics[(metrics["entity_type"] == "campaign") & (metrics["entity_id"] == "1001001")].iloc[0]
    assert campaign["spend_7d"] == 0
    full, _ = metrics_and_check(snapshot, snapshot.insights)
    assert full.set_index(["entity_type", "entity_id"]).loc[("campaign", "1001001"), "spend_7d"] > 300


def test_asset_checks_pass_on_a_cycle_and_fail_on_bad_values():
    snap = parse_snapshot(demo_snapshot())
    metrics = analyze(snap)["roas_metrics"]
    assert roas_metrics_are_sane(roas_metrics=metrics).passed
    broken = metrics.copy()
    broken.loc[broken.index[0], "confidence"] = 1.5
    result = roas_metrics_are_sane(roas_metrics=broken)
    assert not result.passed and result.metadata["bad_confidence"].value == 1

    settings = load_settings(meta_auto_mode="auto")
    actions, _ = plan_cycle(snap, settings)
    assert executed_actions_within_guard_rails(settings=settings, optimization_cycle=actions, account_snapshot=snap).passed
    too_far = actions.copy()
    row = too_far.index[(too_far["entity_id"] == "1001001")][0]
    too_far.loc[row, ["amount_pct", "new_budget_minor"]] = [0.5, 75000]
    result = executed_actions_within_guard_rails(settings=settings, optimization_cycle=too_far, account_snapshot=snap)
    assert not result.passed and result.metadata["over_change_limit"].value == 1


def test_collection_assets_attach_their_tables(snapshot):
    """roas_metrics ranks the campaigns, ab_tests lists every arm, as tables with a schema."""
    frame = snapshot.insights  # the insights asset's value (its checks are tested above)
    output, _ = invoke(roas_metrics, account_snapshot=snapshot, insights=frame)
    ranking = output.metadata["campaigns_by_roas"]
    assert isinstance(ranking, TableMetadataValue)
    ranked = [record.data for record in ranking.records]
    assert len(ranked) == 8 and [row["rank"] for row in ranked] == list(range(1, 9))  # 8 campaigns: all of them
    assert [row["roas_7d"] for row in ranked] == sorted((row["roas_7d"] for row in ranked), reverse=True)

    with build_asset_context(partition_key=ACCOUNT) as context:
        ab_tests(context=context, account_snapshot=snapshot, insights=frame)
        arms = context.get_output_metadata("result")["arms"]
    assert isinstance(arms, TableMetadataValue)
    assert [(r.data["ad"], r.data["best"]) for r in arms.records] == [("Spring A (1001020)", True), ("Spring B (1001022)", False)]
