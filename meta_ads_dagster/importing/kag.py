"""The public KAG conversion data set ("Sales Conversion Optimization", Kaggle; a copy and its
notes in meta_ads_dagster_tests/data/) → normalized rows.

Mapping: ``xyz_campaign_id`` → campaign, ``fb_campaign_id`` → ad set (named after its audience),
``ad_id`` → ad, their ids kept; ``Date`` is ``DD-MM-YYYY``; ``Clicks`` → clicks, ``Spent`` → spend,
``Approved_Conversion`` (people who bought) → purchases. The data has no revenue and no currency:
an approved conversion is worth the ``value_per_conversion`` the caller gives, in USD unless told.
"""

from __future__ import annotations

import pandas as pd

from .build import Rows
from .table import Table

COLUMNS = {
    "campaign_id": "xyz_campaign_id", "adset_id": "fb_campaign_id", "ad_id": "ad_id", "day": "Date",
    "impressions": "Impressions", "clicks": "Clicks", "spend": "Spent", "purchases": "Approved_Conversion",
}
AUDIENCE = ("age", "gender", "interest")
# Columns only this data set has: enough to tell it from an Ads Manager export.
SIGNATURE = {"xyz_campaign_id", "fb_campaign_id", "Approved_Conversion"}


def is_kag(table: Table) -> bool:
    return SIGNATURE <= set(table.columns)


def read_kag(table: Table, value_per_conversion: float, currency: str, country: str) -> Rows:
    table.require(*COLUMNS.values(), *AUDIENCE)
    ids = {field: table.ids(COLUMNS[field]) for field in ("campaign_id", "adset_id", "ad_id")}
    audience = table.cells[list(AUDIENCE)]
    purchases = table.whole_numbers(COLUMNS["purchases"])
    frame = pd.DataFrame({
        **ids,
        "campaign_name": "KAG campaign " + ids["campaign_id"],
        "adset_name": audience["age"] + " " + audience["gender"] + " interest " + audience["interest"],
        "ad_name": "ad " + ids["ad_id"],
        "day": table.days(COLUMNS["day"], "%d-%m-%Y", "DD-MM-YYYY"),
        "country": country,
        "spend": table.amounts(COLUMNS["spend"]),
        "impressions": table.whole_numbers(COLUMNS["impressions"]),
        "clicks": table.whole_numbers(COLUMNS["clicks"]),
        "purchases": purchases,
        "revenue": purchases * value_per_conversion,
    })
    return Rows(frame, currency, COLUMNS)
