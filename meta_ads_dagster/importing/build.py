"""Rows of ad performance (one per ad, day and country, whatever file they came from) → an account
snapshot (docs/snapshot-format.md), with what a performance export does not say assumed the same
documented way for every format:

- **budgets**: each campaign holds its budget (campaign budget optimization, CBO), assumed to be its
  mean daily spend over the file's last 7 days (all of its days when it covers fewer), rounded up
  to a whole unit of the currency, at least 1;
- **created_time**: midnight UTC of the day before the entity's first row;
- **status**: everything ACTIVE; every ad has its own approved creative, id ``9`` + the ad's id;
- **ad set targeting**: the countries of its rows (besides ``unknown``), which the geo rules read;
- **clicks**: cut to the row's impressions when more (link clicks count every click; the format
  holds clicks to the impressions), and the summary says on how many rows;
- **names**: an object whose name changed within the file (one id, two names) takes the name of its
  latest day;
- **the account**: the time zone given (the file's days are the account's days: Ads Manager reports
  in the account's time zone), UTC unless given; ``as_of`` 10:00 in that zone the day after the last
  day unless given; id derived from the campaign ids unless given.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from ..engine.snapshot import ZERO_DECIMAL_CURRENCIES, parse_snapshot
from .table import CsvImportError, Table, quoted

BUDGET_DAYS = 7
# The country of every row of a file without countries (``--country`` says another). Spain: the
# geo rules take a country above MAX_SINGLE_COUNTRY_PCT as a reason to block raises unless that
# country is Spain alone, so all spend in one other country would block every raise.
DEFAULT_COUNTRY = "ES"
# A snapshot taken at 10:00 UTC the day after the last row: that day is the last full day.
AS_OF_HOUR = 10
BUDGET_ASSUMPTION = f"campaign budgets assumed: mean daily spend over the last {BUDGET_DAYS} days, rounded up"


def derived_id(*names: str) -> str:
    """A stable id of 15 digits for an object an export names but does not number: the SHA-256 of its
    names (its campaign's, its ad set's, its own) joined by U+001F, as a number, modulo 10^15."""
    digest = hashlib.sha256("\x1f".join(names).encode("utf-8")).hexdigest()
    return str(int(digest, 16) % 10**15).zfill(15)


@dataclass(frozen=True)
class Rows:
    """What a format reader makes of a file: the normalized rows, one per row of the file, in its
    order (ids and names of the campaign, ad set and ad, ``day``, ``country``, ``spend``,
    ``impressions``, ``clicks``, ``purchases``, ``revenue``), their currency, and the file's column
    behind each field (for errors)."""

    frame: pd.DataFrame
    currency: str
    source: dict[str, str]


@dataclass(frozen=True)
class Imported:
    """The snapshot document and the facts the import summary states."""

    document: dict
    rows: int
    first_day: pd.Timestamp
    last_day: pd.Timestamp
    budgets: pd.Series  # campaign id → the assumed daily budget, major units
    clicks_column: str
    clicks_capped: int  # rows whose clicks were cut to their impressions

    def summary(self) -> str:
        d = self.document
        currency = d["account"]["currency"]
        days = (self.last_day - self.first_day).days + 1
        return (
            f"{len(d['campaigns'])} campaigns, {len(d['adsets'])} ad sets, {len(d['ads'])} ads, {self.rows} rows, "
            f"{days} days ({self.first_day:%Y-%m-%d} to {self.last_day:%Y-%m-%d}), currency {currency}, "
            f"account {d['account']['id']}, as of {d['as_of']}; {BUDGET_ASSUMPTION}: {self.budgets.sum():,} {currency} a day in all"
            + (f"; {self.clicks_column} cut to the impressions on {self.clicks_capped} row{'s' * (self.clicks_capped > 1)}" if self.clicks_capped else "")
        )


def check_rows(table: Table, rows: Rows) -> None:
    """The rules that relate a row's cells to each other or rows to each other (the snapshot
    format's): purchases need impressions that day; one row per ad, day and country.
    Only on cells that passed their own rules: a bad cell, read as 0, would be blamed again here."""
    table.raise_first_problem()
    f, source = rows.frame, rows.source  # f's index is the row's position in the table
    for child, parent, child_kind, parent_kind in (("adset_id", "campaign_id", "ad set", "campaign"), ("ad_id", "adset_id", "ad", "ad set")):
        # One object, one parent: an id under two parents is two objects the file mixes up.
        first_parent = f.groupby(child)[parent].transform("first")
        moved = f[parent] != first_parent
        if moved.any():
            row = int(moved.idxmax())
            first = int(f.index[f[child] == f.loc[row, child]][0])
            table.note_at(row, source[child], f"{child_kind} {f.loc[row, child]} is in {parent_kind} {f.loc[row, parent]} here "
                          f"but in {parent_kind} {first_parent[row]} on row {table.line(first)}")
    table.note(f["purchases"] > f["impressions"], source["purchases"],
               f"{{value}} is more than the row's {source['impressions']}: a purchase follows an impression of the ad that day")
    key = ["ad_id", "day", "country"]
    repeated = f.duplicated(key)  # the second and later rows of a key
    if repeated.any():
        later = int(repeated.idxmax())
        first = int(f.index[(f[key] == f.loc[later, key]).all(axis=1)][0])
        r = f.loc[later]
        table.note_at(later, source["day"], f"the same ad, day and country as row {table.line(first)} (ad "
                      f"{quoted(r['ad_name'])} of ad set {quoted(r['adset_name'])}, {r['day']:%Y-%m-%d}, {r['country']})")
    table.raise_first_problem()


def build_snapshot(rows: Rows, as_of: datetime | None = None, account_id: str | None = None, timezone_name: str = "UTC") -> Imported:
    """The snapshot of ``rows`` (already checked), validated by the engine's own parser."""
    zone = ZoneInfo(timezone_name)
    f = rows.frame
    first_day, last_day = f["day"].min(), f["day"].max()
    moment = as_of or (last_day + pd.Timedelta(days=1, hours=AS_OF_HOUR)).tz_localize(zone).to_pydatetime()
    if moment.astimezone(zone).date() < last_day.date():
        raise CsvImportError(f"--as-of {moment.isoformat()} is before the file's last day, {last_day:%Y-%m-%d} ({timezone_name})")
    # An object renamed within the file keeps one id: it takes its latest name.
    latest = f.sort_values("day", kind="stable")
    f = f.assign(**{
        f"{level}_name": f[f"{level}_id"].map(latest.drop_duplicates(f"{level}_id", keep="last").set_index(f"{level}_id")[f"{level}_name"])
        for level in ("campaign", "adset", "ad")
    })
    budgets = _assumed_budgets(f, first_day, last_day)
    minor = 1 if rows.currency in ZERO_DECIMAL_CURRENCIES else 100
    # Link clicks count every click, so one impression can bring two, but the snapshot format (and
    # the fatigue rule's click-through rate) holds clicks to at most the impressions.
    capped = f["clicks"] > f["impressions"]
    f = f.assign(clicks=f["clicks"].where(~capped, f["impressions"]))

    f = f.assign(**{
        f"{level}_created": (f.groupby(f"{level}_id")["day"].transform("min") - pd.Timedelta(days=1)).dt.strftime(
            "%Y-%m-%dT00:00:00+00:00")
        for level in ("campaign", "adset", "ad")
    })
    campaigns = f.drop_duplicates("campaign_id")
    adsets = f.drop_duplicates("adset_id")
    ads = f.drop_duplicates("ad_id")
    countries = f[f["country"] != "unknown"].groupby("adset_id")["country"].unique()
    day = f["day"].dt.strftime("%Y-%m-%d")
    document = {
        "as_of": moment.isoformat(),
        "account": {
            "id": account_id or "act_" + derived_id(*sorted(campaigns["campaign_id"])),
            "currency": rows.currency, "timezone_name": timezone_name,
        },
        "campaigns": [
            {"id": c.campaign_id, "name": c.campaign_name, "status": "ACTIVE", "created_time": c.campaign_created,
             "daily_budget": str(int(budgets[c.campaign_id] * minor))}
            for c in campaigns.itertuples()
        ],
        "adsets": [
            {"id": a.adset_id, "campaign_id": a.campaign_id, "name": a.adset_name, "status": "ACTIVE",
             "created_time": a.adset_created, "daily_budget": None,
             "targeting": {"geo_locations": {"countries": sorted(countries.get(a.adset_id, []))}}}
            for a in adsets.itertuples()
        ],
        "ads": [
            {"id": a.ad_id, "adset_id": a.adset_id, "campaign_id": a.campaign_id, "name": a.ad_name, "status": "ACTIVE",
             "created_time": a.ad_created, "creative": {"id": f"9{a.ad_id}"}}
            for a in ads.itertuples()
        ],
        "creatives": [{"id": f"9{ad}", "approved": True} for ad in ads["ad_id"]],
        "insights": [
            {"ad_id": r.ad_id, "adset_id": r.adset_id, "campaign_id": r.campaign_id, "date_start": d, "date_stop": d,
             "country": r.country, "spend": f"{r.spend:.2f}", "impressions": str(r.impressions), "clicks": str(r.clicks),
             "actions": [{"action_type": "purchase", "value": str(r.purchases)}],
             "action_values": [{"action_type": "purchase", "value": f"{r.revenue:.2f}"}]}
            for r, d in zip(f.itertuples(), day)
        ],
    }
    parse_snapshot(document)  # never hand out (or write) a snapshot the engine would refuse
    return Imported(document, len(f), first_day, last_day, budgets, rows.source["clicks"], int(capped.sum()))


def _assumed_budgets(f: pd.DataFrame, first_day: pd.Timestamp, last_day: pd.Timestamp) -> pd.Series:
    window_start = last_day - pd.Timedelta(days=BUDGET_DAYS - 1)
    days = min(BUDGET_DAYS, (last_day - first_day).days + 1)
    spend = f[f["day"] >= window_start].groupby("campaign_id")["spend"].sum()
    mean = spend.reindex(f["campaign_id"].unique(), fill_value=0.0) / days
    # Rounded up (a cent of float noise is not a unit more), and at least 1: a budget of 0 could not be changed.
    return mean.map(lambda value: max(1, math.ceil(round(value, 6))))
