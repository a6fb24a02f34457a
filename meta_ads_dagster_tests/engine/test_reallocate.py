"""Reallocate and resume (issue 15): proposed from the account, sized by marginal return, all or
none through both guard-rail engines, never executed without a person."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st

from meta_ads_dagster.engine.actions import keep_units_whole
from meta_ads_dagster.engine.history import history_frame
from meta_ads_dagster.engine.metrics import entity_table, roas_metrics
from meta_ads_dagster.engine.policy import PolicyEngine
from meta_ads_dagster.engine.reallocate import (
    DEFAULT_ELASTICITY, REALLOCATE_RULE, RESUME_MIN_ROAS, elasticities, marginal_move, propose_resumes,
)
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings

from .factories import AS_OF, AdSetSpec, AdSpec, CampaignSpec, adset_id, days_from, make_snapshot, plan_actions, recent_action, steady_days


def spread_campaign(roas=(1.6, 2.2, 2.9), budgets=(100.0, 100.0, 100.0), status=("ACTIVE",) * 3) -> CampaignSpec:
    """A campaign with ad set budgets (not CBO), one ad set per ROAS, each spending 100 a day."""
    return CampaignSpec(
        daily_budget_usd=None,
        adsets=[
            AdSetSpec(daily_budget_usd=b, status=s, ads=[AdSpec(days=steady_days(roas=r, purchases=20))])
            for r, b, s in zip(roas, budgets, status)
        ],
    )


ON = {"reallocate_proposals": True}  # off by default (BENCHMARKS.md, "Reallocate and resume")


def legs(actions: pd.DataFrame) -> pd.DataFrame:
    return actions[actions["rule"].eq(REALLOCATE_RULE)]


def test_a_reallocation_moves_budget_from_the_weakest_to_the_strongest_total_unchanged_and_is_queued():
    actions = plan_actions(make_snapshot([spread_campaign()]), **ON)
    found = legs(actions).set_index("entity_id")
    assert sorted(found.index) == [adset_id(0, 0), adset_id(0, 2)]
    assert found.at[adset_id(0, 0), "type"] == "scale_down" and found.at[adset_id(0, 2), "type"] == "scale_up"
    assert found["unit_id"].nunique() == 1
    assert (found["new_budget_minor"] - found["current_budget_minor"]).sum() == 0
    assert (found["new_budget_minor"] != found["current_budget_minor"]).all()
    assert found["verdict"].eq("queued").all()
    assert "marginal return" in found.at[adset_id(0, 2), "reasons"][0]


def test_a_reallocation_is_never_executed_in_auto_mode():
    actions = plan_actions(make_snapshot([spread_campaign()]), meta_auto_mode="auto", **ON)
    assert len(legs(actions)) == 2
    assert legs(actions)["verdict"].eq("queued").all()
    assert any("always needs human approval" in r for r in legs(actions)["reasons"].iloc[0])


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (spread_campaign(roas=(1.8, 2.2, 2.6)), "spread 1.44× < 1.5×"),
        (CampaignSpec(daily_budget_usd=None, adsets=[AdSetSpec(daily_budget_usd=100.0, ads=[AdSpec(days=steady_days(roas=r, purchases=20))])
                                                      for r in (1.6, 2.9)]), "two ad sets"),
        (CampaignSpec(daily_budget_usd=300.0, adsets=[AdSetSpec(ads=[AdSpec(days=steady_days(roas=r, purchases=20))]) for r in (1.6, 2.2, 2.9)]),
         "campaign budget (CBO)"),
        (spread_campaign(status=("ACTIVE", "ACTIVE", "PAUSED")), "the strongest is paused: two running"),
    ],
    ids=["narrow-spread", "two-adsets", "cbo", "paused-adset"],
)
def test_no_reallocation_without_its_conditions(spec, why):
    assert legs(plan_actions(make_snapshot([spec]), **ON)).empty, why


def test_reallocations_are_off_by_default():
    assert legs(plan_actions(make_snapshot([spread_campaign()]))).empty


def test_a_blocked_leg_blocks_the_whole_unit():
    """The recipient was written 5 h ago: its leg is in the cooldown, so the donor's leg is blocked too."""
    document = make_snapshot([spread_campaign()], recent_actions=[recent_action("adset", adset_id(0, 2), 5)])
    found = legs(plan_actions(document, **ON)).set_index("entity_id")
    assert found["verdict"].eq("safety_blocked").all()
    assert any("all or none" in r for r in found.at[adset_id(0, 0), "reasons"])


def test_an_ad_set_another_rule_writes_is_left_out():
    """The strongest (ROAS 3.4) gets its own roas_high raise: the two left are too few for a unit."""
    actions = plan_actions(make_snapshot([spread_campaign(roas=(1.6, 2.2, 3.4))]), **ON)
    assert legs(actions).empty
    assert actions.loc[actions["entity_id"].eq(adset_id(0, 2)), "rule"].tolist() == ["roas_high"]


def test_sizing_follows_marginal_return_not_average_roas():
    """A strongest ad set whose value barely grows with spend (elasticity 0.1) earns less from
    one more unit than a weaker one on a straight response (0.95): no move."""
    assert marginal_move(np.array([100.0]), np.array([100.0]), np.array([0.95 * 1.6]), np.array([0.1 * 2.9]),
                         np.array([0.95]), np.array([0.1]), np.array([20.0]))[0] == 0.0


@pytest.mark.parametrize("elasticity", [0.3, 0.6, 0.9])
def test_the_elasticity_is_the_log_log_slope_of_the_ad_sets_own_history(elasticity):
    spend = [50.0, 80.0, 120.0, 90.0, 150.0, 60.0, 110.0, 70.0, 130.0, 100.0]
    revenue = [round(3 * s ** elasticity, 2) for s in spend]
    document = make_snapshot([CampaignSpec(daily_budget_usd=None, adsets=[
        AdSetSpec(daily_budget_usd=100.0, ads=[AdSpec(days=days_from(spend=spend, revenue=revenue))]),
        AdSetSpec(daily_budget_usd=100.0, ads=[AdSpec(days=steady_days(roas=2.0))]),
    ])])
    fitted = elasticities(parse_snapshot(document), pd.Series([adset_id(0, 0), adset_id(0, 1)]))
    assert fitted.iloc[0] == pytest.approx(elasticity, abs=0.01)
    assert fitted.iloc[1] == DEFAULT_ELASTICITY  # a constant spend shows no slope


@given(
    budget_from=st.floats(10, 10_000), budget_to=st.floats(10, 10_000), roas_from=st.floats(0, 5), roas_to=st.floats(0, 10),
    b_from=st.floats(0.1, 0.95), b_to=st.floats(0.1, 0.95), room=st.floats(0, 0.4),
)
def test_the_move_stays_within_the_room_and_only_goes_where_it_earns_more(budget_from, budget_to, roas_from, roas_to, b_from, b_to, room):
    most = np.array([room * min(budget_from, budget_to)])
    move = marginal_move(np.array([budget_from]), np.array([budget_to]), np.array([b_from * roas_from]), np.array([b_to * roas_to]),
                         np.array([b_from]), np.array([b_to]), most)[0]
    assert 0.0 <= move <= most[0] + 1e-9
    if b_to * roas_to <= b_from * roas_from:
        assert move == 0.0


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    roas=st.lists(st.floats(0.9, 2.95), min_size=3, max_size=5),
    budgets=st.lists(st.sampled_from([20.0, 55.0, 100.0, 333.0, 2_000.0]), min_size=5, max_size=5),
    used=st.floats(0.0, 0.3),
    mode=st.sampled_from(["suggest", "auto"]),
)
def test_a_reallocation_keeps_the_total_and_its_legs_share_one_verdict(roas, budgets, used, mode):
    """Property: whatever the numbers, the cycle's reallocation legs share one verdict, and legs
    not blocked move the total by nothing."""
    spec = spread_campaign(roas=roas, budgets=budgets[: len(roas)], status=("ACTIVE",) * len(roas))
    history = [recent_action("adset", adset_id(0, 0), 30)]  # outside the cooldown, inside nothing else
    actions = plan_actions(make_snapshot([spec], recent_actions=history), meta_auto_mode=mode, **ON)
    for _, unit in legs(actions).groupby("unit_id"):
        assert unit["verdict"].nunique() == 1
        assert len(unit) == 2
        if unit["verdict"].iloc[0] == "queued":
            assert (unit["new_budget_minor"] - unit["current_budget_minor"]).sum() == 0


def test_keep_units_whole_blocks_a_clamped_unit():
    frame = pd.DataFrame({
        "unit_id": ["u", "u", None], "verdict": ["proposed"] * 3, "type": ["scale_down", "scale_up", "pause"],
        "entity_id": ["1", "2", "3"], "current_budget_minor": [1000.0, 1000.0, np.nan],
        "new_budget_minor": [800.0, 1150.0, np.nan], "reasons": [[], [], []],
    })
    out = keep_units_whole(frame)
    assert out["verdict"].tolist() == ["policy_blocked", "policy_blocked", "proposed"]


# --- resume ------------------------------------------------------------------------------------------
def paused_adset_document(roas: float, purchases: int = 20) -> dict:
    return make_snapshot([CampaignSpec(daily_budget_usd=None, adsets=[
        AdSetSpec(daily_budget_usd=100.0, status="PAUSED", ads=[AdSpec(days=steady_days(roas=roas, purchases=purchases))]),
        AdSetSpec(daily_budget_usd=100.0, ads=[AdSpec(days=steady_days(roas=2.0))]),
    ])])


def pauses(entity_id: str, rule: str = "hard_stop", type: str = "pause") -> pd.DataFrame:
    return history_frame([pd.DataFrame([{
        "entity_type": "adset", "entity_id": entity_id, "type": type, "rule": rule, "amount_pct": np.nan,
        "executed_at": pd.Timestamp(AS_OF) - pd.Timedelta(hours=60), "loser_ad_ids": None,
    }])])


def resumes_for(document: dict, history: pd.DataFrame, **settings) -> pd.DataFrame:
    snapshot = parse_snapshot(document)
    return propose_resumes(snapshot, roas_metrics(snapshot, entity_table(snapshot)), load_settings(**settings), history)


def test_a_recovered_entity_the_hard_stop_paused_is_proposed_for_resuming_and_queued():
    document = paused_adset_document(roas=1.8)
    found = resumes_for(document, pauses(adset_id(0, 0)))
    assert found["entity_id"].tolist() == [adset_id(0, 0)] and found["type"].tolist() == ["resume"]
    from meta_ads_dagster.engine.cycle import apply_guard_rails
    from meta_ads_dagster.engine.routing import route_actions
    from meta_ads_dagster.engine.safety import AccountSpend
    from meta_ads_dagster.engine.reallocate import _as_actions

    settings = load_settings(meta_auto_mode="auto")
    routed = route_actions(apply_guard_rails(_as_actions(found, parse_snapshot(document)), AccountSpend(0.0, 0.0), settings), settings)
    assert routed["verdict"].tolist() == ["queued"]


@pytest.mark.parametrize(
    ("history", "roas", "why"),
    [
        (pauses(adset_id(0, 0), rule="roas_low"), 1.8, "a pause that was not the hard stop's"),
        (pauses(adset_id(0, 0), type="resume"), 1.8, "its last write was not a pause"),
        (pauses(adset_id(0, 1)), 1.8, "another entity was paused"),
        (history_frame([]), 1.8, "nothing in the ledger: a person paused it"),
        (pauses(adset_id(0, 0)), 1.2, "matured ROAS still in the cut zone"),
    ],
    ids=["other-rule", "resumed-since", "other-entity", "paused-by-a-person", "not-recovered"],
)
def test_no_resume_without_its_conditions(history, roas, why):
    assert resumes_for(paused_adset_document(roas), history).empty, why


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roas=st.floats(0.0, 4.0), purchases=st.integers(0, 40), hard_stop_roas=st.floats(0.5, 1.45))
def test_never_resumes_an_entity_the_hard_stop_holds(roas, purchases, hard_stop_roas):
    document = paused_adset_document(round(roas, 2), purchases)
    found = resumes_for(document, pauses(adset_id(0, 0)), hard_stop_roas=hard_stop_roas)
    if found.empty:
        return
    halted, _ = PolicyEngine(load_settings(hard_stop_roas=hard_stop_roas)).must_halt(found["roas_7d"], found["confidence"], found["spend_7d"])
    assert not halted.any()
    assert (found["roas_matured"] >= RESUME_MIN_ROAS).all()


@pytest.mark.parametrize(("setting", "resumed"), [(False, []), (True, [adset_id(0, 0)])], ids=["default-off", "on"])
def test_resumes_are_proposed_only_when_the_setting_asks(setting, resumed):
    from meta_ads_dagster.engine.actions import empty_actions
    from meta_ads_dagster.engine.reallocate import propose_more

    snapshot = parse_snapshot(paused_adset_document(roas=1.8))
    metrics = roas_metrics(snapshot, entity_table(snapshot))
    settings = load_settings(resume_proposals=setting)
    found = propose_more(snapshot, metrics, settings, pd.Series(dtype=object), empty_actions(), history_frame([]), pauses(adset_id(0, 0)))
    assert found.loc[found["type"].eq("resume"), "entity_id"].tolist() == resumed
