"""Turn the public KAG conversion data (meta_ads_dagster_tests/data/) into an account snapshot.

Mapping: xyz_campaign_id → campaign (campaign budget), fb_campaign_id → ad set, ad_id → ad; each
CSV row is one ad-day in Spain. The data has no revenue, so an approved conversion is valued at
``value_per_purchase`` (an assumption, stated by every test that uses it). Budgets are assumed too:
each campaign's budget is its mean daily spend over the data, rounded up to whole dollars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .repo_files import KAG_CSV



def kag_snapshot(value_per_purchase: float = 60.0, csv: Path = KAG_CSV) -> dict:
    data = pd.read_csv(csv)
    data["date"] = pd.to_datetime(data["Date"], format="%d-%m-%Y")
    as_of = data["date"].max() + pd.Timedelta(hours=34)  # 10:00 UTC the day after the last full day
    created = (data["date"].min() - pd.Timedelta(days=1)).tz_localize("UTC").isoformat()
    days = data["date"].nunique()
    budgets = np.ceil(data.groupby("xyz_campaign_id")["Spent"].sum() / days).astype(int) * 100
    ids = lambda column: data[column].astype(str)  # noqa: E731 - tiny local helper
    ad_rows = data.drop_duplicates("ad_id")
    return {
        "as_of": as_of.tz_localize("UTC").isoformat(),
        "account": {"id": "act_916936", "currency": "USD", "timezone_name": "UTC"},
        "campaigns": [
            {"id": str(c), "name": f"KAG campaign {c}", "status": "ACTIVE", "created_time": created, "daily_budget": str(b)}
            for c, b in budgets.items()
        ],
        "adsets": [
            {"id": str(a), "campaign_id": str(c), "name": f"{age} {gender} interest {interest}", "status": "ACTIVE",
             "created_time": created, "daily_budget": None, "targeting": {"geo_locations": {"countries": ["ES"]}}}
            for a, c, age, gender, interest in data.drop_duplicates("fb_campaign_id")[
                ["fb_campaign_id", "xyz_campaign_id", "age", "gender", "interest"]
            ].itertuples(index=False)
        ],
        "ads": [
            {"id": str(r.ad_id), "adset_id": str(r.fb_campaign_id), "campaign_id": str(r.xyz_campaign_id),
             "name": f"ad {r.ad_id}", "status": "ACTIVE", "created_time": created, "creative": {"id": f"9{r.ad_id}"}}
            for r in ad_rows.itertuples(index=False)
        ],
        # Ids are digits (docs/snapshot-format.md); "9" + the ad id is above every KAG id.
        "creatives": [{"id": f"9{ad}", "approved": True} for ad in ad_rows["ad_id"]],
        "insights": [
            {"ad_id": ad, "adset_id": adset, "campaign_id": campaign, "date_start": day, "date_stop": day, "country": "ES",
             "spend": f"{spend:.2f}", "impressions": str(impressions), "clicks": str(min(clicks, impressions)),
             "actions": [{"action_type": "purchase", "value": str(approved)}],
             "action_values": [{"action_type": "purchase", "value": f"{approved * value_per_purchase:.2f}"}]}
            for ad, adset, campaign, day, spend, impressions, clicks, approved in zip(
                ids("ad_id"), ids("fb_campaign_id"), ids("xyz_campaign_id"), data["date"].dt.strftime("%Y-%m-%d"),
                data["Spent"], data["Impressions"], data["Clicks"], data["Approved_Conversion"],
            )
        ],
    }
