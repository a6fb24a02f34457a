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

Maturity (late conversions)
    Meta keeps attributing purchases to a day for up to 28 days, most of them within a week, so the
    window's recent days are short of purchases and value. The maturity curve says which share of
    a day's eventual purchases (and value) is reported when the day is ``a`` days old. It is
    estimated per account from the snapshot's own insights (:func:`maturity_curve`): each day's
    purchases against what its clicks would have bought at each ad's own purchases per click over
    every full day (so the ad mix and creative fatigue cancel), fitted to ``share(a) = 1 − L·ρᵃ``
    (a share L still to come after the day, arriving at the rate ρ a day); the fit's level absorbs
    the unknown mature rate. ``roas_matured`` divides each day's revenue by its share; its
    ``confidence_matured`` adds the curve's relative error (the fit's residual spread), weighted by
    the part of the revenue that is predicted rather than reported, to the Poisson term:
    ``2·Φ(0.2 / √(1/n + (σ·u)²)) − 1`` (u: the unreported share, σ: the curve's error). A fully
    reported window keeps its ROAS and confidence. The rules decide on the observed ROAS and show
    the matured one beside it ("7-day ROAS 1.30 < 1.5 (1.30 observed, 1.80 expected when matured)"): measured on the
    simulated market, budget rules judging the matured ROAS cut less and raised more, and earned
    less (BENCHMARKS.md); the hard stop must in any case judge what is reported, so that waiting for
    late conversions never keeps a money pit running.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr  # the standard normal CDF; scipy.stats would add ~0.5 s to every import

from .learning import learning_adsets
from .snapshot import AccountSnapshot

WINDOW_DAYS = 7
CONFIDENCE_TOLERANCE = 0.20  # the ±20 % band the confidence speaks about
# The maturity fit: ``share(a) = 1 − L·ρᵃ`` searched over this grid (L up to 60 % of a day's
# purchases still to come after it, arriving at 5–80 % of the day before's rate), on at least
# MATURITY_MIN_DAYS full days with purchases; with fewer nothing is corrected.
MATURITY_LATE_SHARES = np.linspace(0.0, 0.6, 61)
MATURITY_DECAYS = np.linspace(0.05, 0.8, 16)
MATURITY_MIN_DAYS = 4

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


def roas_confidence(
    purchases: np.ndarray | float, expected_purchases: np.ndarray | float, extra_relative_variance: np.ndarray | float = 0.0
) -> np.ndarray:
    """Probability that the true ROAS is within ±20 % of the measured one (see module docstring);
    ``extra_relative_variance``: what the maturity correction adds to the Poisson term."""
    evidence = np.maximum(np.asarray(purchases, dtype=float), np.asarray(expected_purchases, dtype=float))
    with np.errstate(divide="ignore", over="ignore"):
        variance = 1.0 / np.maximum(evidence, 0.0) + np.asarray(extra_relative_variance, dtype=float)
    return 2.0 * ndtr(CONFIDENCE_TOLERANCE / np.sqrt(variance)) - 1.0


def fit_maturity(ages: np.ndarray, observed: np.ndarray, expected: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """The share ``1 − L·ρᵃ`` of each age's eventual total reported at that age, and the fit's
    relative error (weighted residual spread of the log ratios), from ``observed`` against
    ``expected`` at a rate common to all days (the fit's level). Ones and 0 when fewer than
    MATURITY_MIN_DAYS ages have both."""
    ages, observed, expected, weights = (np.asarray(v, dtype=float) for v in (ages, observed, expected, weights))
    usable = (observed > 0) & (expected > 0) & (weights > 0)
    if usable.sum() < MATURITY_MIN_DAYS:
        return np.ones_like(ages), 0.0
    log_ratio, age, weight = np.log(observed[usable] / expected[usable]), ages[usable], weights[usable] / weights[usable].sum()
    # every (L, ρ) at once: log share per grid point and age, the level solved in closed form
    late = MATURITY_LATE_SHARES[:, None, None] * MATURITY_DECAYS[None, :, None] ** age[None, None, :]
    residual = log_ratio - np.log1p(-late)
    residual -= (residual * weight).sum(axis=-1, keepdims=True)
    spread = (residual**2 * weight).sum(axis=-1)
    best_share, best_decay = np.unravel_index(np.argmin(spread), spread.shape)
    share = 1.0 - MATURITY_LATE_SHARES[best_share] * MATURITY_DECAYS[best_decay] ** ages
    return share, float(np.sqrt(spread[best_share, best_decay]))


def maturity_curve(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Per full day's age in days (1 = yesterday): the share of its eventual purchases and value
    reported by now, and the curve's relative error (module docstring, "Maturity")."""
    full = snapshot.insights[snapshot.insights["date"] < snapshot.today]
    age = (snapshot.today - full["date"]).dt.days.to_numpy()
    per_ad = full.groupby("ad_id")[["clicks", "purchases", "revenue"]].transform("sum")
    clicks = full["clicks"].to_numpy(dtype=float)
    ad_clicks = per_ad["clicks"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_ad_rate = np.where(ad_clicks > 0, clicks / ad_clicks, 0.0)
    days = pd.DataFrame({
        "age": age,
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


def matured(rows: pd.DataFrame, curve: pd.DataFrame, today: pd.Timestamp) -> pd.DataFrame:
    """Insight rows with ``purchases_matured`` and ``revenue_matured``: each day's reported
    figures divided by the share reported at its age (ages the curve lacks count as reported)."""
    age = (today - rows["date"]).dt.days
    shares = curve.set_index("age")
    return rows.assign(
        purchases_matured=rows["purchases"] / age.map(shares["purchases_share"]).fillna(1.0).to_numpy(),
        revenue_matured=rows["revenue"] / age.map(shares["value_share"]).fillna(1.0).to_numpy(),
    )


def roas_metrics(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """7-day totals, ROAS, CTR, confidence (observed and matured), today's spend and country mix
    for every entity."""
    curve = maturity_curve(snapshot)
    window = matured(window_insights(snapshot), curve, snapshot.today)
    totals = _by_level(window, SUMS + ["revenue_matured"])
    today_rows = snapshot.insights[snapshot.insights["date"] == snapshot.today]
    today = _by_level(today_rows, ["spend"]).rename(columns={"spend": "spend_today"})

    metrics = entities.merge(totals, on=["entity_type", "entity_id"], how="left").merge(
        today, on=["entity_type", "entity_id"], how="left"
    )
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

