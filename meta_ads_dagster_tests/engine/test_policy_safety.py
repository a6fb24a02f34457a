"""engine/policy.py, engine/safety.py, engine/routing.py: the seed's scalar API and the vectorized guard rails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from meta_ads_dagster.engine.policy import PolicyEngine
from meta_ads_dagster.engine.routing import limit_writes, route_actions
from meta_ads_dagster.engine.safety import AccountSpend, SafetyEngine
from meta_ads_dagster.settings import load_settings

from .factories import campaign, campaign_id, make_action, make_snapshot, plan_actions, recent_action

SUGGEST = load_settings()
AUTO = load_settings(meta_auto_mode="auto")
ROOMY = AccountSpend(total_active_daily_budget=1000.0, spend_today=200.0)


def policy(settings=SUGGEST) -> PolicyEngine:
    return PolicyEngine(settings)


def safety(settings=SUGGEST) -> SafetyEngine:
    return SafetyEngine(settings)


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def scalar_result(result):
    allowed, reason = result
    assert isinstance(allowed, bool) and isinstance(reason, str) and reason
    return allowed, reason


# --- PolicyEngine: the seed's scalar checks ----------------------------------------------------------
@pytest.mark.parametrize("current, new, is_auto, allowed, fragment", [
    (500, 600, False, True, "within limits"),
    (500, 400, False, True, "within limits"),
    (500, 601, False, False, "exceeds the 20% daily limit"),
    (500, 750, False, False, "change of 50% exceeds the 20% daily limit"),
    (500, 550, True, True, "within limits"),
    (500, 600, True, False, "exceeds the 10% auto limit"),
    (500, 440, True, False, "exceeds the 10% auto limit"),
    (4800, 5100, False, False, "MAX_CAMPAIGN_BUDGET_USD"),
    (6000, 5400, False, True, "within limits"),   # a cut toward the cap is never refused for it
    (0, 100, False, False, "exceeds"),            # no budget: no percentage change to speak of
])
def test_can_scale_budget(current, new, is_auto, allowed, fragment):
    ok, reason = scalar_result(policy().can_scale_budget(current, new, is_auto))
    assert ok is allowed
    assert fragment in reason


def test_can_scale_budget_takes_arrays():
    ok, reasons = policy().can_scale_budget(np.array([500.0, 500.0, 4900.0]), np.array([600.0, 700.0, 5500.0]), False)
    assert list(ok) == [True, False, False]
    assert "daily limit" in reasons[1] and "MAX_CAMPAIGN_BUDGET_USD" in reasons[2]


@pytest.mark.parametrize("roas, confidence, spend, halt", [
    (0.7, 0.82, 350.0, True),
    (0.0, 0.90, 700.0, True),
    (0.89, 0.70, 100.0, True),
    (0.9, 0.99, 100.0, False),    # not below HARD_STOP_ROAS
    (0.7, 0.69, 350.0, False),    # not confident enough
    (0.7, 0.82, 0.0, False),      # no spend
    (float("nan"), 0.99, 10.0, False),
])
def test_must_halt(roas, confidence, spend, halt):
    ok, reason = scalar_result(policy().must_halt(roas, confidence, spend))
    assert ok is halt
    assert reason == ("hard stop: ROAS below 0.9 with confidence ≥ 0.7" if halt else "no hard stop")


@pytest.mark.parametrize("distribution, countries, allowed, fragment", [
    ({"ES": 0.40, "FR": 0.60}, ["ES", "FR"], True, "within rules"),
    ({"ES": 0.30, "FR": 0.70}, ["ES", "FR"], False, "Spain has 30% of spend, below 35%"),
    ({"ES": 1.0}, ["ES"], True, "within rules"),                  # ES alone may hold 100 %
    ({"ES": 0.75, "FR": 0.25}, ["ES", "FR"], False, "one country has 75%"),
    ({"FR": 0.80, "DE": 0.20}, ["FR", "DE"], False, "one country has 80% of spend, above 70%"),
    ({"FR": 0.70, "DE": 0.30}, ["FR", "DE"], True, "within rules"),   # exactly at the limit
    ({"FR": 0.5, "DE": 0.5}, ["FR", "DE"], True, "within rules"),     # Spain not targeted: no Spain rule
    ({"PT": 1.0}, ["PT"], False, "one country has 100%"),
    # Issue 9 #14: the seed's "Total must sum to 100%".
    ({"ES": 0.5, "FR": 0.9}, ["ES", "FR"], False, "shares sum to 140%, they must sum to 100%"),
    ({"ES": 0.5, "FR": 0.4}, ["ES", "FR"], False, "shares sum to 90%, they must sum to 100%"),
    ({}, ["ES"], False, "shares sum to 0%"),
    ({"ES": 1.2, "FR": -0.2}, ["ES", "FR"], False, "every share must be a finite number ≥ 0"),
    ({"ES": float("nan"), "FR": 1.0}, ["ES", "FR"], False, "every share must be a finite number ≥ 0"),
])
def test_validate_geo_distribution(distribution, countries, allowed, fragment):
    ok, reason = scalar_result(policy().validate_geo_distribution(distribution, countries))
    assert ok is allowed
    assert fragment in reason


@pytest.mark.parametrize("hours, allowed", [(0, False), (47.9, False), (48, True), (500, True), (float("nan"), True)])
def test_can_change_creative(hours, allowed):
    # Hours since the ad's last creative change (NaN: never changed).
    ok, reason = scalar_result(policy().can_change_creative(hours))
    assert ok is allowed
    assert reason.startswith("creative embargo: the creative changed less than 48 h ago") is not allowed


# --- PolicyEngine: clamp, don't drop ----------------------------------------------------------------
@pytest.mark.parametrize("settings, amount, new_budget, limit_text", [
    (SUGGEST, 0.20, 60_000, "20% daily limit"),
    (AUTO, 0.10, 55_000, "10% auto limit"),
])
def test_oversized_change_is_clamped_and_passes(settings, amount, new_budget, limit_text):
    action = make_action(proposed_pct=0.50)
    ok, reason = policy(settings).validate_action(action)
    assert ok, reason
    assert f"clamped from 50% to the {limit_text}" in reason
    row = policy(settings).evaluate(frame(action)).iloc[0]
    assert row["verdict"] == "proposed"
    assert row["amount_pct"] == pytest.approx(amount)
    assert row["new_budget_minor"] == new_budget


@pytest.mark.parametrize("current_minor", [12_343, 33_333, 99_999, 12_345, 101])
@pytest.mark.parametrize("settings", [SUGGEST, AUTO], ids=["suggest", "auto"])
def test_rounding_never_pushes_a_clamped_change_past_the_limit(settings, current_minor):
    # Regression: new budgets used to be rounded to the nearest minor unit, so 123.43 × 1.2 = 148.116
    # became 148.12 (20.003 %) and the clamped raise was then *blocked* for exceeding 20 %.
    row = policy(settings).evaluate(frame(make_action(proposed_pct=0.5, current_budget_minor=current_minor))).iloc[0]
    assert row["verdict"] == "proposed", row["reasons"]
    assert row["new_budget_minor"] == int(row["new_budget_minor"])
    assert 0 < row["amount_pct"] <= settings.budget_change_limit + 1e-12
    cut = policy(settings).evaluate(frame(make_action(
        type="scale_down", rule="roas_low", proposed_pct=0.5, current_budget_minor=current_minor, roas_7d=1.2,
    ))).iloc[0]
    assert cut["verdict"] == "proposed", cut["reasons"]
    assert cut["amount_pct"] <= settings.budget_change_limit + 1e-12


@pytest.mark.parametrize("current_usd, verdict, new_usd", [
    (4500, "proposed", 5000),        # +20 % would be 5,400: clamped to the 5,000 cap (11 %)
    (4900, "policy_blocked", None),  # only 2 % left under the cap: not a meaningful change
    (5200, "policy_blocked", None),  # already above the cap
])
def test_raise_clamped_to_max_campaign_budget(current_usd, verdict, new_usd):
    row = policy().evaluate(frame(make_action(current_budget_minor=current_usd * 100.0))).iloc[0]
    assert row["verdict"] == verdict
    if new_usd is not None:
        assert row["new_budget_minor"] == new_usd * 100
        assert any("clamped to MAX_CAMPAIGN_BUDGET_USD" in r for r in row["reasons"])
    else:
        assert any("MAX_CAMPAIGN_BUDGET_USD" in r for r in row["reasons"])


def test_cut_of_a_budget_above_the_cap_is_allowed():
    # Regression: a roas_low cut of a $4,400 budget with MAX_CAMPAIGN_BUDGET_USD=1000 was blocked
    # because the new budget ($3,520) was still above the cap.
    settings = load_settings(max_campaign_budget_usd=1000)
    row = policy(settings).evaluate(frame(make_action(
        type="scale_down", rule="roas_low", proposed_pct=0.2, current_budget_minor=440_000, roas_7d=1.2,
    ))).iloc[0]
    assert row["verdict"] == "proposed", row["reasons"]
    assert row["new_budget_minor"] == 352_000


def test_no_budget_no_budget_action():
    ok, reason = policy().validate_action(make_action(current_budget_minor=np.nan))
    assert not ok and "no daily budget" in reason


@pytest.mark.parametrize("action_type, spain, top, countries, allowed", [
    ("scale_up", 0.30, 0.70, ("ES", "FR"), False),   # Spain below 35 % while targeted
    ("scale_up", 0.40, 0.60, ("ES", "FR"), True),
    ("scale_up", 0.0, 0.80, ("FR", "DE"), False),    # one country above 70 %
    ("scale_up", 1.0, 1.0, ("ES",), True),           # ES alone
    ("scale_down", 0.30, 0.70, ("ES", "FR"), True),  # geo only limits raises
])
def test_geo_rules_block_raises_only(action_type, spain, top, countries, allowed):
    action = make_action(type=action_type, spain_share=spain, top_country_share=top, countries=countries,
                         roas_7d=3.5 if action_type == "scale_up" else 1.2)
    ok, reason = policy().validate_action(action)
    assert ok is allowed
    assert ("geo:" in reason) is not allowed


def test_creative_variant_inside_the_creative_embargo_is_blocked():
    variant = make_action(type="create_variant", rule="creative_fatigue", entity_type="ad", proposed_pct=np.nan,
                          current_budget_minor=np.nan, age_hours=500.0, hours_since_creative_change=30.0)
    ok, reason = policy().validate_action(variant)
    assert not ok and "creative embargo" in reason
    assert policy().validate_action({**variant, "hours_since_creative_change": 50.0})[0]


# --- SafetyEngine: the seed's scalar checks -----------------------------------------------------------
@pytest.mark.parametrize("total, today, increase, allowed, fragment", [
    (9000, 4000, 500, True, "within the daily spend cap"),
    (9500, 4000, 500, True, "within the daily spend cap"),   # exactly at the cap
    (9800, 4000, 500, False, "total daily budget would exceed"),
    (5000, 9800, 500, False, "today's spend plus the raise would exceed"),
])
def test_prevent_overspend(total, today, increase, allowed, fragment):
    ok, reason = scalar_result(safety().prevent_overspend(total, today, increase))
    assert ok is allowed and fragment in reason


@pytest.mark.parametrize("check, value, allowed", [
    ("enforce_embargo_period", 47.9, False),
    ("enforce_embargo_period", 48.0, True),
    ("enforce_embargo_period", float("nan"), False),
    ("block_unapproved_creatives", True, True),
    ("block_unapproved_creatives", False, False),
    ("block_unapproved_creatives", None, False),
    ("check_action_rate_limit", 23.9, False),
    ("check_action_rate_limit", 24.0, True),
    ("check_action_rate_limit", float("nan"), True),   # never acted on
    ("validate_roas_confidence", 0.749, False),
    ("validate_roas_confidence", 0.75, True),
])
def test_safety_scalar_checks(check, value, allowed):
    ok, reason = scalar_result(getattr(safety(), check)(value))
    assert ok is allowed


@pytest.mark.parametrize("impressions, spend, allowed", [
    (1000, 100.0, True), (999, 500.0, False), (5000, 99.99, False), (0, 0.0, False),
])
def test_check_minimum_data(impressions, spend, allowed):
    ok, reason = scalar_result(safety().check_minimum_data(impressions, spend))
    assert ok is allowed
    assert ("not enough data" in reason) is not allowed


# --- SafetyEngine: the vectorized guard rails -----------------------------------------------------------
@pytest.mark.parametrize("total_budget, verdict, new_budget_minor", [
    (1000.0, "proposed", 60_000),          # plenty of room
    (9950.0, "proposed", 55_000),          # $50 of room: the $100 raise is clamped to it (10 %)
    (9990.0, "safety_blocked", 50_000),    # $10 of room: 2 % is not a meaningful raise
    (12_000.0, "safety_blocked", 50_000),  # already over the cap
])
def test_spend_cap_clamps_to_the_room_left_or_blocks(total_budget, verdict, new_budget_minor):
    action = policy().evaluate(frame(make_action()))  # +20 % of $500
    row = safety().evaluate(action, AccountSpend(total_budget, 0.0)).iloc[0]
    assert row["verdict"] == verdict, row["reasons"]
    if verdict == "proposed":
        assert row["new_budget_minor"] == new_budget_minor
    else:
        assert any("spend cap" in r for r in row["reasons"])


def test_spend_cap_serves_the_most_confident_raise_first():
    raises = policy().evaluate(frame(
        make_action(id="low", entity_id="1", confidence=0.80),
        make_action(id="high", entity_id="2", confidence=0.99),
    ))
    out = safety().evaluate(raises, AccountSpend(9_900.0, 0.0)).set_index("id")
    assert out.loc["high", "verdict"] == "proposed" and out.loc["high", "new_budget_minor"] == 60_000
    assert out.loc["low", "verdict"] == "safety_blocked"


def test_a_raise_blocked_by_the_cap_leaves_its_room_to_the_next():
    # $100 of room: the confident $4,000 → $4,800 raise needs $800 and 2.5 % of it is not
    # meaningful, so it is blocked; the $500 → $600 raise after it still fits in the $100.
    raises = policy().evaluate(frame(
        make_action(id="big", entity_id="1", confidence=0.99, current_budget_minor=400_000.0),
        make_action(id="small", entity_id="2", confidence=0.80),
    ))
    out = safety().evaluate(raises, AccountSpend(9_900.0, 0.0)).set_index("id")
    assert out.loc["big", "verdict"] == "safety_blocked"
    assert out.loc["small", "verdict"] == "proposed" and out.loc["small", "new_budget_minor"] == 60_000


def test_spend_cap_counts_todays_spend_too():
    row = safety().evaluate(policy().evaluate(frame(make_action())), AccountSpend(1000.0, 9_990.0)).iloc[0]
    assert row["verdict"] == "safety_blocked"


@pytest.mark.parametrize("overrides, fragment", [
    ({"age_hours": 10.0}, "embargo"),
    ({"hours_since_last_action": 5.0}, "cooldown"),
    ({"impressions_7d": 500}, "not enough data"),
    ({"spend_7d": 50.0}, "not enough data"),
])
def test_safety_blocks(overrides, fragment):
    ok, reason = safety().validate_action(policy().evaluate(frame(make_action(**overrides))).iloc[0].to_dict(), ROOMY)
    assert not ok and fragment in reason


@pytest.mark.parametrize("overrides", [{"age_hours": 10.0}, {"hours_since_last_action": 1.0}])
def test_hard_stops_are_exempt_from_embargo_and_cooldown(overrides):
    pause = make_action(type="pause", rule="hard_stop", proposed_pct=np.nan, current_budget_minor=np.nan, **overrides)
    ok, reason = safety().validate_action(pause, ROOMY)
    assert ok, reason
    cut = make_action(type="scale_down", rule="roas_low", **overrides)
    assert not safety().validate_action(policy().evaluate(frame(cut)).iloc[0].to_dict(), ROOMY)[0]


@pytest.mark.parametrize("action_type, approved, allowed", [
    ("publish_winner", False, False), ("publish_winner", True, True), ("resume", None, False), ("pause", False, True),
])
def test_unapproved_creatives_never_go_live(action_type, approved, allowed):
    action = make_action(type=action_type, rule="ab_winner", entity_type="ad", proposed_pct=np.nan,
                         current_budget_minor=np.nan, creative_approved=approved)
    ok, reason = safety().validate_action(action, ROOMY)
    assert ok is allowed
    assert ("not approved" in reason) is not allowed


# --- routing -----------------------------------------------------------------------------------------
def routed(settings, *rows) -> pd.DataFrame:
    return route_actions(frame(*rows), settings).set_index("id")


@pytest.mark.parametrize("confidence, verdict", [(0.74, "queued"), (0.75, "executed"), (0.99, "executed")])
def test_auto_executes_budget_changes_only_with_confidence(confidence, verdict):
    row = routed(AUTO, make_action(amount_pct=0.10, confidence=confidence)).iloc[0]
    assert row["verdict"] == verdict
    if verdict == "queued":
        assert any("confidence below 0.75" in r for r in row["reasons"])


def test_auto_queues_budget_changes_above_the_auto_limit():
    assert routed(AUTO, make_action(amount_pct=0.15)).iloc[0]["verdict"] == "queued"


@pytest.mark.parametrize("require_approval, verdict", [(True, "queued"), (False, "executed")])
def test_creative_variants_need_approval_while_required(require_approval, verdict):
    settings = load_settings(meta_auto_mode="auto", require_human_approval_creatives=require_approval)
    variant = make_action(type="create_variant", rule="creative_fatigue", amount_pct=np.nan)
    assert routed(settings, variant).iloc[0]["verdict"] == verdict


def test_suggest_mode_queues_everything_but_hard_stops():
    rows = [
        make_action(id="raise", amount_pct=0.10),
        make_action(id="winner", type="publish_winner", rule="ab_winner", amount_pct=np.nan),
        make_action(id="stop", type="pause", rule="hard_stop", amount_pct=np.nan),
    ]
    out = routed(SUGGEST, *rows)
    assert dict(out["verdict"]) == {"raise": "queued", "winner": "queued", "stop": "executed"}


def test_auto_never_executes_resume_or_reallocate():
    out = routed(AUTO, make_action(id="r", type="resume", rule="x", amount_pct=np.nan),
                 make_action(id="q", type="reallocate", rule="x", amount_pct=0.05))
    assert set(out["verdict"]) == {"queued"}


def test_routing_leaves_blocked_actions_blocked():
    out = routed(AUTO, make_action(id="b", verdict="policy_blocked", amount_pct=0.10))
    assert out.loc["b", "verdict"] == "policy_blocked"


def limited(settings, *rows) -> pd.DataFrame:
    return limit_writes(route_actions(frame(*rows), settings), settings).set_index("id")


def test_per_tick_limit_serves_protective_actions_first_and_exempts_hard_stops():
    settings = load_settings(meta_auto_mode="auto", max_actions_per_tick=2)
    rows = [
        make_action(id="up-big", entity_id="1", amount_pct=0.10, spend_7d=9000.0),
        make_action(id="up-small", entity_id="2", amount_pct=0.10, spend_7d=100.0),
        make_action(id="cut", entity_id="3", type="scale_down", rule="roas_low", amount_pct=0.10, spend_7d=50.0),
        make_action(id="winner", entity_type="ad", entity_id="4", type="publish_winner", rule="ab_winner", amount_pct=np.nan,
                    spend_7d=10.0, loser_ad_ids=("5",)),
        *[make_action(id=f"stop{i}", entity_id=f"9{i}", type="pause", rule="hard_stop", amount_pct=np.nan) for i in range(3)],
    ]
    out = limited(settings, *rows)
    assert out.loc[["cut", "winner"], "verdict"].tolist() == ["executed", "executed"]
    assert out.loc[["up-big", "up-small"], "verdict"].tolist() == ["deferred", "deferred"]
    assert all("per-tick limit of 2" in r[-1] for r in out.loc[["up-big", "up-small"], "reasons"])
    assert (out.loc[["stop0", "stop1", "stop2"], "verdict"] == "executed").all()


def test_per_tick_limit_then_by_spend():
    settings = load_settings(meta_auto_mode="auto", max_actions_per_tick=1)
    out = limited(settings, make_action(id="small", entity_id="1", amount_pct=0.1, spend_7d=100.0),
                  make_action(id="big", entity_id="2", amount_pct=0.1, spend_7d=900.0))
    assert dict(out["verdict"]) == {"big": "executed", "small": "deferred"}


# --- the same rules through the whole cycle -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_cooldown_from_recent_actions(mode):
    # Any write counts (a resume here: after a recent raise the raise would wait anyway, for a
    # full day since the change, engine/decisions.py).
    fresh = make_snapshot([campaign(roas=4.0, purchases=20)],
                          recent_actions=[recent_action("campaign", campaign_id(0), hours_ago=3, type="resume")])
    row = plan_actions(fresh, meta_auto_mode=mode).iloc[0]
    assert row["verdict"] == "safety_blocked" and any("cooldown" in r for r in row["reasons"])
    old = make_snapshot([campaign(roas=4.0, purchases=20)],
                        recent_actions=[recent_action("campaign", campaign_id(0), hours_ago=50)])
    assert plan_actions(old, meta_auto_mode=mode).iloc[0]["verdict"] in ("queued", "executed")


def test_hard_stop_ignores_cooldown_and_embargo_in_the_cycle():
    doc = make_snapshot([campaign(roas=0.5, purchases=10, age_hours=20)],
                        recent_actions=[recent_action("campaign", campaign_id(0), hours_ago=1)])
    row = plan_actions(doc).iloc[0]
    assert (row["type"], row["verdict"]) == ("pause", "executed")


def test_embargo_in_the_cycle():
    # A 30 h old ad set holding its own budget, in a 10-day-old campaign.
    spec = campaign(roas=4.0, purchases=20, cbo=False)
    spec.adsets[0].age_hours = 30
    row = plan_actions(make_snapshot([spec])).iloc[0]
    assert (row["entity_type"], row["verdict"]) == ("adset", "safety_blocked") and any("embargo" in r for r in row["reasons"])


def test_geo_violation_blocks_a_raise_in_the_cycle():
    spread = campaign(roas=4.0, purchases=20, countries=("ES", "FR"), country_shares={"ES": 0.2, "FR": 0.8})
    row = plan_actions(make_snapshot([spread])).iloc[0]
    assert (row["type"], row["verdict"]) == ("scale_up", "policy_blocked")
    assert any("Spain has 20%" in r for r in row["reasons"])


def test_spend_cap_in_the_cycle():
    # $9,000 of active budgets under a $9,050 cap: the +$100 raise of the $500 campaign gets the $50 left.
    doc = make_snapshot([campaign(roas=4.0, purchases=20, budget_usd=500), campaign(roas=2.0, budget_usd=8500)])
    row = plan_actions(doc, max_daily_spend_usd=9_050).iloc[0]
    assert row["verdict"] == "queued"
    assert row["new_budget_minor"] == 55_000
    assert any("room left under MAX_DAILY_SPEND_USD" in r for r in row["reasons"])
