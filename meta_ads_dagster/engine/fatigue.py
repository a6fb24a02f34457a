"""Creative fatigue: an ad whose CTR on the last full day is ≥ 30 % below its 7-day CTR.

The 7-day CTR is clicks / impressions over the 7 full days before today (pooled, so a day with
few impressions weighs less than a busy one). Ads with no impressions on the last day have no CTR
and are never called fatigued.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import window_insights
from .snapshot import AccountSnapshot

FATIGUE_DROP = 0.30


def detect_fatigue(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """One row per ad: last-day CTR, 7-day CTR, relative drop and whether it is fatigued."""
    window = window_insights(snapshot)
    last_day = snapshot.today - pd.Timedelta(days=1)
    week = window.groupby("ad_id")[["clicks", "impressions"]].sum()
    last = window[window["date"] == last_day].groupby("ad_id")[["clicks", "impressions"]].sum()
    ads = entities.loc[entities["entity_type"] == "ad", ["entity_id", "creative_id"]].rename(columns={"entity_id": "ad_id"})
    frame = ads.join(week, on="ad_id").join(last, on="ad_id", rsuffix="_last").fillna(0)
    ctr_7d = np.where(frame["impressions"] > 0, frame["clicks"] / frame["impressions"].clip(lower=1), np.nan)
    ctr_last = np.where(frame["impressions_last"] > 0, frame["clicks_last"] / frame["impressions_last"].clip(lower=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(ctr_7d > 0, 1.0 - ctr_last / ctr_7d, np.nan)
    return pd.DataFrame(
        {
            "entity_type": "ad",
            "entity_id": frame["ad_id"].to_numpy(),
            "creative_id": frame["creative_id"].to_numpy(),
            "ctr_last_day": ctr_last,
            "ctr_7d": ctr_7d,
            "ctr_drop": drop,
            "fatigued": np.nan_to_num(drop, nan=-1.0) >= FATIGUE_DROP - 1e-12,
        }
    )
