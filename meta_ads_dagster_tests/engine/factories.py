"""Build valid account snapshots (docs/snapshot-format.md) for tests, from a few numbers.

Every test layer can use this (engine, stub client, fake Graph server, ``meta-ads plan``): the result
is a plain ``dict`` in the snapshot format, ready for ``parse_snapshot`` or ``json.dumps``.

Shape
    ``make_snapshot([campaign(...), campaign(...)], ab_tests=..., recent_actions=...)``

    - :func:`campaign` is the quick way: one campaign with one ad set and ``n_ads`` identical ads,
      whose 7 full days before ``as_of`` carry the given daily spend / ROAS / purchases /
      impressions / clicks (per campaign, split evenly over the ads). Budgets are in USD (major
      units); ``cbo=True`` puts the budget on the campaign, ``cbo=False`` on the ad set.
    - For anything finer build the specs yourself: :class:`CampaignSpec` → :class:`AdSetSpec` →
      :class:`AdSpec`, each ad holding its own list of :class:`Day` (oldest first, the last one
      being *yesterday*; ``today`` is the partial day of ``as_of``). :func:`steady_days` and
      :func:`days_from` make day lists.
    - Countries: an ad set targets ``countries``; every day of its ads is split over
      ``country_shares`` (default: everything in the first country), one insights row per country
      (the Graph API's ``breakdowns=country``).

Ids (deterministic, digits only, unique across object types; positions are 0-based):
    campaign ``c`` → :func:`campaign_id` ``"1cc000"``; ad set ``s`` of it → :func:`adset_id`
    ``"1ccs00"`` (s+1); ad ``a`` of that → :func:`ad_id` ``"1ccsaa"`` (a+1); the ad's creative is
    ``"9" + ad id``. An explicit ``id=`` on a spec wins.

Time
    ``as_of`` defaults to :data:`AS_OF` (UTC account). Ages are hours before ``as_of``; A/B tests and
    recent actions are given as "hours ago" too (see :func:`ab_test`, :func:`recent_action`).

Money
    Budgets and days are given in the account currency's major units; ``make_snapshot`` writes
    budgets in minor units (× 100, or × 1 for zero-decimal currencies such as JPY).

Also here
    :func:`make_action` (one action-frame row for PolicyEngine/SafetyEngine.validate_action and
    route_actions), :func:`plan_actions` (one dry-run cycle on a document → the action frame),
    :func:`seed_document` / :data:`SEED_SNAPSHOT_PATH` (the seed's worked examples).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meta_ads_dagster.engine.actions import ACTION_COLUMNS

from ..repo_files import SEED_SNAPSHOT_PATH

AS_OF = "2026-11-25T10:30:00+00:00"
DEFAULT_AGE_HOURS = 240.0  # 10 days: outside every embargo


# --- days -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    """One ad's totals for one day (before the country split). Money in major units."""

    spend: float = 100.0
    revenue: float = 200.0
    purchases: int = 10  # whole, as the Graph API counts them (docs/snapshot-format.md)
    impressions: int = 5000
    clicks: int = 100

    def scaled(self, factor: float) -> "Day":
        """This day times ``factor`` (used to split a campaign's day over its ads)."""
        return Day(
            spend=round(self.spend * factor, 2),
            revenue=round(self.revenue * factor, 2),
            purchases=int(round(self.purchases * factor)),
            impressions=int(round(self.impressions * factor)),
            clicks=min(int(round(self.clicks * factor)), int(round(self.impressions * factor))),
        )


def steady_days(
    n: int = 7,
    *,
    spend: float = 100.0,
    roas: float = 2.0,
    purchases: int = 10,
    impressions: int = 5000,
    clicks: int = 100,
) -> list[Day]:
    """``n`` identical days; revenue = spend × roas."""
    return [Day(spend, round(spend * roas, 2), purchases, impressions, clicks)] * n


def days_from(
    *,
    spend: Sequence[float],
    revenue: Sequence[float] | None = None,
    roas: float | None = None,
    purchases: Sequence[int] | int = 10,
    impressions: Sequence[int] | int = 5000,
    clicks: Sequence[int] | int = 100,
) -> list[Day]:
    """Days from per-day columns (oldest first). Scalars repeat; give ``revenue`` or ``roas``."""
    n = len(spend)

    def column(values, name):
        if isinstance(values, (int, float, np.integer, np.floating)):
            return [values] * n
        if len(values) != n:
            raise ValueError(f"{name}: expected {n} values, got {len(values)}")
        return list(values)

    if revenue is None:
        revenue = [round(s * (2.0 if roas is None else roas), 2) for s in spend]
    return [
        Day(float(s), float(r), p, int(i), int(c))
        for s, r, p, i, c in zip(
            spend, column(revenue, "revenue"), column(purchases, "purchases"),
            column(impressions, "impressions"), column(clicks, "clicks"),
        )
    ]


# --- specs ----------------------------------------------------------------------------------------
@dataclass
class AdSpec:
    days: Sequence[Day] = field(default_factory=steady_days)  # oldest first; the last is yesterday
    today: Day | None = None  # partial day of as_of ("today so far")
    name: str | None = None
    status: str = "ACTIVE"
    age_hours: float | None = None  # None: the ad set's age
    creative_approved: bool = True
    id: str | None = None


@dataclass
class AdSetSpec:
    ads: Sequence[AdSpec] = field(default_factory=lambda: [AdSpec()])
    countries: Sequence[str] = ("ES",)
    country_shares: Mapping[str, float] | None = None  # None: all delivery in countries[0]
    daily_budget_usd: float | None = None  # only when the campaign is not CBO
    name: str | None = None
    status: str = "ACTIVE"
    age_hours: float | None = None  # None: the campaign's age
    id: str | None = None
    learning_status: str | None = None  # learning_stage_info.status (LEARNING, SUCCESS, FAIL); None: not reported


@dataclass
class CampaignSpec:
    adsets: Sequence[AdSetSpec] = field(default_factory=lambda: [AdSetSpec()])
    daily_budget_usd: float | None = 500.0  # not None => CBO (budget on the campaign)
    name: str | None = None
    status: str = "ACTIVE"
    age_hours: float = DEFAULT_AGE_HOURS
    id: str | None = None


def campaign(
    *,
    roas: float = 2.0,
    spend: float = 100.0,
    purchases: int = 10,
    impressions: int = 5000,
    clicks: int = 100,
    days: Sequence[Day] | None = None,
    today: Day | None = None,
    budget_usd: float = 500.0,
    cbo: bool = True,
    age_hours: float = DEFAULT_AGE_HOURS,
    countries: Sequence[str] = ("ES",),
    country_shares: Mapping[str, float] | None = None,
    n_ads: int = 1,
    status: str = "ACTIVE",
    name: str | None = None,
    id: str | None = None,
) -> CampaignSpec:
    """One campaign, one ad set, ``n_ads`` ads sharing the campaign's daily numbers evenly.

    ``days`` (per campaign, oldest first, last = yesterday) overrides the steady 7 days built
    from ``roas``/``spend``/``purchases``/``impressions``/``clicks``. ``today`` likewise is the
    campaign's partial day. ``cbo=False`` moves ``budget_usd`` to the ad set.
    """
    days = list(days) if days is not None else steady_days(
        spend=spend, roas=roas, purchases=purchases, impressions=impressions, clicks=clicks
    )
    share = 1.0 / n_ads
    ads = [
        AdSpec(days=[d.scaled(share) for d in days], today=today.scaled(share) if today else None)
        for _ in range(n_ads)
    ]
    adset = AdSetSpec(
        ads=ads, countries=tuple(countries), country_shares=country_shares,
        daily_budget_usd=None if cbo else budget_usd,
    )
    return CampaignSpec(
        adsets=[adset], daily_budget_usd=budget_usd if cbo else None, age_hours=age_hours,
        status=status, name=name, id=id,
    )


# --- ids ------------------------------------------------------------------------------------------
def campaign_id(c: int) -> str:
    return f"1{c:02d}000"


def adset_id(c: int, s: int = 0) -> str:
    return f"1{c:02d}{s + 1}00"


def ad_id(c: int, s: int = 0, a: int = 0) -> str:
    return f"1{c:02d}{s + 1}{a + 1:02d}"


def creative_id(ad: str) -> str:
    return "9" + ad


# --- A/B tests and recent actions -----------------------------------------------------------------
def ab_test(ad_ids: Sequence[str], started_hours_ago: float = 96.0, id: str = "ab-1") -> dict:
    """An A/B test spec for :func:`make_snapshot` (converted to ``started_at`` there)."""
    return {"id": id, "ad_ids": list(ad_ids), "started_hours_ago": started_hours_ago}


def recent_action(entity_type: str, entity_id: str, hours_ago: float, type: str = "scale_up") -> dict:
    """A recent-action spec for :func:`make_snapshot` (converted to ``executed_at`` there)."""
    return {"entity_type": entity_type, "entity_id": entity_id, "type": type, "hours_ago": hours_ago}


# --- the document ---------------------------------------------------------------------------------
def _minor(usd: float | None, minor_per_unit: int) -> str | None:
    return None if usd is None else str(int(round(usd * minor_per_unit)))


def _split(day: Day, countries: Sequence[str], shares: Mapping[str, float] | None) -> list[tuple[str, Day]]:
    """Split a day over countries; whole counts by largest remainder, money to the cent."""
    if not shares:
        return [(countries[0], day)]
    names = [c for c in shares if shares[c] > 0]
    weights = np.array([shares[c] for c in names], dtype=float)
    weights = weights / weights.sum()

    def whole(total: int) -> list[int]:
        raw = weights * total
        out = np.floor(raw).astype(int)
        for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
            out[i] += 1
        return out.tolist()

    def money(total: float) -> list[float]:
        cents = whole(int(round(total * 100)))
        return [c / 100 for c in cents]

    impressions = whole(day.impressions)
    clicks = [min(c, i) for c, i in zip(whole(day.clicks), impressions)]
    # Rounding can put one purchase more than impressions in a tiny country share; the format refuses that.
    purchases = [min(p, i) for p, i in zip(whole(day.purchases), impressions)]
    return [
        (name, Day(s, r, p, i, c))
        for name, s, r, p, i, c in zip(names, money(day.spend), money(day.revenue), purchases, impressions, clicks)
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def make_snapshot(
    campaigns: Iterable[CampaignSpec] | int = 1,
    *,
    as_of: str = AS_OF,
    timezone: str = "UTC",
    currency: str = "USD",
    account_id: str = "act_1001",
    ab_tests: Iterable[Mapping[str, Any]] = (),
    recent_actions: Iterable[Mapping[str, Any]] = (),
) -> dict:
    """A valid snapshot document. ``campaigns``: specs, or a number of default campaigns."""
    specs = [CampaignSpec() for _ in range(campaigns)] if isinstance(campaigns, int) else list(campaigns)
    now = datetime.fromisoformat(as_of)
    today = now.astimezone(ZoneInfo(timezone)).date()
    minor_per_unit = 1 if currency in {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"} else 100

    def created(hours: float) -> str:
        return _iso(now - timedelta(hours=hours))

    doc: dict[str, Any] = {
        "as_of": as_of,
        "account": {"id": account_id, "currency": currency, "timezone_name": timezone},
        "campaigns": [], "adsets": [], "ads": [], "creatives": [], "insights": [],
        "ab_tests": [
            {"id": t["id"], "ad_ids": list(t["ad_ids"]),
             "started_at": t.get("started_at") or created(t["started_hours_ago"])}
            for t in ab_tests
        ],
        "recent_actions": [
            {"entity_type": r["entity_type"], "entity_id": r["entity_id"], "type": r.get("type", "scale_up"),
             "executed_at": r.get("executed_at") or created(r["hours_ago"])}
            for r in recent_actions
        ],
    }
    for c, spec in enumerate(specs):
        cid = spec.id or campaign_id(c)
        doc["campaigns"].append({
            "id": cid, "name": spec.name or f"Campaign {c}", "status": spec.status,
            "created_time": created(spec.age_hours),
            "daily_budget": _minor(spec.daily_budget_usd, minor_per_unit),
        })
        for s, adset in enumerate(spec.adsets):
            sid = adset.id or adset_id(c, s)
            adset_age = spec.age_hours if adset.age_hours is None else adset.age_hours
            doc["adsets"].append({
                "id": sid, "campaign_id": cid, "name": adset.name or f"Ad set {c}.{s}", "status": adset.status,
                "created_time": created(adset_age),
                "daily_budget": None if spec.daily_budget_usd is not None else _minor(adset.daily_budget_usd, minor_per_unit),
                "targeting": {"geo_locations": {"countries": list(adset.countries)}},
                **({} if adset.learning_status is None else {"learning_stage_info": {
                    "status": adset.learning_status, "conversions": 12,
                    "last_sig_edit_ts": int(datetime.fromisoformat(created(adset_age)).timestamp()),
                }}),
            })
            for a, ad in enumerate(adset.ads):
                aid = ad.id or ad_id(c, s, a)
                doc["ads"].append({
                    "id": aid, "adset_id": sid, "campaign_id": cid, "name": ad.name or f"Ad {c}.{s}.{a}",
                    "status": ad.status, "created_time": created(adset_age if ad.age_hours is None else ad.age_hours),
                    "creative": {"id": creative_id(aid)},
                })
                doc["creatives"].append({"id": creative_id(aid), "approved": ad.creative_approved})
                dated = [(today - timedelta(days=len(ad.days) - k), d) for k, d in enumerate(ad.days)]
                if ad.today is not None:
                    dated.append((today, ad.today))
                for date, day in dated:
                    for country, part in _split(day, adset.countries, adset.country_shares):
                        doc["insights"].append({
                            "ad_id": aid, "adset_id": sid, "campaign_id": cid,
                            "date_start": date.isoformat(), "date_stop": date.isoformat(), "country": country,
                            "spend": f"{part.spend:.2f}", "impressions": str(part.impressions),
                            "clicks": str(part.clicks),
                            "actions": [{"action_type": "purchase", "value": str(part.purchases)}],
                            "action_values": [{"action_type": "purchase", "value": f"{part.revenue:.2f}"}],
                        })
    return doc


def plan_actions(document: dict, **settings: Any):
    """Run one dry-run cycle (engine.cycle.plan_cycle) on ``document`` with ``load_settings(**settings)``;
    returns the routed action frame (all engine columns, budgets in minor units)."""
    from meta_ads_dagster.engine.cycle import plan_cycle
    from meta_ads_dagster.engine.snapshot import parse_snapshot
    from meta_ads_dagster.settings import load_settings

    actions, _ = plan_cycle(parse_snapshot(document), load_settings(**settings))
    return actions


def seed_document() -> dict:
    """A fresh copy of the seed's worked-examples snapshot (safe to mutate)."""
    return json.loads(SEED_SNAPSHOT_PATH.read_text())


# --- single action rows (for PolicyEngine/SafetyEngine.validate_action and route_actions) ---------
def make_action(**overrides: Any) -> dict:
    """One row of the action frame: a confident, well-aged, ES-only 20 % scale-up of a $500 CBO
    campaign with plenty of data. Override any column (see engine.actions.ACTION_COLUMNS)."""
    row = {
        "id": "a1", "type": "scale_up", "entity_type": "campaign", "entity_id": "100000", "entity_name": "Campaign 0",
        "campaign_id": "100000",
        "adset_id": None, "rule": "roas_high", "proposed_pct": 0.20, "amount_pct": 0.20,
        "current_budget_minor": 50_000.0, "new_budget_minor": np.nan, "confidence": 0.95, "roas_7d": 3.5,
        "spend_7d": 700.0, "impressions_7d": 35_000, "age_hours": DEFAULT_AGE_HOURS, "creative_id": None,
        "creative_approved": None, "countries": ("ES",), "spain_share": 1.0, "top_country_share": 1.0,
        "loser_ad_ids": None, "hours_since_last_action": np.nan, "hours_since_creative_change": np.nan,
        "changed_24h_pct": 0.0, "budget_edits_1h": 0, "learning_adsets": (), "minor_per_unit": 100, "unit_id": None,
        "verdict": "proposed", "reasons": [],
    }
    assert set(row) == set(ACTION_COLUMNS), "make_action is out of date with engine.actions.ACTION_COLUMNS"
    unknown = set(overrides) - set(row)
    if unknown:
        raise KeyError(f"not action columns: {sorted(unknown)}")
    row.update(overrides)
    return row


__all__ = [
    "AS_OF", "SEED_SNAPSHOT_PATH", "seed_document", "DEFAULT_AGE_HOURS", "Day", "AdSpec", "AdSetSpec", "CampaignSpec", "campaign", "steady_days",
    "days_from", "campaign_id", "adset_id", "ad_id", "creative_id", "ab_test", "recent_action",
    "make_snapshot", "make_action", "plan_actions",
]
