"""The simulated market (issue 12): deterministic, every snapshot valid, each modelled effect seen.

Markets here are small (a few dozen campaigns) so the file runs in seconds; each test reads the
effect it is about through the snapshot (what Meta would report) or ``truth_daily`` (what happened).
"""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta_ads_dagster.engine.snapshot import parse_snapshot
import meta_ads_dagster.market
from meta_ads_dagster.market import Market, MarketParams, MarketRefused

DAY = 24 * 60


def insights(doc: dict) -> pd.DataFrame:
    rows = pd.DataFrame(doc["insights"])
    return rows.assign(
        spend=rows["spend"].astype(float), impressions=rows["impressions"].astype(int), clicks=rows["clicks"].astype(int),
        purchases=[int(a[0]["value"]) for a in rows["actions"]],
    )


def budget_holders(doc: dict) -> dict[tuple[str, str], int]:
    """(entity_type, id) → daily budget in minor units, for every object holding a budget."""
    return {
        (kind, row["id"]): int(row["daily_budget"])
        for kind, key in (("campaign", "campaigns"), ("adset", "adsets"))
        for row in doc[key]
        if row["daily_budget"] is not None
    }


def adset_holders(doc: dict, learning: str) -> list[dict]:
    """Ad sets that hold their own budget and whose learning stage is ``learning``."""
    return [s for s in doc["adsets"] if s["daily_budget"] is not None and s["learning_stage_info"]["status"] == learning]


def local_date(market: Market) -> str:
    return market.now.tz_convert(market.params.timezone_name).date().isoformat()


def plain_json(value) -> bool:
    """Only the JSON types themselves (no numpy scalars that merely behave like them)."""
    if isinstance(value, dict):
        return all(type(k) is str and plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_json(v) for v in value)
    return type(value) in (str, int, float, bool, type(None))


def test_the_same_seed_gives_the_same_market_and_another_seed_another():
    first, second, other = Market(campaigns=30, seed=3), Market(campaigns=30, seed=3), Market(campaigns=30, seed=4)
    for market in (first, second, other):
        market.advance(DAY + 300)
    assert first.snapshot() == second.snapshot()
    pd.testing.assert_frame_equal(first.truth_daily(), second.truth_daily())
    assert first.snapshot()["insights"] != other.snapshot()["insights"]


def test_every_snapshot_parses_and_has_a_history_and_both_kinds_of_budget():
    market = Market(campaigns=40, seed=1)
    first = market.snapshot()
    parsed = parse_snapshot(first)
    assert parsed.account_id == "act_2026" and first["as_of"] == market.now.isoformat()
    assert market.now == pd.Timestamp("2026-11-02T00:00:00+01:00")
    days = {row["date_start"] for row in first["insights"]}
    assert len(days) >= 8  # eight full days before today: 7-day windows work at once
    assert any(c["daily_budget"] for c in first["campaigns"]) and any(s["daily_budget"] for s in first["adsets"])
    ad = first["ads"][0]["id"]
    variant = market.create_variant(ad)["id"]
    for _ in range(3):
        market.advance(17 * 60)  # uneven steps cross midnights at different hours
        doc = market.snapshot()
        parse_snapshot(doc)
    assert any(a["id"] == variant and a["source_ad_id"] == ad for a in doc["ads"])
    assert plain_json(doc) and plain_json(market.to_state())


def test_a_budget_edit_above_the_threshold_restarts_learning_and_one_below_does_not():
    market = Market(campaigns=40, seed=2)
    settled = [s for s in market.snapshot()["adsets"] if s["daily_budget"] and s["learning_stage_info"]["status"] != "LEARNING"]
    big, small = settled[0], settled[1]
    market.update_budget("adset", small["id"], round(int(small["daily_budget"]) * 1.10))
    assert market.learning_resets == 0
    result = market.update_budget("adset", big["id"], round(int(big["daily_budget"]) * 1.5))
    assert result["learning_restarted"] and market.learning_resets == 1
    after = {s["id"]: s["learning_stage_info"]["status"] for s in market.snapshot()["adsets"]}
    assert after[big["id"]] == "LEARNING" and after[small["id"]] != "LEARNING"


def test_resuming_after_a_long_pause_restarts_learning_and_a_short_pause_does_not():
    market = Market(campaigns=40, seed=2)
    holders = adset_holders(market.snapshot(), "SUCCESS") + adset_holders(market.snapshot(), "FAIL")
    short, long = holders[0]["id"], holders[1]["id"]
    market.pause("adset", long)
    market.advance(5 * DAY)
    market.pause("adset", short)
    market.advance(2 * DAY)
    assert not market.resume("adset", short)["learning_restarted"]
    assert market.resume("adset", long)["learning_restarted"] and market.learning_resets == 1


def test_learning_costs_purchases():
    """The same market, one ad set per holder restarted: fewer purchases per dollar while learning."""
    calm, edited = Market(campaigns=40, seed=6), Market(campaigns=40, seed=6, params=MarketParams(significant_edit_pct=0.0))
    for market in (calm, edited):
        for (kind, entity_id), budget in budget_holders(market.snapshot()).items():
            market.update_budget(kind, entity_id, budget + 100)  # +$1: only `edited` counts it as significant
        market.advance(2 * DAY)
    assert calm.learning_resets == 0 and edited.learning_resets > 20
    roas = [m.truth_daily()["revenue"].sum() / m.truth_daily()["spend"].sum() for m in (calm, edited)]
    assert roas[1] < roas[0] * 0.9


def test_learning_ends_after_50_purchases_or_else_is_limited_after_7_days():
    market = Market(campaigns=40, seed=6, params=MarketParams(significant_edit_pct=0.0, arrivals_per_day_share=0))
    for (kind, entity_id), budget in budget_holders(market.snapshot()).items():
        market.update_budget(kind, entity_id, budget + 100)  # every ad set starts learning again
    assert {s["learning_stage_info"]["status"] for s in market.snapshot()["adsets"]} == {"LEARNING"}
    market.advance(7 * DAY + 60)
    stages = [s["learning_stage_info"] for s in market.snapshot()["adsets"]]
    assert {s["status"] for s in stages} == {"SUCCESS", "FAIL"}
    assert all((s["status"] == "SUCCESS") == (s["conversions"] >= 50) for s in stages)


def test_conversions_are_reported_late_and_restated_toward_the_truth():
    market = Market(campaigns=60, seed=2)
    market.advance(DAY + 10 * 60)  # 10:00 on the second day
    yesterday = (pd.Timestamp(local_date(market)) - pd.Timedelta(days=1)).date().isoformat()

    def reported() -> int:
        rows = insights(market.snapshot())
        return int(rows.loc[rows["date_start"] == yesterday, "purchases"].sum())

    early = reported()
    market.advance(DAY)
    later = reported()
    truth = int(market.truth_daily().set_index("date").loc[yesterday, "purchases"])
    assert early < later <= truth
    assert early < 0.9 * truth  # what a cycle sees for yesterday is incomplete


def test_saturation_makes_the_second_dollar_earn_less_than_the_first():
    params = MarketParams(learning_cpa_factor=1.0)  # no learning penalty: only the response curve differs
    base, doubled = Market(campaigns=40, seed=5, params=params), Market(campaigns=40, seed=5, params=params)
    for (kind, entity_id), budget in budget_holders(doubled.snapshot()).items():
        doubled.update_budget(kind, entity_id, 2 * budget)
    for market in (base, doubled):
        market.advance(3 * DAY)
    (s1, r1), (s2, r2) = ((m.truth_daily()["spend"].sum(), m.truth_daily()["revenue"].sum()) for m in (base, doubled))
    assert s2 > 1.8 * s1
    assert (r2 - r1) / (s2 - s1) < 0.8 * (r1 / s1)


def holder_day_spend(doc: dict) -> dict[tuple[str, str], float]:
    """Spend per (budget holder id, date) from the insights."""
    cbo = {c["id"] for c in doc["campaigns"] if c["daily_budget"] is not None}
    spend: dict[tuple[str, str], float] = defaultdict(float)
    for row in doc["insights"]:
        holder = row["campaign_id"] if row["campaign_id"] in cbo else row["adset_id"]
        spend[(holder, row["date_start"])] += float(row["spend"])
    return spend


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    edits=st.lists(st.tuples(st.integers(0, 95), st.integers(0, 50), st.floats(0.2, 3.0)), max_size=12),
)
def test_a_day_never_spends_more_than_the_overspend_limit_allows(seed, edits):
    """Whatever the budget edits, a holder's day spends at most 1.25 × the largest budget it had
    that day (delivery made very noisy, so days hit the cap)."""
    market = Market(campaigns=4, seed=seed, params=MarketParams(daily_delivery_sigma=0.6, arrivals_per_day_share=0))
    budgets = budget_holders(market.snapshot())
    holders = sorted(budgets)
    largest: dict[tuple[str, str], int] = defaultdict(int)
    by_step = defaultdict(list)
    for step, holder, factor in edits:
        by_step[step].append((holders[holder % len(holders)], factor))
    for step in range(96):  # two days
        for (kind, entity_id), factor in by_step[step]:
            try:
                market.update_budget(kind, entity_id, max(100, round(budgets[(kind, entity_id)] * factor)))
                budgets[(kind, entity_id)] = max(100, round(budgets[(kind, entity_id)] * factor))
            except MarketRefused:
                pass  # the hourly edit limit
        day = local_date(market)
        for (kind, entity_id), budget in budgets.items():
            largest[(entity_id, day)] = max(largest[(entity_id, day)], budget)
        market.advance(30)
    assert budget_holders(market.snapshot()) == budgets
    for (holder, day), spend in holder_day_spend(market.snapshot()).items():
        if (holder, day) in largest:  # days before the edits started have the budget of the start
            assert spend <= 1.25 * largest[(holder, day)] / 100 + 0.05


def test_days_overspend_but_never_by_more_than_a_quarter():
    market = Market(campaigns=30, seed=8, params=MarketParams(daily_delivery_sigma=0.4))
    doc = market.snapshot()
    budgets = {entity_id: budget / 100 for (_, entity_id), budget in budget_holders(doc).items()}
    today = local_date(market)
    ratios = [spend / budgets[holder] for (holder, day), spend in holder_day_spend(doc).items() if day != today]
    assert max(ratios) > 1.1  # some days go over the budget...
    assert max(ratios) <= 1.25 + 1e-3  # ...never past the limit


def test_the_fifth_budget_edit_within_an_hour_is_refused():
    market = Market(campaigns=20, seed=4)
    (kind, entity_id), budget = next(iter(budget_holders(market.snapshot()).items()))
    for k in range(4):
        market.update_budget(kind, entity_id, budget + 100 * (k + 1))
    with pytest.raises(MarketRefused, match="4 times in the last hour"):
        market.update_budget(kind, entity_id, budget)
    market.advance(60)
    market.update_budget(kind, entity_id, budget)  # an hour later the window has room again


def test_writes_meta_would_refuse_are_refused():
    market = Market(campaigns=20, seed=4)
    doc = market.snapshot()
    cbo = next(c for c in doc["campaigns"] if c["daily_budget"] is not None)
    not_cbo = next(c for c in doc["campaigns"] if c["daily_budget"] is None)
    under_cbo = next(s for s in doc["adsets"] if s["campaign_id"] == cbo["id"])
    for entity_type, entity_id in (("adset", under_cbo["id"]), ("campaign", not_cbo["id"]), ("ad", doc["ads"][0]["id"])):
        with pytest.raises(MarketRefused, match="has no daily budget"):
            market.update_budget(entity_type, entity_id, 10_000)
    with pytest.raises(MarketRefused, match="does not exist"):
        market.pause("campaign", "999")
    with pytest.raises(MarketRefused, match="does not exist"):
        market.publish_winner(doc["ads"][0]["id"], ["999"])
    assert market.snapshot() == doc  # nothing changed


def test_fatigue_lowers_ctr_and_a_variant_restores_it():
    params = MarketParams(fatigue_days_range=(4.0, 6.0), initial_exposure_range=(0.0, 0.0), arrivals_per_day_share=0)
    market = Market(campaigns=30, seed=9, params=params)

    def ctr(doc: dict, ads: set[str], days_back: int) -> float:
        day = (pd.Timestamp(local_date(market)) - pd.Timedelta(days=days_back)).date().isoformat()
        rows = insights(doc)
        rows = rows[rows["ad_id"].isin(ads) & (rows["date_start"] == day)]
        return rows["clicks"].sum() / rows["impressions"].sum()

    doc = market.snapshot()
    ads = {a["id"] for a in doc["ads"]}
    tired = ctr(doc, ads, 1)
    assert tired < 0.75 * ctr(doc, ads, 8)  # a week more of exposure

    resets = market.learning_resets
    variants = {market.create_variant(ad)["id"]: ad for ad in sorted(ads)}
    market.advance(6 * 60)  # past the creative review
    for variant, ad in variants.items():
        market.resume("ad", variant)
        market.pause("ad", ad)
    assert market.learning_resets > resets  # a new creative is a significant edit
    market.advance(DAY)
    assert ctr(market.snapshot(), set(variants), 1) > 1.3 * tired


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
def test_a_variant_created_active_delivers_after_its_review_and_one_created_paused_waits(status):
    market = Market(campaigns=30, seed=3)
    doc = market.snapshot()
    settled = {s["id"] for s in doc["adsets"] if s["learning_stage_info"]["status"] != "LEARNING"}
    source = next(a for a in doc["ads"] if a["status"] == "ACTIVE" and a["adset_id"] in settled and any(i["ad_id"] == a["id"] for i in doc["insights"]))
    adset = source["adset_id"]
    resets = market.learning_resets
    created = market.create_variant(source["id"], status)
    assert created["status"] == status and created["learning_restarted"] == (status == "ACTIVE")
    assert market.learning_resets == resets + (status == "ACTIVE")  # a new creative in the ad set is a significant edit
    learning = {s["id"]: s["learning_stage_info"]["status"] for s in market.snapshot()["adsets"]}
    assert (learning[adset] == "LEARNING") == (status == "ACTIVE")

    def delivered(doc: dict) -> int:
        return sum(int(i["impressions"]) for i in doc["insights"] if i["ad_id"] == created["id"])

    market.advance(3 * 60)  # still in review (creative_review_hours 4): nothing yet, whatever its status
    assert delivered(market.snapshot()) == 0
    market.advance(DAY)
    doc = market.snapshot()
    assert next(a["status"] for a in doc["ads"] if a["id"] == created["id"]) == status
    assert (delivered(doc) > 0) == (status == "ACTIVE")


def test_a_variant_status_other_than_active_or_paused_is_refused():
    market = Market(campaigns=10, seed=3)
    ads = len(market.snapshot()["ads"])
    with pytest.raises(MarketRefused, match="variant status 'ARCHIVED'"):
        market.create_variant(market.snapshot()["ads"][0]["id"], "ARCHIVED")
    assert len(market.snapshot()["ads"]) == ads


def test_an_outage_day_reports_almost_no_purchases_while_the_truth_goes_on():
    market = Market(campaigns=30, seed=11, params=MarketParams(outage_probability=0.15, sale_probability=0.0))
    market.advance(3 * DAY)
    doc, today = market.snapshot(), local_date(market)
    reported = insights(doc).groupby(["campaign_id", "date_start"])["purchases"].sum()
    truth = market.truth_daily(by_campaign=True, include_warmup=True).set_index(["campaign_id", "date"])["purchases"]
    outages = market.events().query("kind == 'outage'")
    seen = [
        (reported.get((row.campaign_id, row.date), 0), truth[(row.campaign_id, row.date)])
        for row in outages.itertuples()
        if row.date >= min(reported.index.get_level_values(1)) and row.date < today and truth.get((row.campaign_id, row.date), 0) >= 10
    ]
    assert len(seen) >= 3
    assert all(shown <= 0.1 * true for shown, true in seen)
    normal_days = truth.index.difference(list(zip(outages["campaign_id"], outages["date"])))
    normal = [(reported.get(key, 0), truth[key]) for key in normal_days if key in reported.index and truth[key] >= 10]
    assert sum(r for r, _ in normal) > 0.8 * sum(t for _, t in normal)


def test_new_campaigns_arrive_during_the_run():
    market = Market(campaigns=100, seed=12)
    before = {c["id"] for c in market.snapshot()["campaigns"]}
    market.advance(3 * DAY)
    doc = market.snapshot()
    new = [c for c in doc["campaigns"] if c["id"] not in before]
    assert new and all(pd.Timestamp(c["created_time"]) > pd.Timestamp("2026-11-01T22:00:00+00:00") for c in new)
    assert market.learning_resets == 0  # launches learn, but are not resets caused by an edit


def test_a_sale_day_converts_two_to_three_times_better():
    market = Market(campaigns=30, seed=14, params=MarketParams(sale_probability=0.1, outage_probability=0.0))
    market.advance(2 * DAY)
    truth = market.truth_daily(by_campaign=True, include_warmup=True).set_index(["campaign_id", "date"])
    per_dollar = truth["purchases"] / truth["spend"]
    sales = market.events().query("kind == 'sale'").set_index(["campaign_id", "date"]).index.intersection(truth.index)
    lifted = [per_dollar[key] / per_dollar[key[0]].drop(key[1]).mean() for key in sales if truth.loc[key, "spend"] > 200]
    assert len(lifted) >= 5 and 1.8 < sum(lifted) / len(lifted) < 3.5


def test_total_daily_budget_is_the_sum_of_the_active_holders_budgets():
    market = Market(campaigns=20, seed=4)
    doc = market.snapshot()
    assert market.total_daily_budget() == sum(budget_holders(doc).values()) / 100
    (kind, entity_id), budget = next(iter(budget_holders(doc).items()))
    market.pause(kind, entity_id)
    assert market.total_daily_budget() == pytest.approx(sum(budget_holders(doc).values()) / 100 - budget / 100)


def test_a_saved_market_continues_exactly_as_the_original():
    original = Market(campaigns=30, seed=13)
    original.advance(5 * 60)
    copy = Market.from_state(json.loads(json.dumps(original.to_state())))
    for market in (original, copy):
        doc = market.snapshot()
        (kind, entity_id), budget = next(iter(budget_holders(doc).items()))
        market.update_budget(kind, entity_id, budget * 2)
        market.create_variant(doc["ads"][0]["id"])
        market.pause("ad", doc["ads"][1]["id"])
        market.advance(DAY + 90)
    assert copy.snapshot() == original.snapshot()
    pd.testing.assert_frame_equal(copy.truth_daily(), original.truth_daily())
    assert copy.learning_resets == original.learning_resets
    assert copy.to_state() == original.to_state() == json.loads(json.dumps(original.to_state()))


def test_the_market_imports_neither_dagster_nor_the_engine():
    """The market is measured against the engine, so it must not share code with it."""
    imported = set()
    for path in Path(meta_ads_dagster.market.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
    absolute = {name.split(".")[0] for name in imported if not name.startswith(".")}
    assert absolute <= {"__future__", "dataclasses", "datetime", "typing", "zoneinfo", "numpy", "pandas"}, absolute
    assert not [name for name in imported if name.startswith("..")]  # relative imports stay inside market/


def test_a_policy_s_writes_do_not_change_the_world():
    """Two markets of one seed, one given a variant (then run) and a budget edit early: the same
    arrivals, sales and outages, and the same true spend per day for every campaign nobody touched."""
    params = MarketParams(arrivals_per_day_share=0.1, sale_probability=0.05, outage_probability=0.05)
    calm, edited = Market(campaigns=30, seed=15, params=params), Market(campaigns=30, seed=15, params=params)
    doc = edited.snapshot()
    source = doc["ads"][len(doc["ads"]) // 2]
    campaign_of = {("campaign", c["id"]): c["id"] for c in doc["campaigns"]} | {("adset", s["id"]): s["campaign_id"] for s in doc["adsets"]}
    (kind, holder), budget = next((key, budget) for key, budget in budget_holders(doc).items() if campaign_of[key] != source["campaign_id"])
    touched = {source["campaign_id"], campaign_of[(kind, holder)]}
    variant = edited.create_variant(source["id"])["id"]
    edited.update_budget(kind, holder, budget * 2)
    edited.advance(6 * 60)
    edited.resume("ad", variant)  # the variant runs after its review
    calm.advance(6 * 60)
    for market in (calm, edited):
        market.advance(3 * DAY)

    pd.testing.assert_frame_equal(calm.events(), edited.events())
    assert len(calm.events()) >= 5
    created = [{c["id"]: c["created_time"] for c in m.snapshot()["campaigns"]} for m in (calm, edited)]
    assert created[0] == created[1] and len(created[0]) > 30  # the same arrivals, with the same ids
    spend = [m.truth_daily(by_campaign=True) for m in (calm, edited)]
    spend = [frame[~frame["campaign_id"].isin(touched)].reset_index(drop=True) for frame in spend]
    pd.testing.assert_frame_equal(spend[0][["date", "campaign_id", "spend"]], spend[1][["date", "campaign_id", "spend"]])
    assert edited.truth_daily()["spend"].sum() > calm.truth_daily()["spend"].sum()  # the edit itself does change the account


def test_a_variant_that_never_runs_changes_nothing_the_world_does():
    """Its row consumes no delivery noise of the world's ads: the truth is identical to the last digit."""
    calm, with_variant = Market(campaigns=30, seed=16), Market(campaigns=30, seed=16)
    with_variant.create_variant(with_variant.snapshot()["ads"][0]["id"])
    for market in (calm, with_variant):
        market.advance(2 * DAY)
    pd.testing.assert_frame_equal(
        calm.truth_daily(by_campaign=True, include_warmup=True), with_variant.truth_daily(by_campaign=True, include_warmup=True), check_exact=True
    )
