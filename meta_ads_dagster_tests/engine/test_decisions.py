"""engine/decisions.py (and spikes, fatigue, A/B tests): each rule of the decision table on a small account.

Every scenario is a synthetic snapshot from the factory, run through the whole dry-run cycle
(``plan_cycle``), so the assertions are on what the cycle would really do with that account.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meta_ads_dagster.engine.ab_tests import RANDOM_SEED, evaluate_ab_tests, probability_to_be_best
from meta_ads_dagster.engine.cycle import analyze
from meta_ads_dagster.engine.decisions import spikes_not_acted_on
from meta_ads_dagster.engine.fatigue import detect_fatigue
from meta_ads_dagster.engine.metrics import entity_table
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.engine.spikes import detect_spikes

from .factories import (
    AdSetSpec, AdSpec, CampaignSpec, Day, ab_test, ad_id, adset_id, campaign, campaign_id, days_from, make_snapshot,
    plan_actions, recent_action, steady_days,
)

BUDGET = 500.0


def plan(doc, mode="suggest", **settings) -> pd.DataFrame:
    return plan_actions(doc, meta_auto_mode=mode, **settings)


def single(actions: pd.DataFrame) -> pd.Series:
    assert len(actions) == 1, actions[["type", "entity_type", "entity_id", "rule", "verdict", "reasons"]]
    return actions.iloc[0]


def budget(row, field="new_budget_minor") -> float:
    return row[field] / row["minor_per_unit"]


# --- roas_high / hold band / roas_low ----------------------------------------------------------------
@pytest.mark.parametrize("roas", [3.3, 4.0, 5.0, 6.0, 9.0])
def test_roas_high_scales_up_20_to_40_percent(roas):
    row = single(plan(make_snapshot([campaign(roas=roas, purchases=20, budget_usd=BUDGET)])))
    assert (row["type"], row["rule"], row["entity_type"]) == ("scale_up", "roas_high", "campaign")
    assert 0.20 <= row["proposed_pct"] <= 0.40
    strength = min(1.0, (roas - 3.0) / 3.0)
    assert row["proposed_pct"] == pytest.approx(0.20 + 0.20 * strength * row["confidence"], abs=0.0005)  # to 0.1 %
    # suggest mode: clamped to the 20 % daily limit and queued for a human.
    assert row["amount_pct"] == pytest.approx(0.20)
    assert budget(row) == pytest.approx(600.0)
    assert row["verdict"] == "queued"


def test_stronger_roas_proposes_a_larger_raise():
    proposals = [
        single(plan(make_snapshot([campaign(roas=roas, purchases=20)])))["proposed_pct"] for roas in (3.2, 4.0, 5.0)
    ]
    assert proposals == sorted(proposals) and proposals[0] < proposals[-1]


@pytest.mark.parametrize("roas", [1.5, 1.8, 2.2, 2.9, 3.0])
def test_hold_band_proposes_nothing(roas):
    assert plan(make_snapshot([campaign(roas=roas, purchases=20)])).empty


@pytest.mark.parametrize("roas", [0.95, 1.0, 1.2, 1.45])
def test_roas_low_scales_down(roas):
    row = single(plan(make_snapshot([campaign(roas=roas, purchases=20, budget_usd=BUDGET)])))
    assert (row["type"], row["rule"]) == ("scale_down", "roas_low")
    assert 0.20 <= row["proposed_pct"] <= 0.40
    assert row["amount_pct"] == pytest.approx(0.20)
    assert budget(row) == pytest.approx(400.0)
    assert row["verdict"] == "queued"


def test_budget_rules_act_on_the_budget_holder():
    per_adset = campaign(roas=4.0, purchases=20, cbo=False, budget_usd=200)
    row = single(plan(make_snapshot([per_adset])))
    assert (row["type"], row["entity_type"], row["entity_id"]) == ("scale_up", "adset", adset_id(0))
    assert budget(row, "current_budget_minor") == 200 and budget(row) == pytest.approx(240)


# --- hard stop --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_hard_stop_pauses_and_executes_in_both_modes(mode):
    doc = make_snapshot([campaign(roas=0.5, purchases=10)])  # 70 purchases: confidence 0.91
    row = single(plan(doc, mode))  # the ad set and ad would halt too, but nothing is proposed under a pause
    assert (row["type"], row["rule"], row["entity_type"], row["entity_id"]) == ("pause", "hard_stop", "campaign", campaign_id(0))
    assert row["confidence"] >= 0.70
    assert row["verdict"] == "executed"
    assert "also proposed by roas_low; overruled" in row["reasons"]


def test_hard_stop_needs_confidence():
    # 25 purchases in the week: confidence 0.68, below the hard stop's 0.70 but above the 0.65
    # every budget action needs, so only the ROAS cut is proposed.
    week = days_from(spend=[100] * 7, roas=0.5, purchases=[4, 3, 4, 3, 4, 3, 4])
    row = single(plan(make_snapshot([campaign(days=week)])))
    assert 0.65 <= row["confidence"] < 0.70
    assert (row["type"], row["rule"]) == ("scale_down", "roas_low")


def test_no_budget_action_below_the_seeds_min_confidence():
    # 7 purchases in the week: confidence 0.45 < 0.65 (the seed's min_confidence): nothing at all.
    doc = make_snapshot([campaign(roas=0.5, purchases=1), campaign(roas=4.5, purchases=1)])
    assert plan(doc).empty
    assert plan(doc, "auto").empty


def test_hard_stop_of_one_ad_leaves_its_siblings_alone():
    good = AdSpec(days=steady_days(spend=50, roas=2.4, purchases=10))
    bad = AdSpec(days=steady_days(spend=50, roas=0.7, purchases=7))
    doc = make_snapshot([CampaignSpec(daily_budget_usd=None, adsets=[AdSetSpec(ads=[good, bad], daily_budget_usd=100)])])
    row = single(plan(doc, "auto"))
    assert (row["type"], row["entity_type"], row["entity_id"], row["verdict"]) == ("pause", "ad", ad_id(0, 0, 1), "executed")


def test_hard_stop_threshold_comes_from_settings():
    doc = make_snapshot([campaign(roas=0.5, purchases=10)])
    assert single(plan(doc, hard_stop_roas=0.4))["rule"] == "roas_low"
    assert single(plan(doc, hard_stop_confidence=0.95))["rule"] == "roas_low"


# --- spikes -----------------------------------------------------------------------------------------
def spiky(baseline: float, last: float, roas: float) -> CampaignSpec:
    """7 baseline days of ``baseline`` purchases, then yesterday with ``last`` (8 full days)."""
    purchases = [baseline] * 7 + [last]
    return campaign(days=days_from(spend=[100] * 8, roas=roas, purchases=purchases), budget_usd=BUDGET)


def test_spike_detection_numbers():
    doc = make_snapshot([spiky(10, 40, 2.5), spiky(30, 5, 2.0), spiky(10, 12, 2.0)])
    snap = parse_snapshot(doc)
    spikes = detect_spikes(snap, entity_table(snap)).set_index("entity_id")
    assert spikes.loc[campaign_id(0), "direction"] == "up"
    assert spikes.loc[campaign_id(0), "z"] == pytest.approx(30 / 10**0.5)  # sd floored at the Poisson √mean
    assert spikes.loc[campaign_id(1), "direction"] == "down"
    assert spikes.loc[campaign_id(2), "direction"] == "none"


def test_today_never_spikes():
    steady = days_from(spend=[100] * 8, roas=2.5, purchases=10)
    doc = make_snapshot([campaign(days=steady, today=Day(spend=50, revenue=5000, purchases=200))])
    snap = parse_snapshot(doc)
    assert list(detect_spikes(snap, entity_table(snap))["direction"]) == ["none"]
    assert plan(doc).empty


def test_spike_needs_three_days_of_history():
    doc = make_snapshot([campaign(days=days_from(spend=[100] * 3, roas=2.5, purchases=[10, 10, 60]))])
    snap = parse_snapshot(doc)
    spikes = detect_spikes(snap, entity_table(snap))
    assert list(spikes["direction"]) == ["none"]


@pytest.mark.parametrize("mode, amount, new_budget, verdict", [
    ("suggest", 0.15, 575.0, "queued"),
    ("auto", 0.10, 550.0, "executed"),
])
def test_positive_spike_with_roas_above_2_boosts_15_percent(mode, amount, new_budget, verdict):
    row = single(plan(make_snapshot([spiky(10, 40, roas=2.5)]), mode))
    assert (row["type"], row["rule"]) == ("scale_up", "spike_up")
    assert row["proposed_pct"] == pytest.approx(0.15)
    assert row["amount_pct"] == pytest.approx(amount)
    assert budget(row) == pytest.approx(new_budget)
    assert row["verdict"] == verdict


def test_positive_spike_with_roas_2_or_less_does_nothing():
    assert plan(make_snapshot([spiky(10, 40, roas=1.8)])).empty


def test_negative_spike_cuts_10_percent_at_roas_1_5_or_less():
    row = single(plan(make_snapshot([spiky(30, 5, roas=1.5)])))
    assert (row["type"], row["rule"]) == ("scale_down", "spike_down")
    assert row["proposed_pct"] == pytest.approx(0.10) and row["amount_pct"] == pytest.approx(0.10)
    assert budget(row) == pytest.approx(450.0)


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_a_negative_spike_on_a_profitable_campaign_is_reported_not_cut(mode):
    """Issue 9 #11: a campaign at 7-day ROAS 3.57 was cut 10 % on a negative spike. The seed's
    safety matrix cuts only at ROAS ≤ 1.5: the spike is reported, the raise it earns still stands."""
    doc = make_snapshot([spiky(30, 5, roas=3.57), spiky(30, 5, roas=2.0)])
    actions = plan(doc, mode)
    assert not actions["type"].eq("scale_down").any()
    winner = single(actions[actions["entity_id"] == campaign_id(0)])
    assert (winner["type"], winner["rule"]) == ("scale_up", "roas_high")
    assert any("spiked down" in r and "reported, not cut" in r for r in winner["reasons"])
    assert actions[actions["entity_id"] == campaign_id(1)].empty  # hold band: reported only
    snap = parse_snapshot(doc)
    analysis = analyze(snap)
    reported = spikes_not_acted_on(analysis["roas_metrics"], analysis["spikes"])
    assert sorted(reported["entity_id"]) == [campaign_id(0), campaign_id(1)]
    assert all("safety matrix: scale_down only when ROAS ≤ 1.5" in r for r in reported["reason"])


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_negative_spike_under_a_hard_stop_is_a_pause(mode):
    row = single(plan(make_snapshot([spiky(30, 5, roas=0.5)]), mode))
    assert (row["type"], row["rule"], row["verdict"]) == ("pause", "hard_stop", "executed")
    overruled = next(r for r in row["reasons"] if r.startswith("also proposed by"))
    assert "spike_down" in overruled and "roas_low" in overruled


def test_a_cut_beats_a_raise():
    # A spike up (raise) and a ROAS cut on the same campaign: the cut wins.
    row = single(plan(make_snapshot([spiky(10, 40, roas=1.2)]), hard_stop_roas=0.5))
    assert (row["type"], row["rule"]) == ("scale_down", "roas_low")


# --- creative fatigue -------------------------------------------------------------------------------
def fatigued_campaign(last_day_clicks: int, age_hours: float = 240.0) -> CampaignSpec:
    clicks = [100] * 6 + [last_day_clicks]
    days = days_from(spend=[100] * 7, roas=2.0, purchases=10, impressions=5000, clicks=clicks)
    return campaign(days=days, age_hours=age_hours)


def test_fatigue_numbers():
    snap = parse_snapshot(make_snapshot([fatigued_campaign(30), fatigued_campaign(80)]))
    fatigue = detect_fatigue(snap, entity_table(snap)).set_index("entity_id")
    tired = fatigue.loc[ad_id(0)]
    assert tired["ctr_last_day"] == pytest.approx(30 / 5000)
    assert tired["ctr_7d"] == pytest.approx(630 / 35_000)
    assert tired["ctr_drop"] == pytest.approx(1 - (30 / 5000) / (630 / 35_000))
    assert tired["fatigued"]
    assert not fatigue.loc[ad_id(1), "fatigued"]  # 80 clicks: ~18 % below


def test_no_impressions_on_the_last_day_is_not_fatigue():
    days = days_from(spend=[100] * 7, roas=2.0, purchases=[10] * 6 + [0], impressions=[5000] * 6 + [0], clicks=[100] * 6 + [0])
    snap = parse_snapshot(make_snapshot([campaign(days=days)]))
    row = detect_fatigue(snap, entity_table(snap)).iloc[0]
    assert pd.isna(row["ctr_last_day"]) and not row["fatigued"]


@pytest.mark.parametrize("mode, require_approval, verdict", [
    ("suggest", True, "queued"),
    ("auto", True, "queued"),
    ("auto", False, "executed"),
])
def test_creative_fatigue_creates_a_variant(mode, require_approval, verdict):
    doc = make_snapshot([fatigued_campaign(30)])
    row = single(plan(doc, mode, require_human_approval_creatives=require_approval))
    assert (row["type"], row["rule"], row["entity_type"], row["entity_id"]) == ("create_variant", "creative_fatigue", "ad", ad_id(0))
    assert row["verdict"] == verdict
    if mode == "auto" and require_approval:
        assert any("REQUIRE_HUMAN_APPROVAL_CREATIVES" in r for r in row["reasons"])


@pytest.mark.parametrize("purchases_a_day, learning_status, creates", [
    (10, None, True),  # 70 purchases in 7 days: a restarted learning phase ends within the week
    (10, "SUCCESS", True),
    (8, "FAIL", True),  # 56
    (7, None, False),  # 49: short of the ~50 events, the ad set would learn (CPA × 1.25) all week
    (0, None, False),
    (10, "LEARNING", False),  # still learning: a new ad would start it over
])
def test_a_variant_only_where_its_ad_set_would_leave_the_restarted_learning_phase_within_a_week(purchases_a_day, learning_status, creates):
    days = days_from(spend=[100] * 7, roas=2.0, purchases=purchases_a_day, impressions=5000, clicks=[100] * 6 + [30])
    spec = campaign(days=days)
    spec = dataclasses.replace(spec, adsets=[dataclasses.replace(spec.adsets[0], learning_status=learning_status)])
    actions = plan(make_snapshot([spec]))
    assert list(actions["type"]) == (["create_variant"] if creates else [])


def test_no_fatigue_below_a_30_percent_drop():
    assert plan(make_snapshot([fatigued_campaign(75)])).empty  # 75 vs 96.4 per 5000: 22 % below


@pytest.mark.parametrize("hours_ago, verdict", [(30.0, "policy_blocked"), (47.9, "policy_blocked"), (48.0, "queued"), (None, "queued")])
def test_creative_variant_waits_48_h_after_the_last_creative_change(hours_ago, verdict):
    """Issue 9 #9: CREATIVE_EMBARGO_HOURS is the seed's "48h cooldown between creative changes",
    counted from the ad's last creative change, not from its age: an old fatigued ad used to get a
    new variant every 24 h (the cooldown alone)."""
    recent = [] if hours_ago is None else [recent_action("ad", ad_id(0), hours_ago, type="create_variant")]
    row = single(plan(make_snapshot([fatigued_campaign(30, age_hours=500)], recent_actions=recent)))
    assert (row["type"], row["verdict"]) == ("create_variant", verdict)
    assert any("creative embargo" in r for r in row["reasons"]) == (verdict == "policy_blocked")


# --- A/B tests ----------------------------------------------------------------------------------------
def ab_campaign(impressions: int = 2000, winner_purchases: float = 30, loser_purchases: float = 10) -> CampaignSpec:
    a = AdSpec(days=steady_days(spend=50, roas=2.5, purchases=winner_purchases, impressions=impressions, clicks=40))
    b = AdSpec(days=steady_days(spend=50, roas=1.6, purchases=loser_purchases, impressions=impressions, clicks=40))
    return CampaignSpec(adsets=[AdSetSpec(ads=[a, b])])


ARMS = [ad_id(0, 0, 0), ad_id(0, 0, 1)]


def ab_results(doc) -> pd.Series:
    snap = parse_snapshot(doc)
    return evaluate_ab_tests(snap, entity_table(snap)).iloc[0]


@pytest.mark.parametrize("mode, verdict", [("suggest", "queued"), ("auto", "executed")])
def test_ab_winner_is_published_and_losers_named(mode, verdict):
    doc = make_snapshot([ab_campaign()], ab_tests=[ab_test(ARMS, started_hours_ago=96)])
    result = ab_results(doc)
    assert result["status"] == "winner" and result["prob_best"] >= 0.95
    assert result["min_arm_impressions"] == 3 * 2000  # the 3 full days since the test started
    actions = plan(doc, mode)
    row = single(actions)
    assert (row["type"], row["rule"], row["entity_id"]) == ("publish_winner", "ab_winner", ARMS[0])
    assert tuple(row["loser_ad_ids"]) == (ARMS[1],)
    assert f"pause {ARMS[1]}" in row["reasons"][0]
    assert row["verdict"] == verdict


def test_ad_winning_two_tests_gets_one_action_pausing_all_losers():
    a, b, c = (AdSpec(days=steady_days(spend=50, roas=2.0, purchases=p, impressions=2000, clicks=40)) for p in (30, 10, 10))
    doc = make_snapshot(
        [CampaignSpec(adsets=[AdSetSpec(ads=[a, b, c])])],
        ab_tests=[ab_test([ad_id(0, 0, 0), ad_id(0, 0, 1)], id="t1"), ab_test([ad_id(0, 0, 0), ad_id(0, 0, 2)], id="t2")],
    )
    row = single(plan(doc))
    assert row["type"] == "publish_winner" and row["entity_id"] == ad_id(0, 0, 0)
    assert tuple(row["loser_ad_ids"]) == (ad_id(0, 0, 1), ad_id(0, 0, 2))


def test_every_arms_probability_to_be_best_follows_the_tests_ad_order():
    """``arm_prob_best`` is one probability per arm, in the order of ``ad_ids`` (the UI's A/B
    table reads it so): the winner listed in the middle carries the largest share."""
    a, b, c = (AdSpec(days=steady_days(spend=50, roas=2.0, purchases=p, impressions=2000, clicks=40)) for p in (20, 27, 22))
    arms = [ad_id(0, 0, 0), ad_id(0, 0, 1), ad_id(0, 0, 2)]
    doc = make_snapshot([CampaignSpec(adsets=[AdSetSpec(ads=[a, b, c])])], ab_tests=[ab_test(arms, started_hours_ago=96)])
    result = ab_results(doc)
    probabilities = result["arm_prob_best"]
    assert len(probabilities) == 3 and sum(probabilities) == pytest.approx(1.0)
    assert max(probabilities) == probabilities[1] == result["prob_best"] and result["winner_ad_id"] == arms[1]
    assert probabilities[2] > probabilities[0] > 0  # 22 purchases beat 20 on the same impressions


@pytest.mark.parametrize("started_hours_ago, impressions, status", [
    (24, 2000, "too_young"),
    (48, 2000, "too_young"),          # must be *older* than 48 h
    (96, 200, "insufficient_data"),   # 800 impressions per arm
    (96, 250, "insufficient_data"),   # exactly 1,000: must be *more* than 1,000
])
def test_ab_test_too_young_or_too_small_gives_no_action(started_hours_ago, impressions, status):
    doc = make_snapshot([ab_campaign(impressions=impressions)], ab_tests=[ab_test(ARMS, started_hours_ago=started_hours_ago)])
    assert ab_results(doc)["status"] == status
    assert plan(doc).empty


def test_ab_test_without_a_clear_winner_gives_no_action():
    doc = make_snapshot([ab_campaign(winner_purchases=10, loser_purchases=10)], ab_tests=[ab_test(ARMS)])
    result = ab_results(doc)
    assert result["status"] == "no_clear_winner" and result["prob_best"] < 0.95
    assert plan(doc).empty


def test_ab_test_with_a_paused_arm_is_finished():
    spec = ab_campaign()
    spec.adsets[0].ads[1].status = "PAUSED"
    doc = make_snapshot([spec], ab_tests=[ab_test(ARMS)])
    assert ab_results(doc)["status"] == "finished"
    assert plan(doc).empty


def test_probability_to_be_best_is_deterministic_and_sums_to_one():
    purchases = pd.DataFrame([[30.0, 10.0, float("nan")], [5.0, 5.0, 5.0]]).to_numpy()
    impressions = pd.DataFrame([[1000.0, 1000.0, float("nan")], [1000.0, 1000.0, 1000.0]]).to_numpy()
    first = probability_to_be_best(purchases, impressions)
    assert (first == probability_to_be_best(purchases, impressions)).all()
    assert first.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert first[0, 2] == 0.0 and first[0, 0] > 0.99
    assert first[1] == pytest.approx([1 / 3] * 3, abs=0.03)



@settings(max_examples=40, deadline=None)
@given(st.data())
def test_probability_to_be_best_counts_the_argmax_of_the_same_draws(data):
    """The arm-by-arm count equals the plain argmax over the same seeded draws: absent arms never
    win, a tie goes to the first arm."""
    tests, arms = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    cells = st.one_of(st.none(), st.tuples(st.integers(0, 50), st.integers(0, 2000)))
    grid = data.draw(st.lists(st.lists(cells, min_size=arms, max_size=arms), min_size=tests, max_size=tests))
    impressions = np.array([[np.nan if c is None else float(max(c)) for c in row] for row in grid])
    purchases = np.array([[np.nan if c is None else float(min(c)) for c in row] for row in grid])
    draws = 300
    present = ~np.isnan(impressions)
    rng = np.random.default_rng(RANDOM_SEED)
    samples = rng.beta(1.0 + np.where(present, purchases, 0.0), 1.0 + np.where(present, impressions - purchases, 0.0),
                       size=(draws, tests, arms))
    best = np.where(present, samples, -np.inf).argmax(axis=2)
    expected = np.stack([(best == arm).mean(axis=0) for arm in range(arms)], axis=1)
    assert np.array_equal(probability_to_be_best(purchases, impressions, draws), expected)

# --- scope ------------------------------------------------------------------------------------------
def test_max_campaigns_per_tick_takes_the_highest_spend_first():
    doc = make_snapshot([campaign(roas=4.0, spend=s, purchases=20) for s in (100, 300, 200)])
    actions = plan(doc, max_campaigns_per_tick=2)
    assert sorted(actions["entity_id"]) == sorted([campaign_id(1), campaign_id(2)])


def test_hard_stops_reach_campaigns_outside_the_per_tick_scope():
    # The third campaign spends least, so it is outside the top 1 by spend; its hard stop still fires.
    doc = make_snapshot([campaign(roas=2.0, spend=500, purchases=20), campaign(roas=2.2, spend=400, purchases=20),
                         campaign(roas=0.2, spend=150, purchases=40)])
    actions = plan(doc, max_campaigns_per_tick=1)
    stops = actions[actions["rule"] == "hard_stop"]
    assert set(stops["campaign_id"]) == {campaign_id(2)}
    assert set(stops["verdict"]) == {"executed"}
    assert not (actions["campaign_id"] == campaign_id(1)).any()  # other rules stay in scope


def test_paused_campaigns_are_not_evaluated():
    doc = make_snapshot([campaign(roas=4.0, purchases=20, status="PAUSED"), campaign(roas=0.5, purchases=10, status="PAUSED")])
    assert plan(doc).empty


def test_one_action_per_entity():
    doc = make_snapshot([spiky(30, 5, roas=3.5), spiky(10, 40, roas=4.0), campaign(roas=0.5, purchases=10)])
    actions = plan(doc)
    assert not actions.duplicated(["entity_type", "entity_id"]).any()
    assert len(set(actions["id"])) == len(actions)


def test_action_ids_are_derived_from_time_entity_and_type():
    doc = make_snapshot([campaign(roas=4.0, purchases=20)])
    first = single(plan(doc))["id"]
    assert single(plan(doc, "auto"))["id"] == first  # same snapshot time, entity, type
    later = make_snapshot([campaign(roas=4.0, purchases=20)], as_of="2026-11-25T11:00:00+00:00")
    assert single(plan(later))["id"] != first


def test_factory_country_split_keeps_whole_counts():
    # Factory sanity: split counts stay whole and clicks never exceed impressions.
    day = Day(spend=10.01, revenue=20.03, purchases=3, impressions=7, clicks=7)
    doc = make_snapshot([campaign(days=[day], countries=("ES", "FR", "PT"), country_shares={"ES": 1, "FR": 1, "PT": 1})])
    rows = doc["insights"]
    assert sum(int(r["impressions"]) for r in rows) == 7 and sum(int(r["clicks"]) for r in rows) == 7
    assert sum(float(r["spend"]) for r in rows) == pytest.approx(10.01)
    assert all(int(r["clicks"]) <= int(r["impressions"]) for r in rows)
