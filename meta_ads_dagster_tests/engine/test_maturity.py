"""Late conversions (engine/metrics.py, "Maturity") and the hysteresis (engine/decisions.py).

The maturity curve is fitted to each day's purchases against what its clicks would have bought;
the rules judge the observed figures and name the matured ROAS beside them (measured: deciding on
the matured one earned less). The hysteresis keeps a noisy 7-day window from undoing the last
budget change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from meta_ads_dagster.engine.decisions import CLEARLY_HIGH, CLEARLY_LOW, HYSTERESIS_DAYS
from meta_ads_dagster.engine.metrics import entity_table, fit_maturity, matured, maturity_curve, roas_metrics
from meta_ads_dagster.engine.snapshot import parse_snapshot

from .factories import AS_OF, Day, campaign, campaign_id, make_snapshot, plan_actions, recent_action

AGES = np.arange(1, 9)
# What a day `age` days old has reported of its eventual purchases (yesterday 80 %, a week-old day
# all of them): the shape of Meta's 7-day click attribution window.
IMMATURE = {1: 0.80, 2: 0.90, 3: 0.95, 4: 0.975, 5: 0.99, 6: 1.0, 7: 1.0, 8: 1.0}


def immature_days(roas: float, purchases: int = 200, spend: float = 100.0, shares=IMMATURE) -> list[Day]:
    """Eight days (oldest first) truly at ``roas`` and ``purchases``, reported short by ``shares``."""
    return [
        Day(spend, round(spend * roas * shares[age], 2), int(round(purchases * shares[age])), 20_000, 1_000)
        for age in range(8, 0, -1)
    ]


def metrics_of(document: dict) -> pd.DataFrame:
    snapshot = parse_snapshot(document)
    return roas_metrics(snapshot, entity_table(snapshot)).set_index(["entity_type", "entity_id"])


# --- the curve -------------------------------------------------------------------------------------
@pytest.mark.parametrize("late, decay", [(0.0, 0.5), (0.2, 0.5), (0.3, 0.6), (0.5, 0.3), (0.1, 0.8)])
@pytest.mark.parametrize("level", [0.02, 1.0, 7.5])
def test_fit_recovers_the_curve_it_was_drawn_from(late, decay, level):
    truth = 1 - late * decay**AGES
    expected = np.full(len(AGES), 1_000.0)
    share, error = fit_maturity(AGES, level * truth * expected, expected, np.full(len(AGES), 1_000.0))
    np.testing.assert_allclose(share, truth, atol=0.01)
    assert error == pytest.approx(0.0, abs=0.01)


@given(
    level=st.floats(0.01, 100.0),
    expected=st.lists(st.floats(1.0, 1e5), min_size=4, max_size=28),
)
def test_a_fully_matured_history_is_not_corrected(level, expected):
    """Every day at the same purchases per expected purchase: nothing is still to come."""
    expected = np.array(expected)
    ages = np.arange(1, len(expected) + 1)
    share, error = fit_maturity(ages, level * expected, expected, expected)
    np.testing.assert_allclose(share, 1.0)
    assert error == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("days_with_data", [0, 1, 3])
def test_too_few_days_correct_nothing(days_with_data):
    observed = np.r_[np.full(days_with_data, 50.0), np.zeros(8 - days_with_data)]
    share, error = fit_maturity(AGES, observed, np.full(8, 100.0), observed)
    np.testing.assert_array_equal(share, 1.0)
    assert error == 0.0


def test_curve_from_a_snapshot_reads_the_late_purchases():
    curve = maturity_curve(parse_snapshot(make_snapshot([campaign(days=immature_days(2.0))])))
    assert list(curve["age"]) == list(AGES)
    np.testing.assert_allclose(curve["purchases_share"], [IMMATURE[a] for a in AGES], atol=0.02)
    np.testing.assert_allclose(curve["value_share"], [IMMATURE[a] for a in AGES], atol=0.02)


@given(
    purchases=st.lists(st.integers(0, 500), min_size=1, max_size=20),
    revenue=st.lists(st.floats(0.0, 1e5), min_size=1, max_size=20),
    ages=st.lists(st.integers(1, 27), min_size=1, max_size=20),
)
def test_matured_rows_are_unchanged_by_a_fully_matured_curve(purchases, revenue, ages):
    n = min(len(purchases), len(revenue), len(ages))
    rows = pd.DataFrame({"age": ages[:n], "purchases": purchases[:n], "revenue": revenue[:n]})
    curve = pd.DataFrame({"age": range(1, 28), "purchases_share": 1.0, "value_share": 1.0})
    out = matured(rows, curve)
    np.testing.assert_allclose(out["purchases_matured"], rows["purchases"])
    np.testing.assert_allclose(out["revenue_matured"], rows["revenue"])


# --- matured ROAS ----------------------------------------------------------------------------------
@pytest.mark.parametrize("roas", [0.5, 1.4, 2.0, 3.5])
def test_a_steady_window_keeps_its_roas_and_confidence(roas):
    row = metrics_of(make_snapshot([campaign(roas=roas, purchases=30)])).loc[("campaign", campaign_id(0))]
    assert row["roas_matured"] == pytest.approx(row["roas_7d"])
    assert row["confidence_matured"] == pytest.approx(row["confidence"])


@pytest.mark.parametrize("roas", [1.0, 1.6, 3.2])
def test_matured_roas_adds_the_late_conversions_back(roas):
    row = metrics_of(make_snapshot([campaign(days=immature_days(roas))])).loc[("campaign", campaign_id(0))]
    assert row["roas_7d"] < roas * 0.96  # the window reads low
    assert row["roas_matured"] == pytest.approx(roas, rel=0.02)
    # what is predicted rather than reported is less certain
    assert row["confidence_matured"] <= row["confidence"]


def test_budget_rules_judge_the_observed_roas_and_name_the_matured_one():
    """Measured on the simulated market, cutting on the matured ROAS earned less (BENCHMARKS.md):
    the rules judge what is reported, and the reason says what the late conversions will add."""
    document = make_snapshot([campaign(days=immature_days(1.56))])
    row = metrics_of(document).loc[("campaign", campaign_id(0))]
    assert row["roas_7d"] < 1.5 < row["roas_matured"]
    action = plan_actions(document).iloc[0]
    assert (action["type"], action["rule"]) == ("scale_down", "roas_low")
    assert action["reasons"][0] == f"7-day ROAS {row['roas_7d']:.2f} < 1.5 ({row['roas_7d']:.2f} observed, {row['roas_matured']:.2f} expected when matured)"


def test_a_fully_reported_window_names_one_roas():
    action = plan_actions(make_snapshot([campaign(roas=1.3, purchases=60)])).iloc[0]
    assert action["reasons"][0] == "7-day ROAS 1.30 < 1.5"


def test_the_hard_stop_judges_the_observed_roas():
    """A money pit is paused on what is reported: late conversions never keep it running."""
    document = make_snapshot([campaign(days=immature_days(0.95))])
    row = metrics_of(document).loc[("campaign", campaign_id(0))]
    assert row["roas_7d"] < 0.9 < row["roas_matured"]
    assert list(plan_actions(document)["rule"]) == ["hard_stop"]


# --- hysteresis ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "last_change, roas, acts",
    [
        ("scale_up", 1.4, False),  # inside the hold band's margin: the raise stands
        ("scale_up", CLEARLY_LOW + 0.02, False),
        ("scale_up", CLEARLY_LOW - 0.05, True),  # clearly below: cut
        ("scale_down", 3.3, False),
        ("scale_down", CLEARLY_HIGH - 0.05, False),
        ("scale_down", CLEARLY_HIGH + 0.2, True),
        ("scale_down", 1.4, True),  # the same direction is never held back
        ("scale_up", 3.3, True),
    ],
)
def test_a_recent_change_is_reversed_only_clearly_past_the_hold_band(last_change, roas, acts):
    # 50 h ago: yesterday is a full day after the change (a raise also needs it, below)
    document = make_snapshot(
        [campaign(roas=roas, purchases=60)], recent_actions=[recent_action("campaign", campaign_id(0), 50, last_change)]
    )
    assert (not plan_actions(document).empty) == acts


# --- raises judged on the days since the last budget change -----------------------------------------
# AS_OF is 2026-11-25 11:30 in Madrid; the factory's seven days end yesterday, 24 November.
@pytest.mark.parametrize(
    "hours_ago, since_roas, raised",
    [
        (50, 3.4, True),  # changed on the 23rd: the 24th is the day since, above 3
        (50, 2.6, False),  # the 24th below 3: the 7-day ROAS (4.2 on the days before) lags the raise
        (74, 2.6, False),  # the 23rd and 24th, both below
        (30, 3.4, False),  # changed early on the 24th: no full day since the change yet, wait
        (24 * HYSTERESIS_DAYS + 1, 2.6, True),  # a change that old no longer counts: the 7-day ROAS decides
    ],
)
@pytest.mark.parametrize("last_change", ["scale_up", "scale_down"])
def test_a_raise_needs_the_days_since_the_last_budget_change_above_3(hours_ago, since_roas, raised, last_change):
    days = [Day(100.0, 420.0, 40, 20_000, 400)] * 6 + [Day(100.0, since_roas * 100, 30, 20_000, 400)]
    if hours_ago == 74:
        days = days[:5] + [days[-1]] * 2
    recent = [recent_action("campaign", campaign_id(0), hours_ago, last_change)]
    actions = plan_actions(make_snapshot([campaign(days=days)], recent_actions=recent))
    roas_7d = metrics_of(make_snapshot([campaign(days=days)])).loc[("campaign", campaign_id(0)), "roas_7d"]
    assert roas_7d > CLEARLY_HIGH  # above 3, and clear of the hysteresis after a cut
    assert (list(actions["type"]) == ["scale_up"]) == raised
    if not raised:
        assert actions.empty


def test_without_a_recent_budget_change_the_7_day_roas_alone_decides_a_raise():
    days = [Day(100.0, 400.0, 40, 20_000, 400)] * 6 + [Day(100.0, 260.0, 30, 20_000, 400)]
    paused_ad = [recent_action("ad", "100101", 50, "pause")]  # another kind of write, elsewhere: not a budget change
    for recent in ([], paused_ad):
        assert list(plan_actions(make_snapshot([campaign(days=days)], recent_actions=recent))["type"]) == ["scale_up"]


def test_the_hysteresis_ends_after_hysteresis_days():
    raised = recent_action("campaign", campaign_id(0), 24 * HYSTERESIS_DAYS + 1, "scale_up")
    actions = plan_actions(make_snapshot([campaign(roas=1.4, purchases=60)], recent_actions=[raised]))
    assert list(actions["type"]) == ["scale_down"]


@hyp_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    level=st.floats(1.8, 2.5),
    noise=st.lists(st.floats(0.65, 1.5), min_size=21, max_size=21),
)
def test_on_a_stationary_market_the_direction_flips_at_most_once_a_week(level, noise):
    """A campaign truly at ``level`` whose 7-day window wanders between 0.65 and 1.5 times it,
    decided once a day for three weeks, every budget proposal carried out: no two opposite budget
    changes within 7 days. Around ROAS 2.0–2.3 such a window crosses both ends of the hold band
    (above 3.0 and below 1.5) and, without the hysteresis, flips; it never reaches both 3.6 and 1.25."""
    start = datetime.fromisoformat(AS_OF)
    done: list[tuple[datetime, str]] = []
    for day, factor in enumerate(noise):
        as_of = start + timedelta(days=day)
        recent = [recent_action("campaign", campaign_id(0), (as_of - at).total_seconds() / 3600, kind) for at, kind in done]
        actions = plan_actions(make_snapshot([campaign(roas=level * factor, purchases=60)], as_of=as_of.isoformat(), recent_actions=recent))
        changes = actions[actions["type"].isin(["scale_up", "scale_down"]) & ~actions["verdict"].str.endswith("blocked")]
        done += [(as_of, kind) for kind in changes["type"]]
        if actions["type"].eq("pause").any():
            break
    flips = [later for (earlier, a), (later, b) in zip(done, done[1:]) if a != b and later - earlier < timedelta(days=7)]
    assert not flips, done
