"""Entity table and 7-day ROAS metrics with a confidence, for every campaign, ad set and ad.

Window
    The last 7 *full* days in the account's time zone (today so far is excluded because Meta
    keeps restating it; it only feeds ``spend_today``, used by the spend cap).

Reporting lag
    Meta reports a day's purchases over the days that follow (attribution windows, late pixel
    and CAPI events), so the window's youngest days are short of purchases and ``roas_7d``, the
    ROAS reported so far (Ads Manager's figure, the one the hard stop and the cuts read), runs low:
    a campaign truly at 3.2 can read 2.95. ``matured_roas_7d`` divides each young day's revenue by
    its maturity, the share of its eventual purchases reported so far, estimated from the account
    itself (:func:`young_days_maturity`); a raise is judged on it.

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

from .snapshot import AccountSnapshot

WINDOW_DAYS = 7
CONFIDENCE_TOLERANCE = 0.20  # the ±20 % band the confidence speaks about
# Reporting lag: days at least this old count as mature (Meta restates a day's results for up to
# 28 days, but most late purchases arrive within a few days); younger days get a maturity.
MATURE_AGE_DAYS = 4
# The maturity is estimated only on this much evidence (purchases expected on the young days, and
# observed on the mature ones), else the young days count as mature: on a small account noise
# would pass for lag.
MIN_MATURITY_EVIDENCE = 100
# Young days reporting less than this share of their expected purchases are not read as lag
# beyond it (no plausible lag hides half of them; a drop that large is the account's own news).
MIN_MATURITY = 0.5

LEVELS = (("campaign", "campaign_id"), ("adset", "adset_id"), ("ad", "ad_id"))
SUMS = ["spend", "impressions", "clicks", "purchases", "revenue"]


def entity_table(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Every campaign, ad set and ad in one frame: parents, status, budget holder, targeting."""
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
    return table[
        [
            "entity_type", "entity_id", "campaign_id", "adset_id", "name", "status", "effective_active",
            "created_time", "daily_budget", "is_budget_holder", "countries", "creative_id", "creative_approved",
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


def young_days_maturity(snapshot: AccountSnapshot) -> float:
    """How much of their eventual purchases the full days younger than MATURE_AGE_DAYS have
    reported so far, as one share for them all, estimated from the snapshot alone.

    Each campaign's purchases per click on the window's mature days (MATURE_AGE_DAYS and older)
    predict what its young days' clicks should have bought: clicks are reported at once, and a
    tiring creative loses clicks, not purchases per click, so wear does not pass for lag. The young
    days' reported purchases over that prediction is their maturity. Per campaign, so that moving
    budget between campaigns does not pass for lag; one share for the young days together, because
    a single day's purchases per click swing by a tenth (weekdays, sales) and the young days pooled
    swing less. Capped at 1, floored at MIN_MATURITY, and 1 without MIN_MATURITY_EVIDENCE purchases
    on either side. The mature days still miss their latest purchases, so the correction errs low.
    """
    rows = window_insights(snapshot)
    is_mature = ((snapshot.today - rows["date"]).dt.days >= MATURE_AGE_DAYS).to_numpy()
    mature = rows[is_mature].groupby("campaign_id")[["clicks", "purchases"]].sum()
    rate = (mature["purchases"] / mature["clicks"].where(mature["clicks"] > 0)).dropna()
    young = rows[~is_mature]
    expected = float((young["clicks"] * young["campaign_id"].map(rate)).sum())
    observed = float(young.loc[young["campaign_id"].isin(rate.index), "purchases"].sum())
    if expected < MIN_MATURITY_EVIDENCE or mature["purchases"].sum() < MIN_MATURITY_EVIDENCE:
        return 1.0
    return float(np.clip(observed / expected, MIN_MATURITY, 1.0))


def roas_metrics(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """7-day totals, ROAS (reported so far, and matured), CTR, confidence, today's spend and country
    mix for every entity."""
    window = window_insights(snapshot)
    young = ((snapshot.today - window["date"]).dt.days < MATURE_AGE_DAYS).to_numpy()
    window = window.assign(matured_revenue=window["revenue"] / np.where(young, young_days_maturity(snapshot), 1.0))
    totals = _by_level(window, SUMS + ["matured_revenue"])
    today_rows = snapshot.insights[snapshot.insights["date"] == snapshot.today]
    today = _by_level(today_rows, ["spend"]).rename(columns={"spend": "spend_today"})

    metrics = entities.merge(totals, on=["entity_type", "entity_id"], how="left").merge(
        today, on=["entity_type", "entity_id"], how="left"
    )
    metrics[SUMS + ["matured_revenue", "spend_today"]] = metrics[SUMS + ["matured_revenue", "spend_today"]].fillna(0.0)
    metrics = metrics.rename(columns={c: f"{c}_7d" for c in SUMS + ["matured_revenue"]})

    spend, purchases = metrics["spend_7d"], metrics["purchases_7d"]
    account_purchases = window["purchases"].sum()
    cost_per_purchase = window["spend"].sum() / account_purchases if account_purchases > 0 else np.inf
    metrics["roas_7d"] = np.where(spend > 0, metrics["revenue_7d"] / spend.where(spend > 0, 1.0), np.nan)
    metrics["matured_roas_7d"] = np.where(spend > 0, metrics["matured_revenue_7d"] / spend.where(spend > 0, 1.0), np.nan)
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

