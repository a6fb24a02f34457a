"""The built-in demo account: a deterministic SNAPSHOT.md document that exercises every rule.

Same account id → same document, byte for byte (fixed ``as_of`` and a seeded generator), so the
first README command always shows the same cycle. Ad sets younger than 7 days are in Meta's
learning phase (``learning_stage_info``), the others have left it. What each campaign is there to show:

| campaign               | setup                                           | expected in a cycle               |
|------------------------|-------------------------------------------------|-----------------------------------|
| Black Friday - ES      | CBO $500, 7-day ROAS ≈ 3.1                      | scale_up, clamped to the limit    |
| Evergreen catalog      | CBO $1,200, ROAS ≈ 2.2, ES 60 % / PT 40 %       | nothing (hold band)               |
| Retargeting Q4         | ad sets $100 + $150; one ad at ROAS ≈ 0.6       | scale_down one ad set; pause ad   |
| Spring A/B test        | CBO $300, two ads, A converts ~2× B             | publish winner A, pause B         |
| Prospecting FR         | CBO $800, ROAS ≈ 3.5, FR 80 % / ES 20 %         | scale_up blocked by the geo rules |
| New launch             | CBO $200, 1 day old, ROAS ≈ 4                   | not evaluated: inside its 48 h embargo it cannot act, so it takes no slot |
| Video - fatigue        | CBO $400, last day CTR −45 %                    | create_variant (needs approval)   |
| Flash sale             | CBO $600, last day purchases ×3 (7-day ROAS 3.3)| scale_up by roas_high; the smaller spike_up is overruled |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..settings import DEMO_ACCOUNT_ID

DEMO_AS_OF = pd.Timestamp("2026-11-20T10:00:00+00:00")
DEMO_TIMEZONE = "Europe/Madrid"
HISTORY_DAYS = 8  # full days before today, so spikes have a 7-day baseline before the last day
LEARNING_DAYS = 7  # Meta's learning window: the demo's ad sets younger than this are still learning


@dataclass(frozen=True)
class AdSpec:
    name: str
    daily_spend: float
    roas: float
    ctr: float = 0.02
    aov: float = 40.0
    countries: dict[str, float] = field(default_factory=lambda: {"ES": 1.0})
    last_day_ctr: float = 1.0  # multiplier on the last full day (fatigue)
    last_day_purchases: float = 1.0  # multiplier on the last full day (spikes)


@dataclass(frozen=True)
class AdSetSpec:
    name: str
    ads: tuple[AdSpec, ...]
    daily_budget: float | None = None  # None under CBO


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    age_days: float
    adsets: tuple[AdSetSpec, ...]
    daily_budget: float | None = None  # set = CBO
    ab_test: bool = False


DEMO_CAMPAIGNS = (
    CampaignSpec("Black Friday - ES", 10, (AdSetSpec("ES broad", (AdSpec("BF hero video", 64.3, 3.2),)),), 500),
    CampaignSpec(
        "Evergreen catalog", 60,
        (AdSetSpec("catalog", (AdSpec("catalog carousel", 1100, 2.2, countries={"ES": 0.6, "PT": 0.4}),)),), 1200,
    ),
    CampaignSpec(
        "Retargeting Q4", 20,
        (
            AdSetSpec("cart abandoners", (AdSpec("reminder", 95, 1.1),), daily_budget=100),
            AdSetSpec("retargeting 30d", (AdSpec("Variant A", 70, 2.6), AdSpec("Variant B - Low Performer", 70, 0.6)), daily_budget=150),
        ),
    ),
    CampaignSpec(
        "Spring A/B test", 6,
        (AdSetSpec("spring", (AdSpec("Spring A", 140, 2.6), AdSpec("Spring B", 140, 1.3))),), 300, ab_test=True,
    ),
    CampaignSpec(
        "Prospecting FR", 30,
        (AdSetSpec("FR + ES", (AdSpec("prospecting video", 780, 3.5, countries={"FR": 0.8, "ES": 0.2}),)),), 800,
    ),
    CampaignSpec("New launch", 1, (AdSetSpec("launch", (AdSpec("launch ad", 190, 4.0),)),), 200),
    CampaignSpec("Video - fatigue", 45, (AdSetSpec("video", (AdSpec("tired video", 380, 2.5, last_day_ctr=0.55),)),), 400),
    CampaignSpec("Flash sale", 25, (AdSetSpec("flash", (AdSpec("flash ad", 550, 2.6, last_day_purchases=3.0),)),), 600),
)


def _minor(amount: float | None) -> str | None:
    return None if amount is None else str(int(round(amount * 100)))


def demo_snapshot(account_id: str = DEMO_ACCOUNT_ID) -> dict[str, Any]:
    """The demo account as a SNAPSHOT.md document.

    Object ids start with the account's digits (act_1001's first campaign is 1001001): Graph ids
    are unique across accounts, and so are the demo's when several demo accounts run side by side.
    """
    rng = np.random.default_rng(abs(hash_id(account_id)))
    today = DEMO_AS_OF.tz_convert(DEMO_TIMEZONE).normalize().tz_localize(None)
    day_fraction = (DEMO_AS_OF.tz_convert(DEMO_TIMEZONE).tz_localize(None) - today) / pd.Timedelta(days=1)
    doc: dict[str, Any] = {
        "as_of": DEMO_AS_OF.isoformat(),
        "account": {"id": account_id, "currency": "USD", "timezone_name": DEMO_TIMEZONE},
        "campaigns": [], "adsets": [], "ads": [], "creatives": [], "insights": [], "ab_tests": [], "recent_actions": [],
    }
    first_id = int(account_id.removeprefix("act_")) * 1000 + 1
    next_id = iter(range(first_id, first_id + 999))
    for campaign in DEMO_CAMPAIGNS:
        created = (DEMO_AS_OF - pd.Timedelta(days=campaign.age_days)).isoformat()
        campaign_id = str(next(next_id))
        doc["campaigns"].append(
            {"id": campaign_id, "name": campaign.name, "status": "ACTIVE", "created_time": created, "daily_budget": _minor(campaign.daily_budget)}
        )
        test_ads = []
        for adset in campaign.adsets:
            adset_id = str(next(next_id))
            countries = sorted({c for ad in adset.ads for c in ad.countries})
            doc["adsets"].append(
                {"id": adset_id, "campaign_id": campaign_id, "name": adset.name, "status": "ACTIVE", "created_time": created,
                 "daily_budget": _minor(adset.daily_budget), "targeting": {"geo_locations": {"countries": countries}},
                 "learning_stage_info": {
                     "status": "LEARNING" if campaign.age_days < LEARNING_DAYS else "SUCCESS",
                     "last_sig_edit_ts": int((DEMO_AS_OF - pd.Timedelta(days=campaign.age_days)).timestamp()),
                 }}
            )
            for ad in adset.ads:
                ad_id, creative_id = str(next(next_id)), str(next(next_id))
                test_ads.append(ad_id)
                doc["ads"].append(
                    {"id": ad_id, "adset_id": adset_id, "campaign_id": campaign_id, "name": ad.name, "status": "ACTIVE",
                     "created_time": created, "creative": {"id": creative_id}}
                )
                doc["creatives"].append({"id": creative_id, "approved": True})
                days = min(HISTORY_DAYS, int(np.ceil(campaign.age_days)))
                doc["insights"].extend(_ad_insights(ad, ad_id, adset_id, campaign_id, today, days, day_fraction, rng))
        if campaign.ab_test:
            doc["ab_tests"].append({"id": f"ab-{campaign_id}", "ad_ids": test_ads, "started_at": created})
    return doc


def hash_id(account_id: str) -> int:
    """A stable (not per-process salted) seed from the account id."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(account_id))


def _ad_insights(ad: AdSpec, ad_id, adset_id, campaign_id, today, days, day_fraction, rng) -> list[dict[str, Any]]:
    rows = []
    for back in range(days, -1, -1):
        day = today - pd.Timedelta(days=back)
        share_of_day = day_fraction if back == 0 else 1.0
        last_full_day = back == 1
        for country, share in ad.countries.items():
            spend = ad.daily_spend * share * share_of_day * rng.uniform(0.97, 1.03)
            impressions = int(spend / 0.012 * rng.uniform(0.95, 1.05))  # ~ $12 CPM
            ctr = ad.ctr * (ad.last_day_ctr if last_full_day else 1.0)
            clicks = min(impressions, int(round(impressions * ctr)))
            purchases = round(spend * ad.roas / ad.aov * (ad.last_day_purchases if last_full_day else 1.0))
            revenue = purchases * ad.aov
            rows.append(
                {
                    "ad_id": ad_id, "adset_id": adset_id, "campaign_id": campaign_id,
                    "date_start": day.date().isoformat(), "date_stop": day.date().isoformat(), "country": country,
                    "spend": f"{spend:.2f}", "impressions": str(impressions), "clicks": str(clicks),
                    "actions": [{"action_type": "purchase", "value": str(purchases)}],
                    "action_values": [{"action_type": "purchase", "value": f"{revenue:.2f}"}],
                }
            )
    return rows
