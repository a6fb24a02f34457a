"""The one-pass metrics, fatigue and spikes (issue 14) give the frames the row-by-level path gave.

``reference_*`` below is that earlier path, kept here as the oracle: every level re-grouped from
the raw insight rows on string ids, the country mix by a merge of per-level groupbys, fatigue and
spikes from their own groupbys. It is kept as code rather than as frozen outputs so that every
case (the seed examples, the real KAG data, generated accounts of any seed and size, edge cases)
is checked, including ones added later. One change from the earlier code, on purpose: it picked
the top country among equal shares by an unstable sort (whichever the sort left first); both now
take the alphabetically first. And the spikes' ``entity_id`` had the entity table's string dtype
only when both levels had budget holders (``object`` when one had none): it now always has it.

Equality: integer columns exactly, floats to 1e-12 relative (the ad set and campaign sums now add
the ad level's sums, not the raw rows, so the last bit may differ), same columns, order and dtypes.
The A/B tests' arm totals (read from the daily ad-level table instead of a merge of the arms with
the raw rows) give the very same test rows, floats included: ``reference_arm_totals``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine.ab_tests import arm_totals, evaluate_ab_tests, judge_arms
from meta_ads_dagster.engine.fatigue import FATIGUE_DROP, detect_fatigue
from meta_ads_dagster.engine.metrics import SUMS, WINDOW_DAYS, ad_days, entity_table, fit_maturity, roas_confidence, roas_metrics
from meta_ads_dagster.engine.snapshot import AccountSnapshot, load_snapshot_text, parse_snapshot
from meta_ads_dagster.engine.spikes import BASELINE_DAYS, MIN_BASELINE_DAYS, SPIKE_Z, detect_spikes

from ..cycle.simulation import random_account
from ..repo_files import DEMO_SNAPSHOT_PATH, KAG_CSV, SEED_SNAPSHOT_PATH, write_generated_account
from .factories import AdSetSpec, AdSpec, CampaignSpec, Day, ab_test, campaign, days_from, make_snapshot

LEVELS = (("campaign", "campaign_id"), ("adset", "adset_id"), ("ad", "ad_id"))


# --- the reference: the earlier row-by-level path -------------------------------------------------
def reference_window(snapshot: AccountSnapshot) -> pd.DataFrame:
    dates = snapshot.insights["date"]
    return snapshot.insights[(dates >= snapshot.today - pd.Timedelta(days=WINDOW_DAYS)) & (dates < snapshot.today)]


def reference_by_level(rows: pd.DataFrame, columns: list[str], keys: tuple[str, ...] = ()) -> pd.DataFrame:
    frames = [
        rows.groupby([id_column, *keys], sort=False)[columns].sum()
        .rename_axis(["entity_id", *keys]).reset_index().assign(entity_type=level)
        for level, id_column in LEVELS
    ]
    return pd.concat(frames, ignore_index=True)


def reference_maturity_curve(snapshot: AccountSnapshot) -> pd.DataFrame:
    full = snapshot.insights[snapshot.insights["date"] < snapshot.today]
    per_ad = full.groupby("ad_id")[["clicks", "purchases", "revenue"]].transform("sum")
    clicks, ad_clicks = full["clicks"].to_numpy(dtype=float), per_ad["clicks"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_ad_rate = np.where(ad_clicks > 0, clicks / ad_clicks, 0.0)
    days = pd.DataFrame({
        "age": (snapshot.today - full["date"]).dt.days.to_numpy(),
        "purchases": full["purchases"].to_numpy(dtype=float),
        "revenue": full["revenue"].to_numpy(dtype=float),
        "expected_purchases": at_ad_rate * per_ad["purchases"].to_numpy(dtype=float),
        "expected_revenue": at_ad_rate * per_ad["revenue"].to_numpy(dtype=float),
    }).groupby("age").sum()
    ages = days.index.to_numpy()
    purchases_share, purchases_error = fit_maturity(ages, days["purchases"], days["expected_purchases"], days["purchases"])
    value_share, value_error = fit_maturity(ages, days["revenue"], days["expected_revenue"], days["purchases"])
    return pd.DataFrame({
        "age": ages.astype(int), "purchases_share": purchases_share, "value_share": value_share,
        "purchases_error": purchases_error, "value_error": value_error,
    })


def reference_country_mix(window: pd.DataFrame) -> pd.DataFrame:
    per_country = reference_by_level(window, ["spend"], keys=("country",))
    total = per_country.groupby(["entity_type", "entity_id"])["spend"].transform("sum")
    per_country["share"] = np.where(total > 0, per_country["spend"] / total.where(total > 0, 1.0), 0.0)
    top = per_country.sort_values(["share", "country"], ascending=[False, True], kind="stable").drop_duplicates(["entity_type", "entity_id"])
    spain = per_country[per_country["country"] == "ES"][["entity_type", "entity_id", "share"]]
    return (
        top[["entity_type", "entity_id", "country", "share"]]
        .rename(columns={"country": "top_country", "share": "top_country_share"})
        .merge(spain.rename(columns={"share": "spain_share"}), on=["entity_type", "entity_id"], how="left")
        .fillna({"spain_share": 0.0})
    )


def reference_roas_metrics(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    curve = reference_maturity_curve(snapshot)
    window = reference_window(snapshot)
    shares = curve.set_index("age")
    age = (snapshot.today - window["date"]).dt.days
    window = window.assign(revenue_matured=window["revenue"] / age.map(shares["value_share"]).fillna(1.0).to_numpy())
    totals = reference_by_level(window, SUMS + ["revenue_matured"])
    today_rows = snapshot.insights[snapshot.insights["date"] == snapshot.today]
    today = reference_by_level(today_rows, ["spend"]).rename(columns={"spend": "spend_today"})
    metrics = entities.merge(totals, on=["entity_type", "entity_id"], how="left").merge(today, on=["entity_type", "entity_id"], how="left")
    metrics[SUMS + ["revenue_matured", "spend_today"]] = metrics[SUMS + ["revenue_matured", "spend_today"]].fillna(0.0)
    metrics = metrics.rename(columns={c: f"{c}_7d" for c in SUMS})
    spend, purchases = metrics["spend_7d"], metrics["purchases_7d"]
    account_purchases = window["purchases"].sum()
    cost_per_purchase = window["spend"].sum() / account_purchases if account_purchases > 0 else np.inf
    metrics["roas_7d"] = np.where(spend > 0, metrics["revenue_7d"] / spend.where(spend > 0, 1.0), np.nan)
    metrics["ctr_7d"] = np.where(metrics["impressions_7d"] > 0, metrics["clicks_7d"] / metrics["impressions_7d"].clip(lower=1), np.nan)
    metrics["expected_purchases_7d"] = spend / cost_per_purchase
    metrics["confidence"] = roas_confidence(purchases, metrics["expected_purchases_7d"])
    revenue, revenue_matured = metrics["revenue_7d"], metrics["revenue_matured"]
    metrics["roas_matured"] = np.where(spend > 0, revenue_matured / spend.where(spend > 0, 1.0), np.nan)
    unreported = np.where(revenue_matured > 0, 1.0 - revenue / revenue_matured.where(revenue_matured > 0, 1.0), 0.0)
    error = float(curve["value_error"].max()) if len(curve) else 0.0
    metrics["confidence_matured"] = roas_confidence(purchases, metrics["expected_purchases_7d"], (error * unreported) ** 2)
    metrics = metrics.drop(columns="revenue_matured")
    return metrics.merge(reference_country_mix(window), on=["entity_type", "entity_id"], how="left")


def reference_fatigue(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    window = reference_window(snapshot)
    last_day = snapshot.today - pd.Timedelta(days=1)
    week = window.groupby("ad_id")[["clicks", "impressions"]].sum()
    last = window[window["date"] == last_day].groupby("ad_id")[["clicks", "impressions"]].sum()
    ads = entities.loc[entities["entity_type"] == "ad", ["entity_id", "creative_id"]].rename(columns={"entity_id": "ad_id"})
    frame = ads.join(week, on="ad_id").join(last, on="ad_id", rsuffix="_last").fillna(0)
    ctr_7d = np.where(frame["impressions"] > 0, frame["clicks"] / frame["impressions"].clip(lower=1), np.nan)
    ctr_last = np.where(frame["impressions_last"] > 0, frame["clicks_last"] / frame["impressions_last"].clip(lower=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(ctr_7d > 0, 1.0 - ctr_last / ctr_7d, np.nan)
    return pd.DataFrame({
        "entity_type": "ad", "entity_id": frame["ad_id"].to_numpy(), "creative_id": frame["creative_id"].to_numpy(),
        "ctr_last_day": ctr_last, "ctr_7d": ctr_7d, "ctr_drop": drop,
        "fatigued": np.nan_to_num(drop, nan=-1.0) >= FATIGUE_DROP - 1e-12,
    })


def reference_spikes(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    holders = entities[entities["is_budget_holder"]][["entity_type", "entity_id"]]
    last_day = snapshot.today - pd.Timedelta(days=1)
    first_day = last_day - pd.Timedelta(days=BASELINE_DAYS)
    ins = snapshot.insights
    ins = ins[(ins["date"] >= first_day) & (ins["date"] <= last_day)]
    days = pd.date_range(first_day, last_day, freq="D")
    series = []
    for level, column in (("campaign", "campaign_id"), ("adset", "adset_id")):
        ids = holders.loc[holders["entity_type"] == level, "entity_id"]
        daily = ins[ins[column].isin(ids)].groupby([column, "date"])["purchases"].sum().unstack("date").reindex(index=ids, columns=days)
        series.append(daily.assign(entity_type=level).rename_axis("entity_id").reset_index())
    daily = pd.concat(series, ignore_index=True)
    baseline = daily[days[:-1]].to_numpy(dtype=float)
    last = daily[days[-1]].fillna(0.0).to_numpy(dtype=float)
    history_days = np.sum(~np.isnan(baseline), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(history_days > 0, np.nansum(baseline, axis=1) / np.maximum(history_days, 1), np.nan)
        deviations = np.where(np.isnan(baseline), 0.0, baseline - mean[:, None])
        variance = np.where(history_days > 1, (deviations**2).sum(axis=1) / np.maximum(history_days - 1, 1), 0.0)
    sd = np.sqrt(np.maximum.reduce([np.nan_to_num(variance), np.nan_to_num(mean), np.ones_like(last)]))
    z = (last - mean) / sd
    enough = history_days >= MIN_BASELINE_DAYS
    direction = np.select([enough & (z >= SPIKE_Z), enough & (z <= -SPIKE_Z)], ["up", "down"], default="none")
    return pd.DataFrame({
        "entity_type": daily["entity_type"], "entity_id": daily["entity_id"].astype(entities["entity_id"].dtype), "day": last_day, "purchases": last,
        "baseline_mean": mean, "baseline_sd": sd, "z": np.where(enough, z, np.nan), "direction": direction,
    })


def reference_arm_totals(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """The A/B tests' arms with their totals by a merge of the arms with the raw insight rows."""
    arms = snapshot.ab_tests.explode("ad_ids").rename(columns={"id": "test_id", "ad_ids": "ad_id"})
    arms["arm"] = arms.groupby("test_id").cumcount()
    created = entities[entities["entity_type"] == "ad"].set_index("entity_id")["created_time"]
    arm_start = np.maximum(arms["started_at"], arms["ad_id"].map(created).fillna(arms["started_at"]))
    arms["compared_since"] = arm_start.groupby(arms["test_id"]).transform("max")
    started = arms["compared_since"].dt.tz_convert(None).dt.ceil("D")
    rows = arms[["test_id", "ad_id", "arm"]].assign(started=started.to_numpy()).merge(snapshot.insights, on="ad_id", how="left")
    rows = rows[rows["date"] >= rows["started"]]
    totals = rows.groupby(["test_id", "ad_id"])[["impressions", "purchases"]].sum()
    arms = arms.merge(totals, left_on=["test_id", "ad_id"], right_index=True, how="left").fillna(
        {"impressions": 0.0, "purchases": 0.0}
    )
    arms["active"] = arms["ad_id"].map(entities[entities["entity_type"] == "ad"].set_index("entity_id")["status"]).eq("ACTIVE")
    return arms


def reference_countries_and_learning(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """The entity table's two columns that were built with per-row lambdas."""
    by_campaign = (
        snapshot.adsets.explode("countries").dropna(subset=["countries"]).groupby("campaign_id")["countries"]
        .agg(lambda c: tuple(sorted(set(c))))
    )
    by_adset = snapshot.adsets.set_index("id")["countries"]
    countries = [
        by_campaign.get(campaign, ()) if kind == "campaign" else by_adset.get(adset, ())
        for kind, campaign, adset in zip(entities["entity_type"], entities["campaign_id"], entities["adset_id"])
    ]
    learning = entities[entities["entity_type"].eq("adset") & entities["effective_active"] & entities["learning_status"].eq("LEARNING")]
    learning_by_campaign = learning.groupby("campaign_id")["entity_id"].agg(lambda ids: tuple(sorted(ids))).to_dict()
    reached = [
        learning_by_campaign.get(campaign, ()) if kind == "campaign" else ((adset,) if adset in set(learning["entity_id"]) else ())
        for kind, campaign, adset in zip(entities["entity_type"], entities["campaign_id"], entities["adset_id"])
    ]
    return pd.DataFrame({"countries": countries, "learning_adsets": reached}, dtype=object)


# --- the cases ------------------------------------------------------------------------------------
def generated(tmp_path_factory, campaigns: int, seed: int) -> AccountSnapshot:
    """An account from benchmarks/cycle_scale.py's generator (the one the figures are measured on)."""
    path = write_generated_account(tmp_path_factory.mktemp("generated") / f"account_{campaigns}_{seed}.json", campaigns, seed)
    return load_snapshot_text(path.read_bytes())


def kag(tmp_path_factory) -> AccountSnapshot:
    out = tmp_path_factory.mktemp("kag") / "kag.json"
    assert main(["import-csv", str(KAG_CSV), "--out", str(out), "--value-per-conversion", "60"]) == 0
    return load_snapshot_text(out.read_bytes())


def edge_cases() -> dict[str, dict]:
    zero = Day(spend=0.0, revenue=0.0, purchases=0, impressions=0, clicks=0)
    three = {"ES": 0.5, "PT": 0.3, "FR": 0.2}
    return {
        "one ad": make_snapshot([campaign()]),
        "three countries, ES-less ad set, unknown country": make_snapshot([
            campaign(countries=("ES", "PT", "FR"), country_shares=three, n_ads=3),
            CampaignSpec(adsets=[AdSetSpec(countries=("PT", "FR"), country_shares={"PT": 0.6, "FR": 0.4}),
                                 AdSetSpec(countries=("PT",), country_shares={"PT": 0.7, "unknown": 0.3}, daily_budget_usd=50.0)], daily_budget_usd=None),
        ]),
        "zero spend, tied countries": make_snapshot([
            campaign(days=[zero] * 7, today=zero, countries=("PT", "ES"), country_shares={"PT": 0.5, "ES": 0.5}),
            campaign(spend=0.0, roas=0.0, purchases=0, countries=("FR", "DE"), country_shares={"FR": 0.5, "DE": 0.5}, n_ads=2),
        ]),
        "ad sets learning, several countries per campaign": make_snapshot([
            CampaignSpec(adsets=[AdSetSpec(learning_status="LEARNING", id="155", countries=("PT", "ES")),
                                 AdSetSpec(learning_status="LEARNING", id="144", countries=("FR", "ES")),
                                 AdSetSpec(learning_status="SUCCESS")]),
            CampaignSpec(adsets=[AdSetSpec(learning_status="LEARNING")], daily_budget_usd=None),
        ]),
        "gaps, old days, today, paused and empty entities": make_snapshot([
            CampaignSpec(adsets=[AdSetSpec(ads=[
                AdSpec(days=days_from(spend=[50, 60, 0, 70, 80, 90, 100, 110, 120, 130, 140, 150], roas=2.5,
                                      purchases=[3, 4, 0, 5, 6, 7, 8, 9, 10, 11, 12, 40]), today=Day(spend=30.0)),
                AdSpec(days=steady_days_with_gap(), status="PAUSED"),
                AdSpec(days=[]),
            ])]),
            campaign(cbo=False, n_ads=4, roas=0.8, today=Day(spend=12.0, revenue=3.0, purchases=1)),
            CampaignSpec(adsets=[AdSetSpec(ads=[])], status="PAUSED"),
            CampaignSpec(adsets=[], daily_budget_usd=None),
        ], ab_tests=[ab_test(["100101", "100102"])]),
    }


def steady_days_with_gap() -> list[Day]:
    return [Day(), Day(), Day(spend=0.0, revenue=0.0, purchases=0, impressions=0, clicks=0), Day(), Day(purchases=30)]


def with_missing_values(snapshot: AccountSnapshot) -> AccountSnapshot:
    """NaN purchases and revenue in a few rows (the engine's frames admit them; the sums skip them)."""
    insights = snapshot.insights.copy()
    insights.loc[insights.index[::3], "purchases"] = np.nan
    insights.loc[insights.index[1::4], "revenue"] = np.nan
    return dataclasses.replace(snapshot, insights=insights)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, AccountSnapshot]:
    cases = {
        "seed examples": load_snapshot_text(SEED_SNAPSHOT_PATH.read_text()),
        "demo account": load_snapshot_text(DEMO_SNAPSHOT_PATH.read_text()),
        "kag data": kag(tmp_path_factory),
        **{f"generated {size} campaigns, seed {seed}": generated(tmp_path_factory, size, seed)
           for size, seed in ((3, 1), (20, 2), (20, 3), (60, 14))},
        **{name: parse_snapshot(document) for name, document in edge_cases().items()},
    }
    cases |= {f"simulated account {seed}": parse_snapshot(random_account(seed)[0]) for seed in SIMULATED}
    cases["seed examples with NaN"] = with_missing_values(cases["seed examples"])
    cases["generated with NaN"] = with_missing_values(cases["generated 20 campaigns, seed 2"])
    return cases


SIMULATED = range(12)  # cycle/simulation.py's accounts: A/B tests of 2-3 arms, some with an arm added late
CASES = [
    "seed examples", "demo account", "kag data", "generated 3 campaigns, seed 1", "generated 20 campaigns, seed 2",
    "generated 20 campaigns, seed 3", "generated 60 campaigns, seed 14", *edge_cases(), "seed examples with NaN",
    "generated with NaN",
]


def assert_same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    # check_exact=False applies to floats only: integer and boolean columns are compared exactly.
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("case", CASES)
def test_the_one_pass_gives_the_row_by_level_frames(snapshots, case):
    snapshot = snapshots[case]
    entities = entity_table(snapshot)
    days = ad_days(snapshot)
    assert_same(roas_metrics(snapshot, entities, days), reference_roas_metrics(snapshot, entities))
    assert_same(detect_fatigue(snapshot, entities, days), reference_fatigue(snapshot, entities))
    assert_same(detect_spikes(snapshot, entities, days), reference_spikes(snapshot, entities))
    # and without a shared table, as the Dagster assets call them
    assert_same(roas_metrics(snapshot, entities), reference_roas_metrics(snapshot, entities))


@pytest.mark.parametrize("case", CASES + [f"simulated account {seed}" for seed in SIMULATED])
def test_the_ab_tests_arm_totals_from_the_daily_table_give_the_raw_rows_verdicts(snapshots, case):
    """Bit for bit: the totals are sums of whole numbers, exact in any order, and P(best)'s draws
    take them as they are."""
    snapshot = snapshots[case]
    entities = entity_table(snapshot)
    if snapshot.ab_tests.empty:
        assert evaluate_ab_tests(snapshot, entities).empty
        return
    expected = judge_arms(snapshot, reference_arm_totals(snapshot, entities))
    pd.testing.assert_frame_equal(evaluate_ab_tests(snapshot, entities, ad_days(snapshot)), expected, check_exact=True)
    pd.testing.assert_frame_equal(evaluate_ab_tests(snapshot, entities), expected, check_exact=True)
    totals = arm_totals(snapshot, entities, ad_days(snapshot))[["impressions", "purchases"]].to_numpy(dtype=float)
    np.testing.assert_array_equal(totals, reference_arm_totals(snapshot, entities)[["impressions", "purchases"]].to_numpy(dtype=float))


@pytest.mark.parametrize("case", CASES)
def test_the_entity_tables_countries_and_learning_ad_sets(snapshots, case):
    entities = entity_table(snapshots[case])
    pd.testing.assert_frame_equal(
        entities[["countries", "learning_adsets"]], reference_countries_and_learning(snapshots[case], entities)
    )


def test_the_cases_reach_the_edges(snapshots):
    """The cases are not all alike: entities without rows, zero spend, ties, several countries, NaN."""
    metrics = {case: reference_roas_metrics(s, entity_table(s)) for case, s in snapshots.items()}
    assert metrics["gaps, old days, today, paused and empty entities"]["top_country"].isna().any()
    assert (metrics["zero spend, tied countries"]["spend_7d"] == 0).any()
    assert set(snapshots["three countries, ES-less ad set, unknown country"].insights["country"]) == {"ES", "PT", "FR", "unknown"}
    tied = metrics["zero spend, tied countries"]
    assert (tied.loc[tied["spend_7d"] == 0, "top_country"] == "ES").any()  # ES and PT tie at zero spend
    learning = entity_table(snapshots["ad sets learning, several countries per campaign"])
    assert learning["learning_adsets"].map(len).sum() >= 3 and learning["countries"].map(len).max() == 3
    assert snapshots["generated with NaN"].insights["purchases"].isna().any()
    spikes = reference_spikes(snapshots["generated 60 campaigns, seed 14"], entity_table(snapshots["generated 60 campaigns, seed 14"]))
    assert len(spikes) >= 60
