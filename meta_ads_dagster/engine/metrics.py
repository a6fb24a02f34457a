"""Entity table and 7-day ROAS metrics with a confidence, for every campaign, ad set and ad.

Window
    The last 7 *full* days in the account's time zone (today so far is excluded because Meta
    keeps restating it; it only feeds ``spend_today``, used by the spend cap).

ROAS confidence
    ``confidence = 2·Φ(0.2·√n) − 1``: the probability that the true ROAS lies within ±20 % of the
    measured one when purchases are Poisson-distributed and the order value is taken as known
    (the relative standard error of a Poisson count n is 1/√n). ``n`` is the evidence in purchases:
    the purchases observed, or, when fewer were observed than the account's own cost per purchase
    predicts for this spend, the purchases predicted. The second term is why an entity that spent
    enough to expect 50 purchases and made 3 is judged as firmly as one that made 50: without it a
    zero-purchase money pit would have confidence 0 and could never be hard-stopped.
    Worked figures: 49 purchases → 0.84; 91 → 0.94; 12 → 0.51; 0 purchases and nothing predicted → 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from .learning import learning_adsets
from .snapshot import AccountSnapshot

WINDOW_DAYS = 7
CONFIDENCE_TOLERANCE = 0.20  # the ±20 % band the confidence speaks about

LEVELS = (("campaign", "campaign_id"), ("adset", "adset_id"), ("ad", "ad_id"))
SUMS = ["spend", "impressions", "clicks", "purchases", "revenue"]


def entity_table(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Every campaign, ad set and ad in one frame: parents, status, budget holder, targeting, and the
    running ad sets in Meta's learning phase a budget change of each would reach (engine/learning.py)."""
    campaigns = snapshot.campaigns.assign(entity_type="campaign", campaign_id=snapshot.campaigns["id"], adset_id=None)
    campaigns["campaign_status"] = campaigns["status"]
    adsets = snapshot.adsets.merge(
        snapshot.campaigns[["id", "status", "daily_budget"]].rename(
            columns={"id": "campaign_id", "status": "campaign_status", "daily_budget": "campaign_budget"}
        ),
        on="campaign_id",
        how="left",
    ).assign(entity_type="adset", adset_id=lambda f: f["id"])
    ads = snapshot.ads.merge(
        adsets[["id", "status", "campaign_status"]].rename(columns={"id": "adset_id", "status": "adset_status"}),
        on="adset_id",
        how="left",
    ).merge(snapshot.creatives.rename(columns={"id": "creative_id", "approved": "creative_approved"}), on="creative_id", how="left")
    ads = ads.assign(entity_type="ad")

    campaign_countries = (
        snapshot.adsets.explode("countries").dropna(subset=["countries"]).groupby("campaign_id")["countries"]
        .agg(lambda c: tuple(sorted(set(c))))
    )
    campaigns["countries"] = campaigns["id"].map(campaign_countries)
    adsets_countries = adsets.set_index("id")["countries"]
    ads["countries"] = ads["adset_id"].map(adsets_countries)

    table = pd.concat([campaigns, adsets, ads], ignore_index=True).rename(columns={"id": "entity_id"})
    table["countries"] = table["countries"].apply(lambda c: c if isinstance(c, tuple) else ())
    adset_status = table["adset_status"] if "adset_status" in table else pd.Series("ACTIVE", index=table.index)
    table["effective_active"] = (
        table["status"].eq("ACTIVE") & table["campaign_status"].eq("ACTIVE") & adset_status.fillna("ACTIVE").eq("ACTIVE")
    )
    budget_on_campaign = table["entity_type"].eq("campaign") & table["daily_budget"].notna()
    budget_on_adset = table["entity_type"].eq("adset") & table["campaign_budget"].isna() & table["daily_budget"].notna()
    table["is_budget_holder"] = budget_on_campaign | budget_on_adset
    table["creative_approved"] = table["creative_approved"].astype("boolean")
    table["learning_adsets"] = learning_adsets(table)
    return table[
        [
            "entity_type", "entity_id", "campaign_id", "adset_id", "name", "status", "effective_active",
            "created_time", "daily_budget", "is_budget_holder", "countries", "creative_id", "creative_approved",
            "learning_status", "learning_adsets",
        ]
    ].reset_index(drop=True)


def window_insights(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Insights rows of the 7 full days before today."""
    start = snapshot.today - pd.Timedelta(days=WINDOW_DAYS)
    dates = snapshot.insights["date"]
    return snapshot.insights[(dates >= start) & (dates < snapshot.today)]


def _by_level(rows: pd.DataFrame, columns: list[str], keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Sum ``columns`` of insight rows per entity (and ``keys``) at every level, as one long frame."""
    frames = [
        rows.groupby([id_column, *keys], sort=False)[columns].sum()
        .rename_axis(["entity_id", *keys]).reset_index().assign(entity_type=level)
        for level, id_column in LEVELS
    ]
    return pd.concat(frames, ignore_index=True)


def roas_confidence(purchases: np.ndarray | float, expected_purchases: np.ndarray | float) -> np.ndarray:
    """Probability that the true ROAS is within ±20 % of the measured one (see module docstring)."""
    evidence = np.maximum(np.asarray(purchases, dtype=float), np.asarray(expected_purchases, dtype=float))
    return 2.0 * norm.cdf(CONFIDENCE_TOLERANCE * np.sqrt(np.maximum(evidence, 0.0))) - 1.0


def roas_metrics(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """7-day totals, ROAS, CTR, confidence, today's spend and country mix for every entity."""
    window = window_insights(snapshot)
    totals = _by_level(window, SUMS)
    today_rows = snapshot.insights[snapshot.insights["date"] == snapshot.today]
    today = _by_level(today_rows, ["spend"]).rename(columns={"spend": "spend_today"})

    metrics = entities.merge(totals, on=["entity_type", "entity_id"], how="left").merge(
        today, on=["entity_type", "entity_id"], how="left"
    )
    metrics[SUMS + ["spend_today"]] = metrics[SUMS + ["spend_today"]].fillna(0.0)
    metrics = metrics.rename(columns={c: f"{c}_7d" for c in SUMS})

    spend, purchases = metrics["spend_7d"], metrics["purchases_7d"]
    account_purchases = window["purchases"].sum()
    cost_per_purchase = window["spend"].sum() / account_purchases if account_purchases > 0 else np.inf
    metrics["roas_7d"] = np.where(spend > 0, metrics["revenue_7d"] / spend.where(spend > 0, 1.0), np.nan)
    metrics["ctr_7d"] = np.where(metrics["impressions_7d"] > 0, metrics["clicks_7d"] / metrics["impressions_7d"].clip(lower=1), np.nan)
    metrics["expected_purchases_7d"] = spend / cost_per_purchase
    metrics["confidence"] = roas_confidence(purchases, metrics["expected_purchases_7d"])

    return metrics.merge(country_mix(window), on=["entity_type", "entity_id"], how="left")


def account_roas(metrics: pd.DataFrame) -> float:
    """The whole account's 7-day ROAS (revenue over spend of its campaigns); 0 without spend."""
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    spend = campaigns["spend_7d"].sum()
    return round(float(campaigns["revenue_7d"].sum() / spend), 4) if spend else 0.0


def country_mix(window: pd.DataFrame) -> pd.DataFrame:
    """Per entity: Spain's share of spend and the largest single country's share (geo rules)."""
    per_country = _by_level(window, ["spend"], keys=("country",))
    total = per_country.groupby(["entity_type", "entity_id"])["spend"].transform("sum")
    per_country["share"] = np.where(total > 0, per_country["spend"] / total.where(total > 0, 1.0), 0.0)
    top = per_country.sort_values("share", ascending=False).drop_duplicates(["entity_type", "entity_id"])
    spain = per_country[per_country["country"] == "ES"][["entity_type", "entity_id", "share"]]
    return (
        top[["entity_type", "entity_id", "country", "share"]]
        .rename(columns={"country": "top_country", "share": "top_country_share"})
        .merge(spain.rename(columns={"share": "spain_share"}), on=["entity_type", "entity_id"], how="left")
        .fillna({"spain_share": 0.0})
    )

