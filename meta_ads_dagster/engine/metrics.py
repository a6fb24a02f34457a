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

import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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

SUMS = ["spend", "impressions", "clicks", "purchases", "revenue"]


def entity_table(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Every campaign, ad set and ad in one frame: parents, status, budget holder, targeting, and the
    running ad sets in Meta's learning phase a budget change of each would reach (engine/learning.py)."""
    campaigns = snapshot.campaigns.assign(entity_type="campaign", campaign_id=snapshot.campaigns["id"], adset_id=None)
    campaigns["campaign_status"] = campaigns["status"]
    adsets = _join(
        snapshot.adsets,
        snapshot.campaigns[["id", "status", "daily_budget"]].rename(
            columns={"id": "campaign_id", "status": "campaign_status", "daily_budget": "campaign_budget"}
        ),
        "campaign_id",
    ).assign(entity_type="adset", adset_id=lambda f: f["id"])
    ads = _join(
        snapshot.ads,
        adsets[["id", "status", "campaign_status", "countries"]].rename(columns={"id": "adset_id", "status": "adset_status"}),
        "adset_id",
    )
    ads = _join(ads, snapshot.creatives.rename(columns={"id": "creative_id", "approved": "creative_approved"}), "creative_id")
    ads = ads.assign(entity_type="ad")

    campaigns["countries"] = campaigns["id"].map(_countries_by_campaign(snapshot.adsets))

    table = pd.concat([campaigns, adsets, ads], ignore_index=True).rename(columns={"id": "entity_id"})
    countries = table["countries"].to_numpy(dtype=object, copy=True)
    countries[pd.isna(countries)] = _empty_tuples(int(pd.isna(countries).sum()))
    table["countries"] = countries
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


def _join(left: pd.DataFrame, right: pd.DataFrame, key: str) -> pd.DataFrame:
    """``left.merge(right, on=key, how="left")`` for a ``right`` with unique keys (the snapshot's
    ids are): the rows matched by pyarrow's hash lookup and merged on the integer positions it
    gives, since pandas' merge on Arrow strings makes a Python string of every key first."""
    found = pc.index_in(arrow_strings(left[key]), value_set=arrow_strings(right[key])).fill_null(-1).to_numpy(zero_copy_only=False)
    position = "_position"
    return (
        left.assign(**{position: found})
        .merge(right.drop(columns=key).assign(**{position: np.arange(len(right))}), on=position, how="left")
        .drop(columns=position)
    )


def _empty_tuples(n: int) -> np.ndarray:
    """``n`` empty tuples as an object array (a list of tuples would be read as a 2-D array)."""
    empty = np.empty(n, dtype=object)
    empty.fill(())
    return empty


def _countries_by_campaign(adsets: pd.DataFrame) -> pd.Series:
    """Campaign id → the sorted distinct countries its ad sets target (campaigns whose ad sets
    target none are absent)."""
    pairs = (
        adsets[["campaign_id", "countries"]].explode("countries").dropna(subset=["countries"])
        .drop_duplicates().sort_values(["campaign_id", "countries"])
    )
    campaign, countries = pairs["campaign_id"].to_numpy(dtype=object), pairs["countries"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, campaign[1:] != campaign[:-1]]) if len(campaign) else np.array([], dtype=int)
    return pd.Series([tuple(group) for group in np.split(countries, starts[1:])] if len(starts) else [], index=campaign[starts], dtype=object)


def window_insights(snapshot: AccountSnapshot) -> pd.DataFrame:
    """Insights rows of the 7 full days before today."""
    start = snapshot.today - pd.Timedelta(days=WINDOW_DAYS)
    dates = snapshot.insights["date"]
    return snapshot.insights[(dates >= start) & (dates < snapshot.today)]


@dataclass(frozen=True)
class AdDays:
    """The insights as every analysis reads them, built in one pass over the rows (issue 14): the
    ad ids coded as integers once, the rows summed per ad and day over countries (the daily
    ad-level table the metrics, maturity, fatigue and spikes all start from), and the window's
    spend per ad and country (the country mix). Ages count full days before today (0 = today)."""

    ad_ids: pd.Index  # the ads with insight rows; the ``ad`` codes below index it
    days: pd.DataFrame  # per (ad, age), sorted: ad, age, *SUMS
    countries: pd.Index  # the window's countries; the ``country`` codes index it
    window_countries: pd.DataFrame  # per (ad, country) in the window: ad, country, spend
    # The last entity table's rows (the analyses of one snapshot share one): (weak reference, rows).
    _rows: dict = field(default_factory=dict, compare=False, repr=False)

    def rows(self, entities: pd.DataFrame) -> "EntityRows":
        """Where each ad of these rows sits in ``entities`` (computed once per entity table)."""
        cached = self._rows.get("last")
        if cached is None or cached[0]() is not entities:
            cached = (weakref.ref(entities), EntityRows.of(entities, self.ad_ids))
            self._rows["last"] = cached
        return cached[1]

    def between(self, first_age: int, last_age: int) -> pd.DataFrame:
        age = self.days["age"]
        return self.days[(age >= first_age) & (age <= last_age)]


def ad_days(snapshot: AccountSnapshot) -> AdDays:
    ins = snapshot.insights
    ad, ad_ids = pd.factorize(ins["ad_id"])
    age = (snapshot.today.to_datetime64() - ins["date"].to_numpy()) // np.timedelta64(1, "D")
    ages = int(age.max()) + 1 if len(age) else 1
    daily = ins[SUMS].groupby(ad.astype(np.int64) * ages + age).sum()
    key = daily.index.to_numpy()
    days = pd.concat([pd.DataFrame({"ad": key // ages, "age": key % ages}), daily.reset_index(drop=True)], axis=1)

    in_window = (age >= 1) & (age <= WINDOW_DAYS)
    country, countries = pd.factorize(ins["country"].to_numpy()[in_window])
    spend = pd.Series(ins["spend"].to_numpy()[in_window]).groupby(ad[in_window].astype(np.int64) * len(countries) + country).sum()
    key = spend.index.to_numpy()
    width = max(len(countries), 1)
    window_countries = pd.DataFrame({"ad": key // width, "country": key % width, "spend": spend.to_numpy()})
    return AdDays(ad_ids=ad_ids, days=days, countries=pd.Index(countries), window_countries=window_countries)


@dataclass(frozen=True)
class EntityRows:
    """Per ad code of an :class:`AdDays`: the entity table's rows of the ad, its ad set and its
    campaign (-1 where the table lacks one), so the ad level sums up to the others by integer keys."""

    size: int
    ad: np.ndarray
    adset: np.ndarray
    campaign: np.ndarray

    @classmethod
    def of(cls, entities: pd.DataFrame, ad_ids: pd.Index) -> "EntityRows":
        kind, entity_ids = arrow_strings(entities["entity_type"]), arrow_strings(entities["entity_id"])
        ad = level_rows(kind, entity_ids, "ad", arrow_strings(ad_ids))
        known = ad >= 0
        adset = np.full(len(ad), -1)
        campaign = np.full(len(ad), -1)
        adset[known] = level_rows(kind, entity_ids, "adset", arrow_strings(entities["adset_id"]).take(ad[known]))
        campaign[known] = level_rows(kind, entity_ids, "campaign", arrow_strings(entities["campaign_id"]).take(ad[known]))
        return cls(size=len(entities), ad=ad, adset=adset, campaign=campaign)

    def ad_codes(self) -> np.ndarray:
        """Per entity row: the ad code of its insight rows (-1: not an ad, or an ad without rows)."""
        code = np.full(self.size, -1)
        code[self.ad[self.ad >= 0]] = np.flatnonzero(self.ad >= 0)
        return code

    def roll_up(self, per_ad: pd.DataFrame) -> pd.DataFrame:
        """``per_ad`` (indexed by ad code) summed at every level, indexed by entity row, aligned
        with the entity table (NaN where an entity has nothing, as a left merge would)."""
        codes = per_ad.index.to_numpy()
        levels = [per_ad.set_axis(self.ad[codes])]
        levels += [per_ad.groupby(parent[codes]).sum() for parent in (self.adset, self.campaign)]
        summed = pd.concat(levels)
        return summed[summed.index >= 0].reindex(pd.RangeIndex(self.size))


def arrow_strings(values: pd.Series | pd.Index) -> pa.Array | pa.ChunkedArray:
    """Ids as Arrow strings: the column's own buffers when it has them, else converted once."""
    return pa.array(values, type=pa.string(), from_pandas=True)


def level_rows(kind: pa.Array, entity_ids: pa.Array, level: str, ids: pa.Array) -> np.ndarray:
    """The entity table's row (``kind``: its entity_type column, ``entity_ids``: its entity_id
    column, as :func:`arrow_strings`) of each of ``ids`` at ``level``; -1 where there is none.
    pyarrow's hash lookup: pandas' look-ups in Arrow string columns make a Python string of every
    id first (0.2 s for the 230,000 entities of 10,000 campaigns)."""
    positions = np.flatnonzero(pc.equal(kind, level).to_numpy(zero_copy_only=False))
    found = pc.index_in(ids, value_set=entity_ids.take(positions)).fill_null(-1).to_numpy(zero_copy_only=False)
    return np.where(found >= 0, positions[found], -1)


def roas_confidence(
    purchases: np.ndarray | float, expected_purchases: np.ndarray | float, extra_relative_variance: np.ndarray | float = 0.0
) -> np.ndarray:
    """Probability that the true ROAS is within ±20 % of the measured one (see module docstring);
    ``extra_relative_variance``: what the maturity correction adds to the Poisson term."""
    # The standard normal CDF, imported here: scipy.special is a quarter of a second of every
    # process start (the definitions' load, each CLI command), and most never compute a confidence.
    from scipy.special import ndtr

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


def maturity_curve(snapshot: AccountSnapshot, days: AdDays | None = None) -> pd.DataFrame:
    """Per full day's age in days (1 = yesterday): the share of its eventual purchases and value
    reported by now, and the curve's relative error (module docstring, "Maturity")."""
    days = ad_days(snapshot) if days is None else days
    full = days.days[days.days["age"] >= 1]
    ad = full["ad"].to_numpy()
    per_ad = full[["clicks", "purchases", "revenue"]].groupby(ad).sum()
    at = np.searchsorted(per_ad.index.to_numpy(), ad)  # each row's ad in per_ad (sorted codes)
    ad_clicks = per_ad["clicks"].to_numpy(dtype=float)[at]
    clicks = full["clicks"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_ad_rate = np.where(ad_clicks > 0, clicks / ad_clicks, 0.0)
    days = pd.DataFrame({
        "age": full["age"].to_numpy(),
        "purchases": full["purchases"].to_numpy(dtype=float),
        "revenue": full["revenue"].to_numpy(dtype=float),
        "expected_purchases": at_ad_rate * per_ad["purchases"].to_numpy(dtype=float)[at],
        "expected_revenue": at_ad_rate * per_ad["revenue"].to_numpy(dtype=float)[at],
    }).groupby("age").sum()
    ages = days.index.to_numpy()
    purchases_share, purchases_error = fit_maturity(ages, days["purchases"], days["expected_purchases"], days["purchases"])
    value_share, value_error = fit_maturity(ages, days["revenue"], days["expected_revenue"], days["purchases"])
    return pd.DataFrame({
        "age": ages.astype(int), "purchases_share": purchases_share, "value_share": value_share,
        "purchases_error": purchases_error, "value_error": value_error,
    })


def matured(rows: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    """Rows of the daily ad-level table (an ``age`` column) with ``purchases_matured`` and
    ``revenue_matured``: each day's reported figures divided by the share reported at its age
    (ages the curve lacks count as reported)."""
    shares = curve.set_index("age")
    age = rows["age"].to_numpy()
    ages = pd.RangeIndex(int(age.max()) + 1 if len(age) else 0)

    def share(column: str) -> np.ndarray:
        # per age once, then taken per row (a map of every row's age looked each one up)
        return shares[column].reindex(ages).fillna(1.0).to_numpy()[age]

    return rows.assign(
        purchases_matured=rows["purchases"] / share("purchases_share"),
        revenue_matured=rows["revenue"] / share("value_share"),
    )


def roas_metrics(snapshot: AccountSnapshot, entities: pd.DataFrame, days: AdDays | None = None) -> pd.DataFrame:
    """7-day totals, ROAS, CTR, confidence (observed and matured), today's spend and country mix
    for every entity. ``days``: the snapshot's :func:`ad_days`, when the caller has it already."""
    days = ad_days(snapshot) if days is None else days
    rows = days.rows(entities)
    curve = maturity_curve(snapshot, days)
    window = matured(days.between(1, WINDOW_DAYS), curve)
    totals = rows.roll_up(window[SUMS + ["revenue_matured"]].groupby(window["ad"].to_numpy()).sum())
    today_rows = days.between(0, 0)
    today = rows.roll_up(today_rows[["spend"]].set_axis(today_rows["ad"].to_numpy()).rename(columns={"spend": "spend_today"}))

    metrics = pd.concat([entities.reset_index(drop=True), totals, today], axis=1)
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
    return pd.concat([metrics, country_mix(days, rows)], axis=1)


def account_roas(metrics: pd.DataFrame) -> float:
    """The whole account's 7-day ROAS (revenue over spend of its campaigns); 0 without spend."""
    campaigns = metrics[metrics["entity_type"] == "campaign"]
    spend = campaigns["spend_7d"].sum()
    return round(float(campaigns["revenue_7d"].sum() / spend), 4) if spend else 0.0


def country_mix(days: AdDays, rows: EntityRows) -> pd.DataFrame:
    """Per entity row: the largest single country's share of the window's spend and Spain's share
    (geo rules); NaN for an entity without window rows. One pivot of spend per (entity, country)
    at every level (the ad level's summed up); an entity whose top countries tie (e.g. no spend)
    gets the first of them in alphabetical order."""
    per_ad = days.window_countries
    ad, country, spend = per_ad["ad"].to_numpy(), per_ad["country"].to_numpy(), per_ad["spend"]
    width = max(len(days.countries), 1)
    levels = [spend.set_axis(rows.ad[ad] * width + country)]
    levels += [spend.groupby(parent[ad] * width + country).sum() for parent in (rows.adset, rows.campaign)]
    summed = pd.concat(levels)
    summed = summed[summed.index >= 0]
    entity, country = summed.index.to_numpy() // width, summed.index.to_numpy() % width
    spend = summed.to_numpy()
    total = summed.groupby(entity).transform("sum").to_numpy()
    share = np.where(total > 0, spend / np.where(total > 0, total, 1.0), 0.0)

    alphabetical = np.argsort(np.argsort(days.countries.to_numpy().astype(str)))
    order = np.lexsort((alphabetical[country], -share, entity))
    first = order[np.r_[True, entity[order][1:] != entity[order][:-1]]] if len(order) else order
    spain = country == days.countries.get_indexer(["ES"])[0] if len(days.countries) else np.zeros(len(country), dtype=bool)
    mix = pd.DataFrame(
        {
            "top_country": pd.array(days.countries.to_numpy()[country[first]], dtype=days.countries.dtype),
            "top_country_share": share[first],
            "spain_share": 0.0,
        },
        index=entity[first],
    )
    mix.loc[entity[spain], "spain_share"] = share[spain]
    return mix.reindex(pd.RangeIndex(rows.size))
