"""Every assumption of the simulated market and its default, in one place.

Each field says what it means, its default, and where the number comes from. "Meta" sources are
the Meta Business Help Center and the Marketing API documentation; "assumption" marks a number
chosen to give a plausible e-commerce account, which no public source pins down. docs/market.md
has the same table for people, with what the model leaves out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class MarketParams:
    # --- the account and its clock ------------------------------------------------------------------
    # The account's Graph id (act_<digits>). Assumption.
    account_id: str = "act_2026"
    # IANA time zone of the account: decides calendar days, pacing hours and weekdays. Europe/Madrid,
    # like the demo account, because the engine's geo rules are written around Spain.
    timezone_name: str = "Europe/Madrid"
    # The run starts at local midnight of this date (account time zone); `Market.now` is then that
    # moment in UTC. Assumption.
    start: str = "2026-11-02"
    # Simulated minutes per interval, the cycle interval (META_CYCLE_INTERVAL_MINUTES's default).
    # Must divide 60. `advance` moves in whole intervals.
    step_minutes: int = 30
    # Days of history simulated before `start`, so that 7-day windows (and a last full day before
    # them) have data at once. At least `reported_days`.
    warmup_days: int = 10
    # Days of insights a snapshot carries, today included (9 = today + the 8 full days the engine's
    # 7-day window and spike baseline read).
    reported_days: int = 9

    # --- the account's size and shape ----------------------------------------------------------------
    # Ad sets per campaign and ads per ad set, inclusive ranges. Assumption (kept small so a
    # 200-campaign account stays near a thousand ads).
    adsets_per_campaign: tuple[int, int] = (1, 3)
    ads_per_adset: tuple[int, int] = (1, 3)
    # Share of campaigns with a campaign budget (CBO, Advantage campaign budget); the others'
    # ad sets hold their own budgets. Assumption.
    cbo_share: float = 0.5
    # Campaign daily budgets in USD: lognormal with this median and sigma, clipped to the range and
    # rounded to $5. Non-CBO campaigns split their budget over their ad sets. Assumption.
    budget_median_usd: float = 150.0
    budget_sigma: float = 0.9
    budget_range_usd: tuple[float, float] = (20.0, 1500.0)
    # Share of the initial campaigns launched during the warm-up (young at the start; some still
    # inside the engine's 48 h embargo). Assumption.
    young_campaign_share: float = 0.10
    # New campaigns per day after the start, as a share of the initial count (Poisson). Assumption.
    arrivals_per_day_share: float = 0.01
    # Share of campaigns that are an A/B test (one ad set, 2-3 ads; listed in `ab_tests` until a
    # winner is published) and how far apart their ads' qualities are (lognormal sigma). Assumption.
    ab_test_share: float = 0.08
    ab_quality_sigma: float = 0.35

    # --- economics of one entity ---------------------------------------------------------------------
    # Quality tiers of campaigns: (share, low ROAS, high ROAS) at the launch budget, drawn
    # uniformly inside the tier. Clear winners, the engine's hold band, cut candidates, losers.
    # Assumption, chosen so that moving budget from losers to winners can earn money.
    roas_tiers: tuple[tuple[float, float, float], ...] = (
        (0.25, 3.0, 5.0),
        (0.45, 1.5, 3.0),
        (0.15, 1.0, 1.5),
        (0.15, 0.4, 0.95),
    )
    # Spread of an ad set's ROAS around its campaign's, and of an ad's around its ad set's
    # (lognormal sigma). Assumption.
    adset_roas_sigma: float = 0.15
    ad_quality_sigma: float = 0.15
    # Response to spend: purchases/day = P_sat * x^b / (1 + x^b), x = spend / saturation spend.
    # Below saturation this is purchases ∝ spend^b (b < 1: each dollar earns less than the one
    # before); above it purchases level off at P_sat. b per ad set, uniform in this range.
    # Assumption (diminishing returns to budget are documented by Meta only qualitatively: "as you
    # spend more, the cost per result may rise").
    elasticity_range: tuple[float, float] = (0.5, 0.85)
    # The saturation spend as a multiple of the ad set's launch spend, uniform in this range.
    # Assumption.
    saturation_multiple_range: tuple[float, float] = (1.5, 5.0)
    # Average order value per campaign, USD, uniform; each order's value is gamma-distributed
    # with this coefficient of variation (so the value of n orders is gamma too). Assumption.
    aov_range_usd: tuple[float, float] = (25.0, 120.0)
    order_value_cv: float = 0.6
    # Cost per 1,000 impressions per ad set, USD, uniform; and its day-to-day noise (lognormal
    # sigma). Assumption, in the range of published CPM benchmarks for Facebook feeds.
    cpm_range_usd: tuple[float, float] = (6.0, 14.0)
    cpm_daily_sigma: float = 0.10
    # Click-through rate of a fresh creative, uniform. Assumption (typical 0.9 %-2.5 %).
    ctr_range: tuple[float, float] = (0.008, 0.025)
    # Geography of ad sets: (share of ad sets, countries, range of the first country's spend share).
    # Mostly within the engine's geo rules (Spain ≥ 35 % when targeted, no country above 70 %
    # unless Spain alone); the last mix is concentrated on France, as real accounts sometimes are.
    geo_mixes: tuple[tuple[float, tuple[str, ...], tuple[float, float]], ...] = (
        (0.55, ("ES",), (1.0, 1.0)),
        (0.25, ("ES", "PT"), (0.45, 0.65)),
        (0.10, ("ES", "FR"), (0.40, 0.60)),
        (0.10, ("FR", "ES"), (0.75, 0.85)),
    )
    # Interval-to-interval noise of a two-country split (lognormal sigma on the first share).
    country_share_sigma: float = 0.05

    # --- delivery: how a budget is spent --------------------------------------------------------------
    # Share of the day's spend per local hour (0-23), normalised: low at night, peaking in the
    # evening. Assumption (typical e-commerce traffic; Meta paces a daily budget over the day).
    pacing_curve: tuple[float, ...] = (
        2.0, 1.4, 1.0, 0.8, 0.8, 1.0, 1.6, 2.6, 3.6, 4.0, 4.2, 4.4,
        4.6, 4.6, 4.5, 4.5, 4.6, 4.8, 5.2, 5.6, 5.8, 5.4, 4.2, 3.0,
    )
    # A day's spend as a multiple of the budget: lognormal with this mean and sigma, then capped
    # by the overspend limit. Assumption.
    daily_delivery_mean: float = 0.97
    daily_delivery_sigma: float = 0.10
    # Daily spend may exceed the daily budget by this share, never more. Issue 12's figure; Meta's
    # Help Center ("About daily budgets") said 25 % for years and now says up to 75 % on some days
    # with the week kept to 7 × the daily budget (the weekly averaging is not modelled).
    overspend_limit: float = 0.25
    # CBO: a campaign splits its spend over its ad sets in proportion to (ROAS × learning
    # efficiency) ** this exponent, favouring the efficient ones. Assumption (Meta: campaign budget
    # "distributes your budget to the best opportunities").
    cbo_sharpness: float = 1.5
    # Conversion rate by weekday, Monday first (multiplies purchases). Assumption: weekends convert
    # a little better in e-commerce.
    weekday_conversion: tuple[float, ...] = (1.00, 0.98, 0.97, 0.99, 1.02, 1.06, 1.08)

    # --- Meta's delivery realities ----------------------------------------------------------------------
    # Learning phase: an ad set leaves it after this many optimization events (purchases) within
    # `learning_window_days` of its launch or last significant edit. Meta Business Help Center,
    # "About the learning phase": "around 50 optimization events" within 7 days.
    learning_events: int = 50
    learning_window_days: float = 7.0
    # While learning, purchases per dollar are divided by this factor (CPA × 1.25). Meta says ad
    # sets in learning perform less stably and usually at a higher cost per result; the figure is
    # issue 12's assumption (1.2-1.3). An ad set that does not exit within the window is "learning
    # limited": reported as FAIL, without the penalty (a simplification).
    learning_cpa_factor: float = 1.25
    # A budget change larger than this share of the old budget is a significant edit (restarts
    # learning). Meta lists budget changes among significant edits without a threshold; 20 % is
    # the common practitioner rule ("change budgets by at most 20 % at a time"). Strictly greater.
    significant_edit_pct: float = 0.20
    # Resuming a campaign or ad set paused for at least this many days is a significant edit.
    # Meta, "About the learning phase": pausing for 7 days or longer.
    long_pause_days: float = 7.0
    # At most this many budget changes per ad set (and per CBO campaign) in a rolling hour; more are
    # refused. Marketing API rate limiting: an ad set's budget can change 4 times per hour.
    budget_edits_per_hour: int = 4
    # The smallest daily budget accepted, minor units ($1). Meta's minimum depends on currency and
    # optimization; $1 is the floor. Assumption.
    min_budget_minor: int = 100
    # When a purchase is reported, by days after the day it is attributed to (the day of the
    # ad interaction; Meta reports a conversion on the impression's day): this share the same day,
    # `reported_within_week` spread over days 1-7 (each day `report_decay` of the day before), the
    # rest evenly over days 8-`attribution_days`. Meta attributes with 7-day click / 1-day view
    # windows and restates results for up to 28 days (Ads Manager: "results may be updated for up
    # to 28 days"). The shares are assumptions.
    reported_same_day: float = 0.70
    reported_within_week: float = 0.27
    report_decay: float = 0.6
    attribution_days: int = 28
    # Hours a new creative waits in ad review before it can deliver. Meta: "most ads are reviewed
    # within 24 hours"; usually much faster. Assumption.
    creative_review_hours: float = 4.0

    # --- creative fatigue --------------------------------------------------------------------------------
    # CTR (and with it purchases) = fresh CTR × (floor + (1 - floor) / (1 + (E / E50) ** steepness)),
    # E the creative's cumulative impressions, E50 the exposure at which half the fall has happened:
    # `fatigue_days_range` days of the ad's launch-budget impressions. Assumption (frequency-driven
    # fatigue is documented by Meta only qualitatively).
    fatigue_floor: float = 0.40
    fatigue_steepness: float = 3.0
    fatigue_days_range: tuple[float, float] = (14.0, 45.0)
    # Exposure of the ads of campaigns launched before the warm-up, in units of E50, uniform: some
    # creatives are already tired at the start. Assumption.
    initial_exposure_range: tuple[float, float] = (0.0, 0.8)
    # A variant's quality relative to its source ad (lognormal sigma). Assumption.
    variant_quality_sigma: float = 0.15

    # --- spikes ----------------------------------------------------------------------------------------
    # A sale: per campaign and day, this probability of a day whose conversion rate is multiplied
    # by a factor uniform in the range. Assumption.
    sale_probability: float = 0.01
    sale_factor_range: tuple[float, float] = (2.0, 3.0)
    # A tracking outage (a broken pixel on the campaign's site): per campaign and day, this
    # probability of a day on which only `outage_reported_share` of purchases is ever reported;
    # the purchases (and their revenue) happen as usual. Assumption.
    outage_probability: float = 0.005
    outage_reported_share: float = 0.02

    def __post_init__(self) -> None:
        if 60 % self.step_minutes:
            raise ValueError(f"step_minutes must divide 60, got {self.step_minutes}")
        if self.warmup_days < self.reported_days:
            raise ValueError("warmup_days must be at least reported_days, so the first snapshot has full history")
        if len(self.pacing_curve) != 24 or len(self.weekday_conversion) != 7:
            raise ValueError("pacing_curve needs 24 hourly weights and weekday_conversion 7 factors")
        if self.reported_same_day + self.reported_within_week > 1:
            raise ValueError("reported_same_day + reported_within_week must not exceed 1")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON data (tuples as lists)."""
        return {name: _lists(value) for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MarketParams":
        """The inverse of ``to_dict`` after a JSON round trip (lists become tuples again)."""
        return cls(**{f.name: _tuples(data[f.name]) for f in fields(cls) if f.name in data})


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
