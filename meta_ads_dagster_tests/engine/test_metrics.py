"""engine/metrics.py: the 7-day window, ROAS of the seed's entities, the documented confidence model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from meta_ads_dagster.engine.metrics import (
    WINDOW_DAYS, entity_table, roas_confidence, roas_metrics, window_insights,
)
from meta_ads_dagster.engine.snapshot import parse_snapshot

from .factories import (
    AdSetSpec, AdSpec, CampaignSpec, Day, ad_id, adset_id, campaign, campaign_id, make_snapshot, seed_document,
    steady_days,
)


def metrics_of(doc) -> pd.DataFrame:
    snap = parse_snapshot(doc)
    return roas_metrics(snap, entity_table(snap)).set_index(["entity_type", "entity_id"])


@pytest.fixture(scope="module")
def seed_metrics():
    return metrics_of(seed_document())


# --- the window -----------------------------------------------------------------------------------
def test_window_is_the_seven_full_days_before_today():
    outside = Day(spend=100, revenue=10_000, purchases=500, impressions=5000, clicks=100)
    inside = steady_days(7, spend=100, roas=2.0, purchases=10)
    doc = make_snapshot([campaign(days=[outside, *inside], today=Day(spend=40, revenue=4_000, purchases=200))])
    snap = parse_snapshot(doc)

    window = window_insights(snap)
    assert window["date"].min() == snap.today - pd.Timedelta(days=WINDOW_DAYS)
    assert window["date"].max() == snap.today - pd.Timedelta(days=1)
    assert len(window) == 7

    row = metrics_of(doc).loc[("campaign", campaign_id(0))]
    assert row["spend_7d"] == pytest.approx(700)
    assert row["roas_7d"] == pytest.approx(2.0)  # neither today's nor the 8th day's revenue counts
    assert row["purchases_7d"] == 70
    assert row["spend_today"] == pytest.approx(40)  # today only feeds today's spend


def test_entity_without_spend_has_no_roas():
    doc = make_snapshot([campaign(days=[])])
    row = metrics_of(doc).loc[("campaign", campaign_id(0))]
    assert np.isnan(row["roas_7d"]) and row["spend_7d"] == 0 and row["confidence"] == 0


# --- the seed's numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize("entity, roas", [
    (("campaign", "100001"), 3.2),   # Black Friday - ES
    (("campaign", "100005"), 2.2),   # Evergreen catalog
    (("ad", "100013"), 0.7),         # Variant B - Low Performer
    (("ad", "100011"), 2.4),         # Variant A
    (("adset", "100010"), 1.55),     # retargeting 30d = A and B together
])
def test_seed_roas(seed_metrics, entity, roas):
    assert seed_metrics.loc[entity, "roas_7d"] == pytest.approx(roas, abs=0.005)


def test_seed_confidence_and_spend(seed_metrics):
    black_friday = seed_metrics.loc[("campaign", "100001")]
    assert black_friday["purchases_7d"] == 91
    assert black_friday["confidence"] == pytest.approx(0.94, abs=0.005)
    assert black_friday["spend_7d"] == pytest.approx(450.03)
    assert black_friday["impressions_7d"] == 7 * 2142
    variant_b = seed_metrics.loc[("ad", "100013")]
    assert variant_b["purchases_7d"] == 49
    assert variant_b["confidence"] == pytest.approx(0.84, abs=0.005)
    evergreen = seed_metrics.loc[("campaign", "100005")]
    assert evergreen["spain_share"] == pytest.approx(0.6) and evergreen["top_country_share"] == pytest.approx(0.6)
    assert seed_metrics.xs("campaign")["spend_today"].sum() == pytest.approx(25.71 + 4150 + 40)


def test_seed_budget_holders(seed_metrics):
    holders = set(seed_metrics.index[seed_metrics["is_budget_holder"]])
    assert holders == {("campaign", "100001"), ("campaign", "100005"), ("adset", "100010")}


# --- confidence -----------------------------------------------------------------------------------
@pytest.mark.parametrize("purchases, expected", [(49, 0.84), (91, 0.94), (12, 0.51), (0, 0.0)])
def test_confidence_worked_figures(purchases, expected):
    assert float(roas_confidence(purchases, 0)[()]) == pytest.approx(expected, abs=0.005)


def test_confidence_takes_predicted_purchases_when_more_than_observed():
    # Spent enough to expect 50 purchases and made 3: judged as firmly as 50 observed.
    assert float(roas_confidence(3, 50)) == pytest.approx(float(roas_confidence(50, 0)))
    assert float(roas_confidence(50, 3)) == pytest.approx(float(roas_confidence(50, 0)))


def test_zero_purchase_money_pit_gets_confidence_from_predicted_purchases():
    good = campaign(roas=3.0, spend=100, purchases=20)
    pit = campaign(roas=0.0, spend=100, purchases=0)
    # Account: $1,400 for 140 purchases = $10 each, so the pit's $700 predicts 70 purchases; it made 0.
    metrics = metrics_of(make_snapshot([good, pit]))
    row = metrics.loc[("campaign", campaign_id(1))]
    assert row["purchases_7d"] == 0
    assert row["expected_purchases_7d"] == pytest.approx(70)
    assert row["confidence"] == pytest.approx(float(roas_confidence(70, 0)))
    assert row["confidence"] > 0.9


@hyp_settings(max_examples=60, deadline=None)
@given(
    a=st.floats(0, 10_000, allow_nan=False), b=st.floats(0, 10_000, allow_nan=False),
    expected=st.floats(0, 10_000, allow_nan=False),
)
def test_confidence_is_monotone_and_a_probability(a, b, expected):
    low, high = sorted((a, b))
    c_low, c_high = float(roas_confidence(low, expected)), float(roas_confidence(high, expected))
    assert 0.0 <= c_low <= c_high <= 1.0
    assert float(roas_confidence(high, 0)) >= float(roas_confidence(low, 0))


def test_confidence_is_vectorized():
    values = roas_confidence(np.array([0, 12, 49, 91]), np.zeros(4))
    assert values.shape == (4,)
    assert list(np.diff(values) > 0) == [True, True, True]


# --- entity table and country mix -------------------------------------------------------------------
def test_budget_holders_and_effective_status():
    cbo = campaign(budget_usd=300)
    per_adset = CampaignSpec(
        daily_budget_usd=None,
        adsets=[AdSetSpec(daily_budget_usd=100), AdSetSpec(daily_budget_usd=50, status="PAUSED")],
    )
    paused = campaign(status="PAUSED")
    table = entity_table(parse_snapshot(make_snapshot([cbo, per_adset, paused]))).set_index(["entity_type", "entity_id"])
    holders = set(table.index[table["is_budget_holder"]])
    assert holders == {
        ("campaign", campaign_id(0)), ("adset", adset_id(1, 0)), ("adset", adset_id(1, 1)), ("campaign", campaign_id(2)),
    }
    assert table.loc[("ad", ad_id(1, 0)), "effective_active"]
    assert not table.loc[("ad", ad_id(1, 1)), "effective_active"]      # its ad set is paused
    assert not table.loc[("ad", ad_id(2, 0)), "effective_active"]      # its campaign is paused
    assert not table.loc[("adset", adset_id(2, 0)), "effective_active"]


def test_campaign_countries_are_the_union_of_its_ad_sets():
    spec = CampaignSpec(adsets=[AdSetSpec(countries=("FR", "ES")), AdSetSpec(countries=("PT",))])
    table = entity_table(parse_snapshot(make_snapshot([spec]))).set_index(["entity_type", "entity_id"])
    assert table.loc[("campaign", campaign_id(0)), "countries"] == ("ES", "FR", "PT")
    assert table.loc[("ad", ad_id(0, 1)), "countries"] == ("PT",)


def test_country_mix_shares():
    spec = campaign(countries=("ES", "FR", "DE"), country_shares={"ES": 0.2, "FR": 0.5, "DE": 0.3})
    row = metrics_of(make_snapshot([spec])).loc[("campaign", campaign_id(0))]
    assert row["spain_share"] == pytest.approx(0.2, abs=0.001)
    assert row["top_country"] == "FR"
    assert row["top_country_share"] == pytest.approx(0.5, abs=0.001)


def test_ctr_is_pooled_over_the_window():
    days = [Day(spend=10, revenue=20, purchases=1, impressions=1000, clicks=10)] * 6 + [
        Day(spend=10, revenue=20, purchases=1, impressions=9000, clicks=0)
    ]
    spec = CampaignSpec(adsets=[AdSetSpec(ads=[AdSpec(days=days)])])
    row = metrics_of(make_snapshot([spec])).loc[("ad", ad_id(0))]
    assert row["ctr_7d"] == pytest.approx(60 / 15_000)
