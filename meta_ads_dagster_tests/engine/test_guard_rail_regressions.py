"""Issue 9's defects that show on a single snapshot, each with the numbers of the report, through
the whole dry-run cycle (``plan_cycle``) or the guard rail it concerns.

Each of these failed on the main branch the issue was filed against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from meta_ads_dagster.engine.approvals import supersede_by_approvals
from meta_ads_dagster.engine.history import changed_in_window, describe, history_frame
from meta_ads_dagster.engine.policy import PolicyEngine
from meta_ads_dagster.settings import load_settings

from .factories import (
    AdSetSpec, AdSpec, CampaignSpec, ab_test, ad_id, adset_id, campaign, campaign_id, make_action, make_snapshot,
    plan_actions, recent_action, steady_days,
)


def by_entity(actions: pd.DataFrame) -> pd.DataFrame:
    return actions.set_index("entity_id")


# --- 1. a hard stop is never held back by minimum data -------------------------------------------------
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_a_hard_stop_pauses_even_with_too_few_impressions(mode):
    # 700 impressions in the week (< MIN_IMPRESSIONS 1,000), 70 purchases at ROAS 0.3: confidence 0.91.
    doc = make_snapshot([campaign(roas=0.3, spend=150, purchases=10, impressions=100, clicks=5)])
    row = plan_actions(doc, meta_auto_mode=mode).iloc[0]
    assert (row["type"], row["rule"], row["verdict"]) == ("pause", "hard_stop", "executed")
    assert row["impressions_7d"] < 1000


# --- 3. MAX_CAMPAIGN_BUDGET_USD is the campaign's total -----------------------------------------------
def two_ad_sets(budget_usd: float) -> dict:
    adsets = [AdSetSpec(ads=[AdSpec(days=steady_days(spend=400, roas=4.0, purchases=40 - i))], daily_budget_usd=budget_usd) for i in range(2)]
    return make_snapshot([CampaignSpec(adsets=adsets, daily_budget_usd=None)])


def test_two_3000_ad_sets_of_one_campaign_are_not_raised_past_the_campaign_cap():
    """Issue 9 #3: both were raised to $3,300 (campaign total $6,600 > $5,000)."""
    actions = by_entity(plan_actions(two_ad_sets(3000), max_daily_spend_usd=100_000))
    for adset in (adset_id(0, 0), adset_id(0, 1)):
        assert actions.loc[adset, "verdict"] == "safety_blocked"
        assert actions.loc[adset, "reasons"][-1] == f"campaign cap: campaign {campaign_id(0)}'s total daily budget would exceed MAX_CAMPAIGN_BUDGET_USD 5000"


def test_raises_under_one_campaign_share_its_room_like_the_spend_cap():
    # $2,300 + $2,300 = $4,600: $400 of room. The more confident ad set gets it (clamped from +$460),
    # the other has nothing left.
    actions = by_entity(plan_actions(two_ad_sets(2300), max_daily_spend_usd=100_000))
    first, second = actions.loc[adset_id(0, 0)], actions.loc[adset_id(0, 1)]
    assert first["confidence"] > second["confidence"]
    assert (first["verdict"], first["new_budget_minor"]) == ("queued", 270_000)
    assert "raise clamped to the room left under MAX_CAMPAIGN_BUDGET_USD 5000 (the campaign's total daily budget)" in first["reasons"]
    assert second["verdict"] == "safety_blocked" and "campaign cap" in second["reasons"][-1]


# --- 6. the change limit is per rolling 24 h -----------------------------------------------------------
@pytest.mark.parametrize("used, verdict, new_budget", [
    (0.0, "proposed", 60_000),     # nothing changed in the last 24 h: the whole 20 %
    (0.15, "proposed", 52_500),    # 15 % used: 5 % left
    (0.18, "policy_blocked", None),  # 2 % left: not a meaningful change
    (0.20, "policy_blocked", None),
])
def test_the_change_limit_counts_what_the_last_24_h_already_changed(used, verdict, new_budget):
    row = PolicyEngine(load_settings()).evaluate(pd.DataFrame([make_action(proposed_pct=0.3, changed_24h_pct=used)])).iloc[0]
    assert row["verdict"] == verdict
    if new_budget is not None:
        assert row["new_budget_minor"] == new_budget
    else:
        assert row["reasons"][-1].startswith("rolling 24 h change limit reached:")


def test_the_24_h_change_counts_executed_budget_writes_of_any_path_but_not_rollbacks():
    as_of = pd.Timestamp("2026-11-25T10:30:00+00:00")
    rows = pd.DataFrame([
        {"entity_type": "campaign", "entity_id": "1", "type": "scale_up", "rule": "roas_high", "amount_pct": 0.10, "executed_at": as_of - pd.Timedelta(hours=20)},
        {"entity_type": "campaign", "entity_id": "1", "type": "scale_down", "rule": "roas_low", "amount_pct": 0.05, "executed_at": as_of - pd.Timedelta(hours=2)},
        {"entity_type": "campaign", "entity_id": "1", "type": "scale_down", "rule": "rollback", "amount_pct": 0.09, "executed_at": as_of - pd.Timedelta(hours=1)},
        {"entity_type": "campaign", "entity_id": "1", "type": "scale_up", "rule": "roas_high", "amount_pct": 0.20, "executed_at": as_of - pd.Timedelta(hours=25)},
        {"entity_type": "campaign", "entity_id": "2", "type": "pause", "rule": "hard_stop", "amount_pct": np.nan, "executed_at": as_of - pd.Timedelta(hours=1)},
    ])
    actions = pd.DataFrame([make_action(entity_id="1"), make_action(entity_id="2"), make_action(entity_id="3")])
    used = changed_in_window(actions, history_frame([rows]), as_of)
    assert used == pytest.approx([0.15, 0.0, 0.0])  # 10 % + 5 %; the rollback and the 25 h old raise do not count
    described = describe(actions, history_frame([rows]), as_of)
    assert described["hours_since_last_action"].tolist()[:2] == pytest.approx([1.0, 1.0]) and np.isnan(described["hours_since_last_action"].iloc[2])


# --- 8. embargoed campaigns take no per-tick slot ------------------------------------------------------
def test_an_embargoed_campaign_takes_no_slot_from_one_that_can_act():
    """Issue 9 #8: with MAX_CAMPAIGNS_PER_TICK=1 a 30 h old campaign was evaluated (and blocked)
    while a 10-day-old ROAS-4 campaign was never looked at."""
    young = campaign(roas=4.0, spend=900, purchases=40, age_hours=30)
    grown = campaign(roas=4.0, spend=100, purchases=30)
    actions = plan_actions(make_snapshot([young, grown]), max_campaigns_per_tick=1)
    assert actions["entity_id"].tolist() == [campaign_id(1)] and actions["verdict"].tolist() == ["queued"]


def test_hard_stops_still_reach_embargoed_campaigns():
    young_loser = campaign(roas=0.3, spend=300, purchases=30, age_hours=30)
    actions = plan_actions(make_snapshot([young_loser, campaign(roas=2.0)]), max_campaigns_per_tick=1)
    assert by_entity(actions).loc[campaign_id(0), ["type", "verdict"]].tolist() == ["pause", "executed"]


# --- 15. A/B decisions meet the rails on every arm -----------------------------------------------------
def ab_account(*, b_age_hours: float | None = None, test_started_hours_ago: float = 96, recent=(), second_test: bool = False) -> dict:
    strong = steady_days(spend=50, roas=2.5, purchases=30, impressions=2000, clicks=40)
    weak = steady_days(spend=50, roas=1.6, purchases=10, impressions=2000, clicks=40)
    ads = [AdSpec(days=strong), AdSpec(days=weak, age_hours=b_age_hours), AdSpec(days=strong)]
    tests = [ab_test([ad_id(0, 0, 0), ad_id(0, 0, 1)], started_hours_ago=test_started_hours_ago)]
    if second_test:  # the same loser in a second test, won by another ad
        tests.append(ab_test([ad_id(0, 0, 2), ad_id(0, 0, 1)], started_hours_ago=test_started_hours_ago, id="ab-2"))
    return make_snapshot([CampaignSpec(adsets=[AdSetSpec(ads=ads)])], ab_tests=tests, recent_actions=list(recent))


def publish(actions: pd.DataFrame) -> pd.DataFrame:
    return actions[actions["type"].eq("publish_winner")]


def test_an_ab_test_compares_its_arms_over_the_same_days():
    """Issue 9 #15: an arm added 30 h ago to a test begun 96 h ago was judged (and paused) on the
    test's age. Its days count from when the last arm joined: the test is too young to decide."""
    assert publish(plan_actions(ab_account())).shape[0] == 1
    late = plan_actions(ab_account(b_age_hours=30), meta_auto_mode="auto")
    assert publish(late).empty


def test_an_ab_decision_whose_loser_is_in_its_cooldown_waits():
    recent = [recent_action("ad", ad_id(0, 0, 1), hours_ago=10, type="create_variant")]
    row = publish(plan_actions(ab_account(recent=recent), meta_auto_mode="auto")).iloc[0]
    assert row["verdict"] == "safety_blocked" and "cooldown" in row["reasons"][-1]


def test_an_ad_that_loses_two_tests_is_paused_once():
    actions = publish(plan_actions(ab_account(second_test=True), meta_auto_mode="auto"))
    assert len(actions) == 2 and sorted(actions["verdict"]) == ["executed", "superseded"]
    superseded = actions[actions["verdict"].eq("superseded")].iloc[0]
    assert f"ad {ad_id(0, 0, 1)} is already written this cycle" in superseded["reasons"][-1]


@pytest.mark.parametrize("approval_verdict, hard_stop_verdict", [("deferred", "queued"), ("executed", "superseded")])
def test_a_queued_hard_stop_yields_only_to_an_approval_written_now(approval_verdict, hard_stop_verdict):
    """Found by the thousand-account run (seed 540): a person's approved A/B decision pausing ad X
    was deferred by the per-tick limit, and superseded this cycle's mass-paused hard stop on X; the
    hard stop then stood neither executed nor before a person."""
    stop = make_action(id="stop", entity_type="ad", entity_id="X", type="pause", rule="hard_stop", verdict="queued")
    approval = make_action(id="ab", entity_type="ad", entity_id="W", type="publish_winner", rule="ab_winner",
                           verdict=approval_verdict, loser_ad_ids=("X",))
    frame = pd.DataFrame([stop, approval]).assign(approved_in_run=[None, "cycle-1"])
    out = supersede_by_approvals(frame).set_index("id")
    assert out.loc["stop", "verdict"] == hard_stop_verdict
