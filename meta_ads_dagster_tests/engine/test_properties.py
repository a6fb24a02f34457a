"""Hypothesis: whatever the account and the (valid) settings, nothing that passes the guard rails breaks them.

Each example is a random account from the factory (budgets on campaigns or ad sets, ROAS, spend,
spikes, ages, country mixes, recent actions) and random settings within their valid ranges, in both
modes. The invariants are checked against values recomputed here from the snapshot *document*
(ages, cooldowns, country shares, active budgets), not against the engine's own columns.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.safety import AUTO_MIN_CONFIDENCE, COOLDOWN_HOURS
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings

from .factories import (
    AdSetSpec, AdSpec, CampaignSpec, Day, adset_id, campaign_id, days_from, make_snapshot, recent_action,
)

TOL = 1e-6
PASSED = ("executed", "queued")
COUNTRY_MIXES = [
    (("ES",), None),
    (("ES",), None),
    (("ES", "FR"), "random"),
    (("PT",), None),
    (("ES", "FR"), "random"),
    (("FR", "DE"), "random"),
    (("ES", "PT", "FR"), "random"),
]


@st.composite
def adset_specs(draw, cbo: bool) -> AdSetSpec:
    countries, mix = draw(st.sampled_from(COUNTRY_MIXES))
    shares = None
    if mix:
        weights = draw(st.lists(st.integers(0, 10), min_size=len(countries), max_size=len(countries)).filter(any))
        shares = dict(zip(countries, weights))
    ads = []
    for _ in range(draw(st.integers(1, 2))):
        spend = draw(st.sampled_from([5.0, 20.0, 60.0, 150.0, 700.0]))
        roas = draw(st.sampled_from([0.0, 0.5, 0.85, 1.2, 2.0, 2.5, 3.2, 3.6, 4.5, 5.0, 8.0]))
        purchases = draw(st.sampled_from([0, 1, 4, 12, 20, 40]))
        last = draw(st.sampled_from([None, 0, 3 * purchases + 10]))  # a possible spike yesterday
        n_days = draw(st.sampled_from([3, 8]))
        per_day = [purchases] * (n_days - 1) + [purchases if last is None else last]
        # Never fewer impressions than purchases in a day: the format refuses such a row.
        impressions = max(draw(st.sampled_from([50, 400, 3000, 20_000, 20_000])), max(per_day))
        days = days_from(spend=[spend] * n_days, roas=roas, purchases=per_day, impressions=impressions,
                         clicks=[impressions // 50] * (n_days - 1) + [draw(st.sampled_from([0] + [impressions // 50] * 4))])
        ads.append(AdSpec(
            days=days,
            today=Day(spend=draw(st.sampled_from([0.0, spend / 2, spend * 3])), revenue=0, purchases=0, impressions=10, clicks=0),
            age_hours=draw(st.sampled_from([None] * 4 + [30.0, 100.0])),
            status=draw(st.sampled_from(["ACTIVE"] * 5 + ["PAUSED"])),
        ))
    return AdSetSpec(
        ads=ads, countries=countries, country_shares=shares,
        daily_budget_usd=None if cbo else draw(st.sampled_from([0.0, 3.33, 50.0, 123.43, 333.33, 800.0, 1_234.57, 4_900.0])),
        age_hours=draw(st.sampled_from([None] * 4 + [20.0])),
    )


@st.composite
def accounts(draw) -> dict:
    specs = []
    for _ in range(draw(st.integers(1, 3))):
        cbo = draw(st.booleans())
        specs.append(CampaignSpec(
            adsets=[draw(adset_specs(cbo)) for _ in range(draw(st.integers(1, 2)))],
            daily_budget_usd=draw(st.sampled_from([0.0, 12.5, 123.43, 500.0, 987.65, 2_000.0, 4_900.0, 7_000.0])) if cbo else None,
            age_hours=draw(st.sampled_from([240.0] * 4 + [10.0, 47.0, 49.0, 80.0])),
            status=draw(st.sampled_from(["ACTIVE"] * 6 + ["PAUSED"])),
        ))
    entities = [("campaign", campaign_id(c)) for c in range(len(specs))] + [
        ("adset", adset_id(c, s)) for c, spec in enumerate(specs) for s in range(len(spec.adsets))
    ]
    recent = [
        recent_action(kind, ident, hours_ago=draw(st.sampled_from([0.5, 12.0, 23.9, 24.1, 72.0])))
        for kind, ident in draw(st.lists(st.sampled_from(entities), max_size=3, unique=True))
    ]
    return make_snapshot(specs, recent_actions=recent)


@st.composite
def valid_settings(draw) -> dict:
    daily = draw(st.sampled_from([0.05, 0.10, 0.20, 0.33, 0.5]))
    return {
        "meta_auto_mode": draw(st.sampled_from(["suggest", "auto"])),
        "max_daily_change_pct": daily,
        "max_auto_change_pct": daily * draw(st.sampled_from([0.25, 0.5, 1.0])),
        "max_daily_spend_usd": draw(st.sampled_from([100.0, 1_000.0, 3_000.0, 8_000.0, 20_000.0])),
        "max_campaign_budget_usd": draw(st.sampled_from([100.0, 600.0, 2_500.0, 5_000.0, 5_000.0])),
        "max_actions_per_tick": draw(st.integers(0, 3)),
        "max_campaigns_per_tick": draw(st.integers(1, 3)),
        "min_age_hours": draw(st.sampled_from([0.0, 24.0, 48.0, 48.0, 96.0])),
        "min_impressions": draw(st.sampled_from([0, 1000])),
        "min_spend_usd": draw(st.sampled_from([0.0, 100.0])),
        "min_spain_percentage": draw(st.sampled_from([0.0, 0.35, 0.6])),
        "max_single_country_pct": draw(st.sampled_from([0.4, 0.7, 1.0])),
        "hard_stop_roas": draw(st.sampled_from([0.5, 0.9, 1.2])),
        "hard_stop_confidence": draw(st.sampled_from([0.3, 0.7, 0.9])),
        "creative_embargo_hours": draw(st.sampled_from([0.0, 72.0])),
        "require_human_approval_creatives": draw(st.booleans()),
    }


# --- oracles computed from the document -------------------------------------------------------------
def _ages(doc: dict, as_of: datetime) -> dict[tuple[str, str], float]:
    ages = {}
    for kind, key in (("campaign", "campaigns"), ("adset", "adsets"), ("ad", "ads")):
        for obj in doc[key]:
            ages[(kind, obj["id"])] = (as_of - datetime.fromisoformat(obj["created_time"])).total_seconds() / 3600
    return ages


def _last_action_hours(doc: dict, as_of: datetime) -> dict[tuple[str, str], float]:
    hours: dict[tuple[str, str], float] = {}
    for r in doc.get("recent_actions") or []:
        key = (r["entity_type"], r["entity_id"])
        h = (as_of - datetime.fromisoformat(r["executed_at"])).total_seconds() / 3600
        hours[key] = min(h, hours.get(key, np.inf))
    return hours


def _active_budget_and_spend_today(doc: dict, today: date) -> tuple[float, float]:
    campaigns = {c["id"]: c for c in doc["campaigns"]}
    total = sum(int(c["daily_budget"]) for c in doc["campaigns"] if c["status"] == "ACTIVE" and c["daily_budget"] is not None)
    total += sum(
        int(a["daily_budget"]) for a in doc["adsets"]
        if a["daily_budget"] is not None and a["status"] == "ACTIVE" and campaigns[a["campaign_id"]]["status"] == "ACTIVE"
    )
    spend_today = sum(float(r["spend"]) for r in doc["insights"] if r["date_start"] == today.isoformat())
    return total / 100, spend_today


def _geo_violation(doc: dict, settings, entity_type: str, entity_id: str, today: date) -> bool:
    column = {"campaign": "campaign_id", "adset": "adset_id", "ad": "ad_id"}[entity_type]
    start = (today - timedelta(days=7)).isoformat()
    spend: dict[str, float] = {}
    for r in doc["insights"]:
        if r[column] == entity_id and start <= r["date_start"] < today.isoformat():
            spend[r["country"]] = spend.get(r["country"], 0.0) + float(r["spend"])
    adsets = [a for a in doc["adsets"] if (a["campaign_id"] if entity_type == "campaign" else a["id"]) == entity_id]
    countries = tuple(sorted({c for a in adsets for c in a["targeting"]["geo_locations"]["countries"]}))
    total = sum(spend.values())
    spain = spend.get("ES", 0.0) / total if total > 0 else 0.0
    top = max(spend.values()) / total if total > 0 else 0.0
    spain_low = "ES" in countries and spain < settings.min_spain_percentage - 1e-9
    concentrated = countries != ("ES",) and top > settings.max_single_country_pct + 1e-9
    return spain_low or concentrated


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=accounts(), overrides=valid_settings())
def test_nothing_that_passes_breaks_a_guard_rail(doc, overrides):
    settings = load_settings(**overrides)
    snapshot = parse_snapshot(doc)
    actions, _ = plan_cycle(snapshot, settings)
    as_of = datetime.fromisoformat(doc["as_of"])
    today = as_of.date()  # the factory's accounts are in UTC

    assert set(actions["verdict"]) <= {"executed", "queued", "policy_blocked", "safety_blocked", "deferred", "superseded"}
    assert not actions.duplicated(["entity_type", "entity_id"]).any()

    passed = actions[actions["verdict"].isin(PASSED)]
    executed = actions[actions["verdict"].eq("executed")]
    hard_stop = actions["rule"].eq("hard_stop")
    budget = passed[passed["type"].isin(["scale_up", "scale_down"])]
    raises = passed[passed["type"].eq("scale_up")]

    # The mode's change limit (clamped, never exceeded), in whole minor units.
    current, new = budget["current_budget_minor"].astype(float), budget["new_budget_minor"].astype(float)
    assert (new == new.round()).all()
    assert ((new - current).abs() <= current * settings.budget_change_limit + TOL).all()
    assert ((new > current) == budget["type"].eq("scale_up")).all()

    # MAX_CAMPAIGN_BUDGET_USD.
    assert (raises["new_budget_minor"].astype(float) / 100 <= settings.max_campaign_budget_usd + TOL).all()

    # The spend cap: raises that may still happen fit in the room under MAX_DAILY_SPEND_USD.
    total_budget, spend_today = _active_budget_and_spend_today(doc, today)
    raised = float((raises["new_budget_minor"].astype(float) - raises["current_budget_minor"].astype(float)).sum()) / 100
    if not raises.empty:
        assert total_budget + raised <= settings.max_daily_spend_usd + TOL
        assert spend_today + raised <= settings.max_daily_spend_usd + TOL

    # Embargo and cooldown (hard stops excepted), for anything that may still happen.
    ages, last_action = _ages(doc, as_of), _last_action_hours(doc, as_of)
    for row in actions[actions["verdict"].isin(PASSED) & ~hard_stop].itertuples():
        key = (row.entity_type, row.entity_id)
        assert ages[key] >= settings.min_age_hours - TOL, (key, ages[key])
        assert last_action.get(key, np.inf) >= COOLDOWN_HOURS, (key, last_action.get(key))

    # The per-tick limit on live actions besides hard stops.
    assert (executed["rule"] != "hard_stop").sum() <= settings.max_actions_per_tick

    # What each mode may execute.
    live = executed[executed["rule"] != "hard_stop"]
    if not settings.is_auto:
        assert live.empty
    else:
        scaled = live[live["type"].isin(["scale_up", "scale_down"])]
        assert (scaled["confidence"].astype(float) >= AUTO_MIN_CONFIDENCE).all()
        assert (scaled["amount_pct"].astype(float) <= settings.max_auto_change_pct + TOL).all()
        assert not live["type"].isin(["resume", "reallocate"]).any()
        if settings.require_human_approval_creatives:
            assert not live["type"].eq("create_variant").any()

    # No raise that may still happen breaks the geo rules.
    for row in raises.itertuples():
        assert not _geo_violation(doc, settings, row.entity_type, row.entity_id, today), (row.entity_type, row.entity_id)

    # Clamp, don't drop: no budget action is ever blocked for exceeding the mode's change limit.
    blocked = actions[actions["verdict"].eq("policy_blocked")]
    assert not any("limit" in reason and "exceeds" in reason for reasons in blocked["reasons"] for reason in reasons)


@hyp_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=accounts(), overrides=valid_settings())
def test_plan_is_deterministic(doc, overrides):
    settings = load_settings(**overrides)
    first, _ = plan_cycle(parse_snapshot(doc), settings)
    second, _ = plan_cycle(parse_snapshot(doc), settings)
    pd.testing.assert_frame_equal(first, second)
