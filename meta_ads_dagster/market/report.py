"""The market as Meta reports it: a snapshot document (docs/snapshot-format.md).

Insights are what the Insights API would return now (level=ad, time_increment=1,
breakdowns=country): one row per ad, day and country that had impressions, for the last
``reported_days`` days, with purchases and their value *as reported so far* (delayed, restated,
thinned on outage days), not the truth. The rows are built from the window arrays in one pass.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from .population import COUNTRIES, LEARNING_NAMES, NOT_YET, STATUS_NAMES

if TYPE_CHECKING:
    from .model import Market


def iso_time(minutes: int) -> str:
    return datetime.fromtimestamp(int(minutes) * 60, tz=timezone.utc).isoformat()


def _budget(minor: int) -> str | None:
    return str(int(minor)) if minor else None


def snapshot_document(market: "Market") -> dict[str, Any]:
    p, now = market.params, market._now
    c, s, a = market._campaigns, market._adsets, market._ads
    campaigns = np.flatnonzero(c["created"] <= now)
    adsets = np.flatnonzero(s["created"] <= now)
    ads = np.flatnonzero(a["created"] <= now)
    campaign_ids, adset_ids, ad_ids = (table["id"].astype(str) for table in (c, s, a))
    campaign_id, adset_id, ad_id = (ids.tolist() for ids in (campaign_ids, adset_ids, ad_ids))  # str, not numpy str
    doc: dict[str, Any] = {
        "as_of": iso_time(now),
        "account": {"id": p.account_id, "currency": "USD", "timezone_name": p.timezone_name},
        "campaigns": [
            {"id": campaign_id[i], "name": f"Campaign {c['serial'][i]:03d}", "status": STATUS_NAMES[c["status"][i]],
             "created_time": iso_time(c["created"][i]), "daily_budget": _budget(c["budget"][i])}
            for i in campaigns
        ],
        "adsets": [
            {"id": adset_id[i], "campaign_id": campaign_id[s["campaign"][i]], "name": f"Ad set {s['rank'][i]}",
             "status": STATUS_NAMES[s["status"][i]], "created_time": iso_time(s["created"][i]), "daily_budget": _budget(s["budget"][i]),
             "targeting": {"geo_locations": {"countries": [COUNTRIES[k] for k in s["countries"][i] if k != NOT_YET]}},
             "learning_stage_info": {
                 "status": LEARNING_NAMES[s["learning"][i]], "conversions": int(s["learning_events"][i]),
                 "last_sig_edit_ts": int(s["learning_since"][i]) * 60,
             }}
            for i in adsets
        ],
        "ads": [_ad(market, i, ad_id, adset_id, campaign_id) for i in ads],
        "creatives": [{"id": str(a["creative_id"][i]), "approved": bool(a["approved_at"][i] <= now)} for i in ads],
        "insights": _insights(market, ad_ids, adset_ids, campaign_ids),
        "ab_tests": [
            {"id": f"ab-{campaign_id[i]}", "ad_ids": ad_ids[(a["campaign"] == i) & (a["source"] == NOT_YET)].tolist(), "started_at": iso_time(c["created"][i])}
            for i in campaigns[c["ab_test"][campaigns]]
        ],
    }
    return doc


def _ad(market: "Market", i: int, ad_ids, adset_ids, campaign_ids) -> dict[str, Any]:
    a = market._ads
    ad = {
        "id": ad_ids[i], "adset_id": adset_ids[a["adset"][i]], "campaign_id": campaign_ids[a["campaign"][i]],
        "name": f"Ad {a['rank'][i]}", "status": STATUS_NAMES[a["status"][i]], "created_time": iso_time(a["created"][i]),
        "creative": {"id": str(a["creative_id"][i])},
    }
    if a["source"][i] != NOT_YET:
        ad["source_ad_id"] = str(a["source"][i])
    return ad


def _insights(market: "Market", ad_ids, adset_ids, campaign_ids) -> list[dict[str, Any]]:
    a, s, days = market._ads, market._adsets, market.params.reported_days
    ad, slot, back = np.nonzero(a["w_impressions"])
    # purchases attributed to `back` days ago and reported within `back` days: reported by now
    reported_by_now = np.tril(np.ones((days, days), dtype=np.int32))
    reported = (a["w_reported"] * reported_by_now).sum(axis=-1)[ad, slot, back]
    true_purchases = a["w_purchases"][ad, slot, back]
    value = np.where(true_purchases > 0, a["w_value"][ad, slot, back] * reported / np.maximum(true_purchases, 1), 0.0)
    dates = np.array([date.fromordinal(market._today - k).isoformat() for k in range(days)])
    country_codes = np.array(COUNTRIES)[s["countries"][a["adset"][ad], slot]]
    return [
        {
            "ad_id": ad_id, "adset_id": adset_id, "campaign_id": campaign_id, "date_start": day, "date_stop": day,
            "country": country, "spend": f"{spend:.2f}", "impressions": str(impressions), "clicks": str(clicks),
            "actions": [{"action_type": "purchase", "value": str(n)}],
            "action_values": [{"action_type": "purchase", "value": f"{v:.2f}"}],
        }
        for ad_id, adset_id, campaign_id, day, country, spend, impressions, clicks, n, v in zip(
            ad_ids[ad].tolist(), adset_ids[a["adset"][ad]].tolist(), campaign_ids[a["campaign"][ad]].tolist(),
            dates[back].tolist(), country_codes.tolist(), a["w_spend"][ad, slot, back].tolist(),
            a["w_impressions"][ad, slot, back].tolist(), a["w_clicks"][ad, slot, back].tolist(), reported.tolist(), value.tolist(),
        )
    ]
