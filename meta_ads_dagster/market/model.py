"""The market: one simulated ad account, delivered interval by interval and changed by writes.

Time is kept in whole minutes since the Unix epoch (UTC); calendar days, pacing hours and weekdays
are those of the account's time zone. Random draws come from separate streams, each a generator
keyed by (seed, stream, key): the world's by the day or the interval, a write's by the object it
creates. What the world does therefore never depends on what a policy writes (docs/market.md,
"Random streams"), and no generator state needs saving: a market saved and loaded continues exactly
as it would have.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from . import population as pop
from .params import MarketParams
from .population import ACTIVE, LEARNED, LEARNING, LEARNING_LIMITED, MINUTES_PER_DAY, NOT_YET, PAUSED
from .report import snapshot_document
from .table import Table

STATE_VERSION = 2
FIRST_ID = 6_000_000_001  # digits-only Graph-like ids: one counter for every object the world creates...
FIRST_WRITE_ID = 6_500_000_001  # ...and one for the objects writes create, so writes never shift the world's ids

# random streams: np.random.default_rng([seed, stream, key]); see docs/market.md, "Random streams"
STREAM_SETUP = 0  # the initial campaigns (key: none)
STREAM_DAY = 1  # a day's arrivals, delivery levels, CPMs, sales and outages (key: the local date's ordinal)
# one interval's delivery noise, one stream per quantity (key: the interval's index, minutes since the epoch / step)
STREAM_COUNTRY, STREAM_IMPRESSIONS, STREAM_CLICKS, STREAM_PURCHASES, STREAM_VALUES, STREAM_REPORTED, STREAM_LAGS = range(2, 9)
STREAM_VARIANT = 9  # a variant's creative quality (key: the new ad's id)


class MarketRefused(RuntimeError):
    """Meta would refuse this write (unknown object, wrong level, rate limit, bad budget)."""


class Market:
    """A seeded, deterministic ad account; see docs/market.md for the model."""

    def __init__(self, campaigns: int = 200, seed: int = 0, params: MarketParams | None = None):
        self.params = params or MarketParams()
        self.seed = seed
        self.initial_campaigns = campaigns
        self._zone = ZoneInfo(self.params.timezone_name)
        self._campaigns = Table.empty(pop.campaign_columns())
        self._adsets = Table.empty(pop.adset_columns())
        self._ads = Table.empty(pop.ad_columns(self.params.reported_days))
        self._next_id = FIRST_ID
        self._next_write_id = FIRST_WRITE_ID
        self.learning_resets = 0
        self._budget_edits: dict[str, list[int]] = {}
        self._truth_rows: list[list] = []  # [date ordinal, campaign index, spend, value, purchases]
        self._events: list[list] = []  # [date ordinal, campaign index, kind, factor]
        self._start = self._local_midnight(date.fromisoformat(self.params.start))
        self._now = self._start - self.params.warmup_days * MINUTES_PER_DAY
        self._today = self._local(self._now).date().toordinal()
        self._add_initial_campaigns(campaigns)
        self._index_ids()
        self._start_day()
        self.advance(self._start - self._now)

    # --- time -----------------------------------------------------------------------------------------
    @property
    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self._now * 60, unit="s", tz="UTC")

    def _local(self, minutes: int) -> datetime:
        return datetime.fromtimestamp(minutes * 60, tz=self._zone)

    def _local_midnight(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=self._zone).timestamp()) // 60

    def advance(self, minutes: int = 30) -> None:
        """Deliver ``minutes`` (a multiple of ``params.step_minutes``) of ads, interval by interval."""
        step = self.params.step_minutes
        if minutes < 0 or minutes % step:
            raise ValueError(f"advance: minutes must be a non-negative multiple of {step}, got {minutes}")
        for _ in range(minutes // step):
            self._deliver_interval()
            self._now += step
            today = self._local(self._now).date().toordinal()
            while self._today < today:
                self._end_day()
                self._today += 1
                self._start_day()

    def _stream(self, stream: int, *key: int) -> np.random.Generator:
        """The generator of one stream and key: the same draws for the same (seed, stream, key)."""
        return np.random.default_rng([self.seed, stream, *(int(k) for k in key)])

    # --- the population ---------------------------------------------------------------------------------
    def _add_initial_campaigns(self, count: int) -> None:
        p, step, rng = self.params, self.params.step_minutes, self._stream(STREAM_SETUP)
        young = rng.random(count) < p.young_campaign_share
        days_old = np.where(young, rng.uniform(0.5, p.warmup_days, count), rng.uniform(p.warmup_days + 1, 180, count))
        created = self._start - (days_old * MINUTES_PER_DAY / step).astype(np.int64) * step
        self._add_campaigns(rng, created, seasoned=~young)

    def _add_campaigns(self, rng: np.random.Generator, created: np.ndarray, seasoned: np.ndarray) -> None:
        new = pop.draw_campaigns(
            rng, self.params, created.astype(np.int64), seasoned,
            first_serial=len(self._campaigns) + 1, first_id=self._next_id,
            first_adset=len(self._adsets), first_campaign=len(self._campaigns),
        )
        self._next_id += new.ids_used
        self._campaigns.append(new.campaigns)
        self._adsets.append(new.adsets)
        self._ads.append(new.ads)

    def _index_ids(self) -> None:
        self._index = {kind: {int(i): n for n, i in enumerate(table["id"])} for kind, table in self._tables().items()}

    def _tables(self) -> dict[str, Table]:
        return {"campaign": self._campaigns, "adset": self._adsets, "ad": self._ads}

    # --- days -----------------------------------------------------------------------------------------------
    def _start_day(self) -> None:
        """Today's draws: delivery level per budget holder, CPM, sales and outages; new campaigns."""
        p, rng, c, s = self.params, self._stream(STREAM_DAY, self._today), self._campaigns, self._adsets
        if self._today >= date.fromisoformat(p.start).toordinal():
            arrivals = rng.poisson(p.arrivals_per_day_share * self.initial_campaigns)
            if arrivals:
                midnight = self._local_midnight(date.fromordinal(self._today))
                steps = rng.integers(0, MINUTES_PER_DAY // p.step_minutes, arrivals)
                self._add_campaigns(rng, midnight + np.sort(steps) * p.step_minutes, seasoned=np.zeros(arrivals, bool))
                self._index_ids()
        sigma = p.daily_delivery_sigma
        mean_log = np.log(p.daily_delivery_mean) - sigma**2 / 2
        c["delivery"] = rng.lognormal(mean_log, sigma, len(c))
        s["delivery"] = rng.lognormal(mean_log, sigma, len(s))
        s["cpm_today"] = s["cpm"] * rng.lognormal(-p.cpm_daily_sigma**2 / 2, p.cpm_daily_sigma, len(s))
        sale = rng.random(len(c)) < p.sale_probability
        c["sale_factor"] = np.where(sale, rng.uniform(*p.sale_factor_range, len(c)), 1.0)
        c["outage"] = rng.random(len(c)) < p.outage_probability
        c["spent_today"] = np.zeros(len(c))
        s["spent_today"] = np.zeros(len(s))
        exists = c["created"] < self._local_midnight(date.fromordinal(self._today + 1))
        for index in np.flatnonzero(sale & exists):
            self._events.append([self._today, int(index), "sale", float(c["sale_factor"][index])])
        for index in np.flatnonzero(c["outage"] & exists):
            self._events.append([self._today, int(index), "outage", p.outage_reported_share])

    def _end_day(self) -> None:
        """Book the day's truth per campaign and move the insights window on by one day."""
        c = self._campaigns
        for index in np.flatnonzero((c["truth_spend"] > 0) | (c["truth_purchases"] > 0)):
            self._truth_rows.append(
                [self._today, int(index), float(c["truth_spend"][index]), float(c["truth_value"][index]), int(c["truth_purchases"][index])]
            )
        for name in ("truth_spend", "truth_value", "truth_purchases"):
            c[name] = np.zeros_like(c[name])
        for name in ("w_spend", "w_impressions", "w_clicks", "w_purchases", "w_value", "w_reported"):
            window = np.roll(self._ads[name], 1, axis=2)
            window[:, :, 0] = 0
            self._ads[name] = window

    # --- one interval of delivery ----------------------------------------------------------------------
    def _deliver_interval(self) -> None:
        p, t = self.params, self._now
        c, s, a = self._campaigns, self._adsets, self._ads
        interval = t // p.step_minutes
        # every noise array is drawn over the world's ads in table order, then over the ads writes
        # created: a variant never shifts the draws of the world's ads (arrivals included)
        order = np.argsort(a["source"] != NOT_YET, kind="stable")

        def draw(stream: int, sample, *args: np.ndarray) -> np.ndarray:
            """``sample`` of the stream's generator over the ads in draw order, back in table order."""
            drawn = sample(self._stream(stream, interval), *(arg[order] for arg in args))
            out = np.empty_like(drawn)
            out[order] = drawn
            return out

        local = self._local(t)
        day_share = p.pacing_curve[local.hour] / sum(p.pacing_curve) * p.step_minutes / 60

        campaign_on = (c["status"] == ACTIVE) & (c["created"] <= t)
        adset_on = (s["status"] == ACTIVE) & (s["created"] <= t) & campaign_on[s["campaign"]]
        ad_on = (a["status"] == ACTIVE) & (a["created"] <= t) & adset_on[a["adset"]] & (a["approved_at"] <= t)
        fatigue = p.fatigue_floor + (1 - p.fatigue_floor) / (1 + (a["exposure"] / a["fatigue_exposure"]) ** p.fatigue_steepness)
        ad_pull = np.where(ad_on, a["quality"] * fatigue, 0.0)
        adset_pull = np.bincount(a["adset"], ad_pull, len(s))
        learning = np.where(s["learning"] == LEARNING, 1 / p.learning_cpa_factor, 1.0)

        # what each budget holder spends now: its budget paced over the day, within the overspend limit
        under_cbo = c["cbo"][s["campaign"]]
        cbo_pull = np.where(under_cbo & (adset_pull > 0), (s["roas"] * learning) ** p.cbo_sharpness, 0.0)
        campaign_pull = np.bincount(s["campaign"], cbo_pull, len(c))
        campaign_spend = self._paced_spend(c, campaign_pull > 0, day_share)
        own_spend = self._paced_spend(s, ~under_cbo & (adset_pull > 0), day_share)
        adset_spend = np.where(
            under_cbo, campaign_spend[s["campaign"]] * cbo_pull / np.where(campaign_pull > 0, campaign_pull, 1.0)[s["campaign"]], own_spend
        )

        # purchases per dollar at this spend level (the day's rate), then per ad and country
        daily_rate = adset_spend / day_share
        x = (daily_rate / s["saturation_spend"]) ** s["elasticity"]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_dollar = np.where(daily_rate > 0, s["saturated_purchases"] * x / (1 + x) / daily_rate, 0.0)
        per_dollar *= p.weekday_conversion[local.weekday()] * c["sale_factor"][s["campaign"]] * learning
        ad_share = ad_pull / np.where(adset_pull > 0, adset_pull, 1.0)[a["adset"]]
        ad_spend = adset_spend[a["adset"]] * ad_share
        noise = draw(STREAM_COUNTRY, lambda rng: rng.lognormal(0.0, p.country_share_sigma, len(a)))
        first = np.clip(s["first_share"][a["adset"]] * noise, 0.0, 1.0)
        first = np.where(s["countries"][a["adset"], 1] == NOT_YET, 1.0, first)
        spend = ad_spend[:, None] * np.stack([first, 1.0 - first], axis=1)
        impressions = draw(STREAM_IMPRESSIONS, np.random.Generator.poisson, spend / s["cpm_today"][a["adset"], None] * 1000.0)
        clicks = draw(STREAM_CLICKS, np.random.Generator.binomial, impressions, (a["ctr"] * fatigue)[:, None])
        expected = spend * (per_dollar[a["adset"]] * a["quality"] * fatigue)[:, None]
        purchases = np.minimum(draw(STREAM_PURCHASES, np.random.Generator.poisson, expected), impressions)
        cv2 = p.order_value_cv**2
        value = draw(STREAM_VALUES, np.random.Generator.gamma, purchases / cv2, (c["aov"][a["campaign"]] * cv2)[:, None])

        for name, amount in (("w_spend", spend), ("w_impressions", impressions), ("w_clicks", clicks), ("w_purchases", purchases), ("w_value", value)):
            a[name][:, :, 0] += amount
        self._report_later(purchases, order, interval)
        a["exposure"] += impressions.sum(axis=1)
        c["truth_spend"] += np.bincount(a["campaign"], spend.sum(axis=1), len(c))
        c["truth_value"] += np.bincount(a["campaign"], value.sum(axis=1), len(c))
        c["truth_purchases"] += np.bincount(a["campaign"], purchases.sum(axis=1), len(c)).astype(np.int64)
        self._learn(np.bincount(a["adset"], purchases.sum(axis=1), len(s)).astype(np.int64), t + p.step_minutes)

    def _paced_spend(self, holders: Table, delivering: np.ndarray, day_share: float) -> np.ndarray:
        """Each holder's spend this interval (USD): its budget × today's delivery level × the
        interval's share of the day, never taking the day past (1 + overspend) × the budget."""
        budget = holders["budget"] / 100.0
        want = np.where(delivering, budget * holders["delivery"] * day_share, 0.0)
        room = np.maximum((1 + self.params.overspend_limit) * budget - holders["spent_today"], 0.0)
        spend = np.minimum(want, room)
        holders["spent_today"] += spend
        return spend

    def _report_later(self, purchases: np.ndarray, order: np.ndarray, interval: int) -> None:
        """Split this interval's new purchases by the day they will be reported on (outage days lose
        almost all of them for good); drawn over the ads in ``order``, like the purchases."""
        flat = purchases[order].ravel()
        cells = np.flatnonzero(flat)
        if not len(cells):
            return
        outage = np.repeat(self._campaigns["outage"][self._ads["campaign"][order]], 2)[cells]
        reported = self._stream(STREAM_REPORTED, interval).binomial(flat[cells], np.where(outage, self.params.outage_reported_share, 1.0))
        by_lag = self._stream(STREAM_LAGS, interval).multinomial(reported, self._lag_probabilities())
        position, slot = np.divmod(cells, 2)
        self._ads["w_reported"][order[position], slot, 0, :] += by_lag[:, : self.params.reported_days].astype(np.int32)

    def _lag_probabilities(self) -> np.ndarray:
        """P(reported d days after the attributed day) for d < reported_days, then the rest (later)."""
        p = self.params
        week = p.report_decay ** np.arange(7)
        lags = np.zeros(p.attribution_days + 1)
        lags[0] = p.reported_same_day
        lags[1:8] = p.reported_within_week * week / week.sum()
        lags[8:] = (1 - p.reported_same_day - p.reported_within_week) / (p.attribution_days - 7)
        return np.r_[lags[: p.reported_days], lags[p.reported_days :].sum()]

    def _learn(self, events: np.ndarray, at: int) -> None:
        s, p = self._adsets, self.params
        learning = s["learning"] == LEARNING
        s["learning_events"] += np.where(learning, events, 0)
        learned = learning & (s["learning_events"] >= p.learning_events)
        expired = learning & ~learned & (at - s["learning_since"] >= p.learning_window_days * MINUTES_PER_DAY)
        s["learning"] = np.where(learned, LEARNED, np.where(expired, LEARNING_LIMITED, s["learning"])).astype(np.int8)

    def _restart_learning(self, adsets: np.ndarray) -> bool:
        s = self._adsets
        s["learning"][adsets] = LEARNING
        s["learning_since"][adsets] = self._now
        s["learning_events"][adsets] = 0
        self.learning_resets += len(adsets)
        return bool(len(adsets))

    # --- writes -------------------------------------------------------------------------------------------
    def _find(self, entity_type: str, entity_id: str) -> int:
        if entity_type not in self._index:
            raise MarketRefused(f"{entity_type} {entity_id}: unknown entity type (campaign, adset or ad)")
        index = self._index[entity_type].get(int(entity_id)) if str(entity_id).isdigit() else None
        if index is None or self._tables()[entity_type]["created"][index] > self._now:
            raise MarketRefused(f"{entity_type} {entity_id} does not exist")
        return index

    def _budget_holder(self, entity_type: str, index: int) -> tuple[str, int]:
        """Which object holds the budget that pays for this one: its CBO campaign, else its ad set."""
        if entity_type == "campaign":
            return ("campaign", index) if self._campaigns["cbo"][index] else ("adset", NOT_YET)
        adset = index if entity_type == "adset" else int(self._ads["adset"][index])
        campaign = int(self._adsets["campaign"][adset])
        return ("campaign", campaign) if self._campaigns["cbo"][campaign] else ("adset", adset)

    def _adsets_of(self, entity_type: str, index: int) -> np.ndarray:
        if entity_type == "campaign":
            return np.flatnonzero(self._adsets["campaign"] == index)
        return np.array([index] if entity_type == "adset" else [], dtype=np.int64)

    def check_budget(self, entity_type: str, entity_id: str, minor: int) -> None:
        """Raise MarketRefused where :meth:`update_budget` would, changing nothing."""
        self._budget_checked(entity_type, entity_id, minor)

    def _budget_checked(self, entity_type: str, entity_id: str, minor: int) -> tuple[int, str, list]:
        index = self._find(entity_type, entity_id)
        holder = self._budget_holder(entity_type, index)
        if holder != (entity_type, index):
            named = {"campaign": "its campaign (CBO)", "adset": "its ad set" if entity_type == "ad" else "its ad sets"}[holder[0]]
            raise MarketRefused(f"{entity_type} {entity_id} has no daily budget: the budget is on {named}")
        minor = int(minor)
        if minor < self.params.min_budget_minor:
            raise MarketRefused(f"{entity_type} {entity_id}: daily budget {minor} is below the minimum {self.params.min_budget_minor}")
        key = f"{entity_type}:{index}"
        recent = [t for t in self._budget_edits.get(key, []) if self._now - t < 60]
        if len(recent) >= self.params.budget_edits_per_hour:
            raise MarketRefused(
                f"{entity_type} {entity_id}: budget changed {len(recent)} times in the last hour (limit {self.params.budget_edits_per_hour})"
            )
        return index, key, recent

    def update_budget(self, entity_type: str, entity_id: str, minor: int) -> dict[str, Any]:
        """Set a daily budget (minor units) on a CBO campaign or on an ad set of a non-CBO campaign."""
        index, key, recent = self._budget_checked(entity_type, entity_id, minor)
        minor = int(minor)
        self._budget_edits[key] = recent + [self._now]
        table = self._tables()[entity_type]
        previous = int(table["budget"][index])
        table["budget"][index] = minor
        significant = abs(minor - previous) > self.params.significant_edit_pct * previous
        restarted = self._restart_learning(self._adsets_of(entity_type, index)) if significant else False
        return {"entity_type": entity_type, "id": str(entity_id), "previous": str(previous), "daily_budget": str(minor), "learning_restarted": restarted}

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        index = self._find(entity_type, entity_id)
        table = self._tables()[entity_type]
        previous = int(table["status"][index])
        if previous == ACTIVE:
            table["status"][index] = PAUSED
            table["paused_at"][index] = self._now
        return {"entity_type": entity_type, "id": str(entity_id), "previous": pop.STATUS_NAMES[previous], "status": "PAUSED"}

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """ACTIVE again. A campaign or ad set paused for ``long_pause_days`` or more, and an ad that
        never ran (a new creative in its ad set), restart their ad sets' learning."""
        index = self._find(entity_type, entity_id)
        table = self._tables()[entity_type]
        previous = int(table["status"][index])
        restarted = False
        if previous == PAUSED:
            table["status"][index] = ACTIVE
            if entity_type == "ad":
                restarted = self._activate_new_creative(index)
            elif self._now - table["paused_at"][index] >= self.params.long_pause_days * MINUTES_PER_DAY:
                restarted = self._restart_learning(self._adsets_of(entity_type, index))
            table["paused_at"][index] = NOT_YET
        return {"entity_type": entity_type, "id": str(entity_id), "previous": pop.STATUS_NAMES[previous], "status": "ACTIVE", "learning_restarted": restarted}

    def _activate_new_creative(self, ad: int) -> bool:
        if self._ads["ever_active"][ad]:
            return False
        self._ads["ever_active"][ad] = True
        return self._restart_learning(np.array([self._ads["adset"][ad]]))

    def publish_winner(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        """End an A/B test as one unit: the winner ACTIVE, every loser PAUSED."""
        winner = self._find("ad", winner_ad_id)
        losers = [self._find("ad", ad_id) for ad_id in loser_ad_ids]  # all checked before any change
        result = self.resume("ad", winner_ad_id)
        for ad_id in loser_ad_ids:
            self.pause("ad", ad_id)
        self._campaigns["ab_test"][self._ads["campaign"][[winner, *losers]]] = False
        return {"winner_ad_id": str(winner_ad_id), "loser_ad_ids": [str(i) for i in loser_ad_ids], "learning_restarted": result["learning_restarted"]}

    def create_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        """A new ad in the same ad set with a fresh creative (no exposure yet), its creative in
        review for ``creative_review_hours``. ``status`` ``PAUSED`` (Meta's copy default) waits for
        a resume; ``ACTIVE`` delivers once the review is over, and a new creative in the ad set
        restarts its learning now, as resuming a never-run ad does."""
        if status not in ("ACTIVE", "PAUSED"):
            raise MarketRefused(f"ad {ad_id}: variant status {status!r} is not ACTIVE or PAUSED")
        source = self._find("ad", ad_id)
        a, p = self._ads, self.params
        new_id, creative_id = self._next_write_id, self._next_write_id + 1
        self._next_write_id += 2
        change = self._stream(STREAM_VARIANT, new_id).lognormal(0.0, p.variant_quality_sigma)
        row = {name: a[name][[source]] for name in ("adset", "campaign", "fatigue_exposure")}
        index = a.append(row | {
            "id": [new_id], "rank": [int((a["adset"] == a["adset"][source]).sum()) + 1], "created": [self._now],
            "status": [PAUSED], "paused_at": [self._now], "creative_id": [creative_id],
            "approved_at": [self._now + int(p.creative_review_hours * 60)], "source": [a["id"][source]], "ever_active": [False],
            "quality": a["quality"][[source]] * change, "ctr": a["ctr"][[source]] * change, "exposure": [0.0],
        })[0]
        self._index["ad"][new_id] = int(index)
        restarted = self.resume("ad", str(new_id))["learning_restarted"] if status == "ACTIVE" else False
        return {"id": str(new_id), "creative_id": str(creative_id), "source_ad_id": str(ad_id), "status": status, "learning_restarted": restarted}

    # --- reading ---------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The account as Meta reports it now (docs/snapshot-format.md): reported, not true, purchases."""
        return snapshot_document(self)

    def total_daily_budget(self) -> float:
        """USD: the daily budgets of every running budget holder (CBO campaigns, ad sets of the others)."""
        c, s, t = self._campaigns, self._adsets, self._now
        campaign_on = (c["status"] == ACTIVE) & (c["created"] <= t)
        adset_on = (s["status"] == ACTIVE) & (s["created"] <= t) & campaign_on[s["campaign"]] & ~c["cbo"][s["campaign"]]
        return float((c["budget"][campaign_on & c["cbo"]].sum() + s["budget"][adset_on].sum()) / 100)

    def truth_daily(self, by_campaign: bool = False, include_warmup: bool = False) -> pd.DataFrame:
        """Per calendar day (account time, ``date`` as YYYY-MM-DD): spend, revenue (the true,
        eventual value of the purchases attributed to that day) and purchases. Today is partial.
        From ``params.start`` on unless ``include_warmup``; per campaign (``campaign_id``) if asked."""
        c = self._campaigns
        today = np.flatnonzero((c["truth_spend"] > 0) | (c["truth_purchases"] > 0))
        rows = self._truth_rows + [
            [self._today, int(i), float(c["truth_spend"][i]), float(c["truth_value"][i]), int(c["truth_purchases"][i])] for i in today
        ]
        frame = pd.DataFrame(rows, columns=["day", "campaign", "spend", "revenue", "purchases"])
        if not include_warmup:
            frame = frame[frame["day"] >= date.fromisoformat(self.params.start).toordinal()]
        campaign_ids = c["id"][frame["campaign"].to_numpy(dtype=np.int64)].astype(str).tolist()
        frame = frame.assign(date=[date.fromordinal(d).isoformat() for d in frame["day"]], campaign_id=campaign_ids)
        keys = ["date", "campaign_id"] if by_campaign else ["date"]
        return frame.groupby(keys, as_index=False)[["spend", "revenue", "purchases"]].sum()

    def events(self) -> pd.DataFrame:
        """The spikes drawn so far: one row per (date, campaign_id, kind) with kind ``sale``
        (factor: the conversion-rate multiplier) or ``outage`` (factor: the share still reported)."""
        frame = pd.DataFrame(self._events, columns=["day", "campaign", "kind", "factor"])
        return pd.DataFrame({
            "date": [date.fromordinal(d).isoformat() for d in frame["day"]],
            "campaign_id": [str(i) for i in self._campaigns["id"][frame["campaign"].to_numpy(dtype=np.int64)]],
            "kind": frame["kind"], "factor": frame["factor"],
        })

    # --- saving and loading -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything the market is, as JSON-serialisable data (the random streams are keyed, not saved)."""
        return {
            "version": STATE_VERSION, "params": self.params.to_dict(), "seed": self.seed, "initial_campaigns": self.initial_campaigns,
            "now": self._now, "today": self._today, "next_id": self._next_id, "next_write_id": self._next_write_id,
            "learning_resets": self.learning_resets, "budget_edits": self._budget_edits,
            "truth_rows": self._truth_rows, "events": self._events,
            "tables": {kind: table.to_state() for kind, table in self._tables().items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Market":
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"market state version {state.get('version')!r}, expected {STATE_VERSION}")
        market = cls.__new__(cls)
        market.params = MarketParams.from_dict(state["params"])
        market.seed, market.initial_campaigns = state["seed"], state["initial_campaigns"]
        market._zone = ZoneInfo(market.params.timezone_name)
        market._now, market._today = state["now"], state["today"]
        market._next_id, market._next_write_id = state["next_id"], state["next_write_id"]
        market.learning_resets = state["learning_resets"]
        market._budget_edits = {key: list(times) for key, times in state["budget_edits"].items()}
        market._truth_rows = [list(row) for row in state["truth_rows"]]
        market._events = [list(row) for row in state["events"]]
        market._start = market._local_midnight(date.fromisoformat(market.params.start))
        tables = {kind: Table.from_state(table) for kind, table in state["tables"].items()}
        market._campaigns, market._adsets, market._ads = tables["campaign"], tables["adset"], tables["ad"]
        market._index_ids()
        return market
