"""Drawing new campaigns, with their ad sets and ads, from the parameters' distributions.

Rows come out as dicts of arrays ready for :meth:`Table.append`; an ad set's ``campaign`` and an
ad's ``adset``/``campaign`` are indices into the tables, so the caller passes where the new rows
will start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import MarketParams

ACTIVE, PAUSED = 0, 1
STATUS_NAMES = ("ACTIVE", "PAUSED")
LEARNING, LEARNED, LEARNING_LIMITED = 0, 1, 2
LEARNING_NAMES = ("LEARNING", "SUCCESS", "FAIL")  # the Graph API's learning_stage_info.status
COUNTRIES = ("ES", "PT", "FR")  # an ad set's country slots hold indices into this
NOT_YET = -1  # a time column's value for "never" (not paused, no source ad)
MINUTES_PER_DAY = 24 * 60


def campaign_columns() -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        "id": ("int64", ()), "serial": ("int64", ()), "created": ("int64", ()), "status": ("int8", ()),
        "paused_at": ("int64", ()), "cbo": ("bool", ()), "budget": ("int64", ()), "aov": ("float64", ()),
        "ab_test": ("bool", ()),
        # today's draws and running totals (reset at local midnight)
        "delivery": ("float64", ()), "spent_today": ("float64", ()), "sale_factor": ("float64", ()),
        "outage": ("bool", ()), "truth_spend": ("float64", ()), "truth_value": ("float64", ()),
        "truth_purchases": ("int64", ()),
    }


def adset_columns() -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        "id": ("int64", ()), "campaign": ("int64", ()), "rank": ("int64", ()), "created": ("int64", ()),
        "status": ("int8", ()), "paused_at": ("int64", ()), "budget": ("int64", ()), "roas": ("float64", ()),
        "elasticity": ("float64", ()), "saturation_spend": ("float64", ()), "saturated_purchases": ("float64", ()),
        "cpm": ("float64", ()), "countries": ("int8", (2,)), "first_share": ("float64", ()),
        "learning": ("int8", ()), "learning_since": ("int64", ()), "learning_events": ("int64", ()),
        "delivery": ("float64", ()), "spent_today": ("float64", ()), "cpm_today": ("float64", ()),
    }


def ad_columns(reported_days: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    window = (2, reported_days)  # country slot × days back (0 = today)
    return {
        "id": ("int64", ()), "adset": ("int64", ()), "campaign": ("int64", ()), "rank": ("int64", ()),
        "created": ("int64", ()), "status": ("int8", ()), "paused_at": ("int64", ()), "creative_id": ("int64", ()),
        "approved_at": ("int64", ()), "source": ("int64", ()), "ever_active": ("bool", ()),
        "quality": ("float64", ()), "ctr": ("float64", ()), "exposure": ("float64", ()), "fatigue_exposure": ("float64", ()),
        "w_spend": ("float64", window), "w_impressions": ("int64", window), "w_clicks": ("int64", window),
        "w_purchases": ("int64", window), "w_value": ("float64", window),
        # purchases attributed to each day, by how many days later they are reported
        "w_reported": ("int32", window + (reported_days,)),
    }


@dataclass
class NewCampaigns:
    campaigns: dict[str, np.ndarray]
    adsets: dict[str, np.ndarray]
    ads: dict[str, np.ndarray]
    ids_used: int


def draw_campaigns(
    rng: np.random.Generator, p: MarketParams, created: np.ndarray, seasoned: np.ndarray,
    first_serial: int, first_id: int, first_adset: int, first_campaign: int,
) -> NewCampaigns:
    """``len(created)`` campaigns launched at ``created`` (minutes). ``seasoned`` campaigns ran long
    before the simulation: their ad sets are out of learning and their creatives partly worn."""
    n = len(created)
    ab_test = rng.random(n) < p.ab_test_share
    adset_counts = np.where(ab_test, 1, rng.integers(p.adsets_per_campaign[0], p.adsets_per_campaign[1] + 1, n))
    cbo = ab_test | (rng.random(n) < p.cbo_share)
    shares, lows, highs = (np.array(column) for column in zip(*p.roas_tiers))
    tier = rng.choice(len(shares), size=n, p=shares / shares.sum())
    campaign_roas = rng.uniform(lows[tier], highs[tier])
    aov = rng.uniform(*p.aov_range_usd, n)
    budget_usd = _round_budget(rng.lognormal(np.log(p.budget_median_usd), p.budget_sigma, n), p)

    # ad sets
    of_campaign = np.repeat(np.arange(n), adset_counts)
    m = len(of_campaign)
    roas = campaign_roas[of_campaign] * rng.lognormal(0.0, p.adset_roas_sigma, m)
    cbo_pull = roas ** p.cbo_sharpness
    weights = np.where(cbo[of_campaign], cbo_pull, rng.uniform(0.5, 1.5, m))
    share = weights / np.bincount(of_campaign, weights, n)[of_campaign]
    adset_budget_usd = np.where(cbo[of_campaign], 0.0, _round_budget(budget_usd[of_campaign] * share, p))
    launch_spend = np.where(cbo[of_campaign], budget_usd[of_campaign] * share, adset_budget_usd) * p.daily_delivery_mean
    elasticity = rng.uniform(*p.elasticity_range, m)
    saturation_spend = launch_spend * rng.uniform(*p.saturation_multiple_range, m)
    at_launch = (launch_spend / saturation_spend) ** elasticity
    # purchases/day at the launch spend give the drawn ROAS there: P_sat * h(x0) = roas * spend / aov
    saturated_purchases = roas * launch_spend / aov[of_campaign] / (at_launch / (1.0 + at_launch))
    cpm = rng.uniform(*p.cpm_range_usd, m)
    mix_shares = np.array([mix[0] for mix in p.geo_mixes])
    mix = rng.choice(len(mix_shares), size=m, p=mix_shares / mix_shares.sum())
    countries = np.array([_country_slots(p.geo_mixes[k][1]) for k in mix], dtype=np.int8).reshape(m, 2)
    first_share = np.array([rng.uniform(*p.geo_mixes[k][2]) for k in mix]).reshape(m)
    weekly_purchases = 7 * roas * launch_spend / aov[of_campaign]
    learning = np.where(seasoned[of_campaign], np.where(weekly_purchases >= p.learning_events, LEARNED, LEARNING_LIMITED), LEARNING)

    # ads
    ad_counts = np.where(ab_test[of_campaign], rng.integers(2, 4, m), rng.integers(p.ads_per_adset[0], p.ads_per_adset[1] + 1, m))
    of_adset = np.repeat(np.arange(m), ad_counts)
    k = len(of_adset)
    sigma = np.where(ab_test[of_campaign[of_adset]], p.ab_quality_sigma, p.ad_quality_sigma)
    quality = rng.lognormal(0.0, sigma)
    quality /= (np.bincount(of_adset, quality, m) / ad_counts)[of_adset]  # mean 1 in each ad set
    daily_impressions = launch_spend[of_adset] / ad_counts[of_adset] / cpm[of_adset] * 1000.0
    fatigue_exposure = daily_impressions * rng.uniform(*p.fatigue_days_range, k)
    worn = rng.uniform(*p.initial_exposure_range, k) * fatigue_exposure
    exposure = np.where(seasoned[of_campaign[of_adset]], worn, 0.0)

    ids = np.arange(first_id, first_id + n + m + 2 * k)
    campaign_ids, adset_ids, ad_ids, creative_ids = np.split(ids, [n, n + m, n + m + k])
    adset_created = created[of_campaign]
    ad_created = adset_created[of_adset]
    return NewCampaigns(
        campaigns={
            "id": campaign_ids, "serial": np.arange(first_serial, first_serial + n), "created": created,
            "status": np.full(n, ACTIVE), "paused_at": np.full(n, NOT_YET), "cbo": cbo,
            "budget": np.where(cbo, np.round(budget_usd * 100), 0).astype(np.int64), "aov": aov, "ab_test": ab_test,
        },
        adsets={
            "id": adset_ids, "campaign": of_campaign + first_campaign, "rank": _rank(of_campaign), "created": adset_created,
            "status": np.full(m, ACTIVE), "paused_at": np.full(m, NOT_YET),
            "budget": np.round(adset_budget_usd * 100).astype(np.int64), "roas": roas, "elasticity": elasticity,
            "saturation_spend": saturation_spend, "saturated_purchases": saturated_purchases, "cpm": cpm,
            "countries": countries, "first_share": first_share, "learning": learning, "learning_since": adset_created,
        },
        ads={
            "id": ad_ids, "adset": of_adset + first_adset, "campaign": of_campaign[of_adset] + first_campaign,
            "rank": _rank(of_adset), "created": ad_created, "status": np.full(k, ACTIVE), "paused_at": np.full(k, NOT_YET),
            "creative_id": creative_ids, "approved_at": ad_created, "source": np.full(k, NOT_YET), "ever_active": np.ones(k, bool),
            "quality": quality, "ctr": rng.uniform(*p.ctr_range, k), "exposure": exposure, "fatigue_exposure": fatigue_exposure,
        },
        ids_used=len(ids),
    )


def _country_slots(codes: tuple[str, ...]) -> list[int]:
    slots = [COUNTRIES.index(code) for code in codes]
    return slots + [NOT_YET] * (2 - len(slots))


def _round_budget(usd: np.ndarray, p: MarketParams) -> np.ndarray:
    """Budgets as people set them: whole $5 steps inside the allowed range."""
    return np.clip(np.round(usd / 5.0) * 5.0, *p.budget_range_usd)


def _rank(parent: np.ndarray) -> np.ndarray:
    """1, 2, ... within each run of equal (sorted) parents: the child's number in its parent."""
    starts = np.r_[0, np.flatnonzero(np.diff(parent)) + 1]
    return np.arange(len(parent)) - np.repeat(starts, np.diff(np.r_[starts, len(parent)])) + 1
