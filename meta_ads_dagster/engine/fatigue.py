"""Creative fatigue: an ad whose CTR on the last full day is ≥ 30 % below its 7-day CTR.

The 7-day CTR is clicks / impressions over the 7 full days before today (pooled, so a day with
few impressions weighs less than a busy one). Ads with no impressions on the last day have no CTR
and are never called fatigued.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import WINDOW_DAYS, AdDays, ad_days
from .snapshot import AccountSnapshot

FATIGUE_DROP = 0.30


def detect_fatigue(snapshot: AccountSnapshot, entities: pd.DataFrame, days: AdDays | None = None) -> pd.DataFrame:
    """One row per ad: last-day CTR, 7-day CTR, relative drop and whether it is fatigued.
    ``days``: the snapshot's daily ad-level table (engine/metrics.py ``ad_days``), when at hand."""
    days = ad_days(snapshot) if days is None else days
    window = days.between(1, WINDOW_DAYS)
    week = window[["clicks", "impressions"]].groupby(window["ad"].to_numpy()).sum()
    last_day = days.between(1, 1)  # one row per ad
    last = last_day[["clicks", "impressions"]].set_axis(last_day["ad"].to_numpy())
    is_ad = entities["entity_type"].eq("ad").to_numpy()
    ads = entities[["entity_id", "creative_id"]][is_ad]  # two columns taken, not the whole table
    code = days.rows(entities).ad_codes()[is_ad]  # -1: an ad without insights
    weekly, latest = week.reindex(code).fillna(0), last.reindex(code).fillna(0)
    ctr_7d = np.where(weekly["impressions"] > 0, weekly["clicks"] / weekly["impressions"].clip(lower=1), np.nan)
    ctr_last = np.where(latest["impressions"] > 0, latest["clicks"] / latest["impressions"].clip(lower=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(ctr_7d > 0, 1.0 - ctr_last / ctr_7d, np.nan)
    return pd.DataFrame(
        {
            "entity_type": "ad",
            "entity_id": ads["entity_id"].to_numpy(),
            "creative_id": ads["creative_id"].to_numpy(),
            "ctr_last_day": ctr_last,
            "ctr_7d": ctr_7d,
            "ctr_drop": drop,
            "fatigued": np.nan_to_num(drop, nan=-1.0) >= FATIGUE_DROP - 1e-12,
        }
    )
