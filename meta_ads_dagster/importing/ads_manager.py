"""An Ads Manager export (Reports → Export table data → CSV, broken down by day, and optionally by
country) → normalized rows.

An export numbers its objects only when asked to (the "Campaign ID", "Ad set ID" and "Ad ID"
columns); a level without its column gets ids derived from the names (``build.derived_id``): a
campaign's from its name, an ad set's from its campaign's name and its own, an ad's from all three.
The same names give the same ids in every import. Columns not listed here (Reporting starts,
Reporting ends, Results, Cost per result, …) are ignored.
"""

from __future__ import annotations

import re

import pandas as pd

from .build import DEFAULT_COUNTRY, Rows, derived_id
from .table import CsvImportError, Table

NAMES = {"campaign_name": "Campaign name", "adset_name": "Ad set name", "ad_name": "Ad name"}
IDS = {"campaign_id": "Campaign ID", "adset_id": "Ad set ID", "ad_id": "Ad ID"}  # optional
COUNTS = {"impressions": "Impressions", "clicks": "Link clicks", "purchases": "Purchases"}
REVENUE = "Purchases conversion value"
DAY = "Day"
COUNTRY = "Country"
# The spend column carries the account currency, an ISO 4217 code: "Amount spent (EUR)".
SPEND = re.compile(r"Amount spent \(([A-Z]{3})\)")
# Ads Manager leaves a cell blank where there were none.
BLANK_IS_ZERO = {"Link clicks", "Purchases", REVENUE}


def read_ads_manager(table: Table, currency: str | None, country: str | None) -> Rows:
    """``currency``: what the caller expects (None: the header's); ``country``: the country of every
    row of an export without a Country column (None: DEFAULT_COUNTRY; refused with one: the file says)."""
    table.require(*NAMES.values(), DAY, *COUNTS.values(), REVENUE)
    spend_columns = [column for column in table.columns if SPEND.fullmatch(column)]
    if not spend_columns:
        raise CsvImportError('missing column "Amount spent (USD)", or the same with the account\'s currency: "Amount spent (EUR)"')
    if len(spend_columns) > 1:
        raise CsvImportError(f"two spend columns: {', '.join(spend_columns)}; an export has one, in the account currency")
    spend_column = spend_columns[0]
    header_currency = SPEND.fullmatch(spend_column).group(1)
    if currency is not None and currency != header_currency:
        raise CsvImportError(f'--currency {currency}: the export is in {header_currency} (column "{spend_column}")')
    if COUNTRY in table.columns and country is not None:
        raise CsvImportError(f'--country {country}: the export has its own "{COUNTRY}" column')

    names = {field: table.names(column) for field, column in NAMES.items()}
    given = {field: table.optional_ids(column) for field, column in IDS.items()}
    name_keys = {"campaign_id": ("1", "campaign_name"), "adset_id": ("2", "campaign_name", "adset_name"),
                 "ad_id": ("3", "campaign_name", "adset_name", "ad_name")}
    ids = {field: given[field] if given[field] is not None else _ids(kind, *(names[name] for name in keys))
           for field, (kind, *keys) in name_keys.items()}
    frame = pd.DataFrame({
        **names,
        **ids,
        "day": table.days(DAY, "%Y-%m-%d", "YYYY-MM-DD"),
        "country": table.countries(COUNTRY) if COUNTRY in table.columns else country or DEFAULT_COUNTRY,
        "spend": table.amounts(spend_column),
        **{field: table.whole_numbers(column, blank_is_zero=column in BLANK_IS_ZERO) for field, column in COUNTS.items()},
        "revenue": table.amounts(REVENUE, blank_is_zero=True),
    })
    source = {**NAMES, **{field: IDS[field] if given[field] is not None else NAMES[field.replace("_id", "_name")] for field in IDS},
              **COUNTS, "day": DAY, "spend": spend_column, "revenue": REVENUE}
    return Rows(frame, header_currency, source)


def _ids(kind: str, *names: pd.Series) -> list[str]:
    """``kind`` (the digit that tells campaigns, ad sets and ads apart) + the id derived from each
    row's names; hashed once per object, not once per row."""
    rows = list(zip(*names))
    ids = {key: kind + derived_id(*key) for key in set(rows)}
    return [ids[key] for key in rows]
