"""Parse and validate an account snapshot (docs/snapshot-format.md) into pandas frames.

This is the one parser for every source: the stub's snapshot files and generated demo account,
the live client's Graph API reads, and ``meta-ads plan``. A document that breaks a rule is rejected
as a whole with :class:`SnapshotError`, whose message names the offending object and field; nothing
downstream ever sees half of a document.

Field-level rules are declared as pydantic models (one per Graph object), except for the insights
rows, the bulk of a document, which are validated column by column; rules that relate rows to each
other (references, clicks and purchases <= impressions, duplicates) run vectorized over the frames.

Files are read by :func:`decode_snapshot` (UTF-8 JSON; it says at which line and column a file is
not), whoever reads them: ``meta-ads plan``, the stub, the settings' look at META_STUB_SNAPSHOT.
:func:`load_snapshot_file` and :func:`load_snapshot_text` (the commands reading a file) first
try pyarrow's JSON reader (engine/columnar.py), which reads a file of the usual form into columns
without building a dict (nor a model) per insights row, campaign, ad set, ad or creative, and parse
the file the ordinary way whenever that path cannot vouch for it.
A message quotes a bad value cut short and stays one line (``input_rules.echo``).
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, compress, repeat
from operator import itemgetter
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainValidator, SkipValidation, StrictBool, ValidationError,
    field_validator,
)

from ..input_rules import AD_ACCOUNT_FORM, AD_ACCOUNT_ID, DIGITS, echo, shown, unicode_text, utf8_text

# Currencies whose Graph API "offset" is 1: budgets are whole units, not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)
STATUSES = ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "IN_PROCESS", "WITH_ISSUES")
# An ad set's learning phase, as the Graph API's learning_stage_info.status reports it.
LEARNING_STATUSES = ("LEARNING", "SUCCESS", "FAIL")
ENTITY_TYPES = ("campaign", "adset", "ad", "creative")
ACTION_TYPES = ("scale_up", "scale_down", "pause", "resume", "reallocate", "publish_winner", "create_variant")

# Bounds (docs/snapshot-format.md). A value past them is a unit mistake or garbage, never a real
# ad's day, and within them every number stays exact in the frames (int64 counts, float64 money).
# Counts per insights row: a thousand times more impressions than there are people on Earth.
COUNT_MAX = 10**12
# Money per insights row in major units: the bound must hold in every currency, and 10^12 VND is
# still about 40 million USD; 10^12 with cents is 10^14, well inside float64's exact 2^53.
MONEY_MAX = 10**12
# A daily budget in minor units (10^13 USD, 10^15 JPY); below 2^53, so exact as a float too.
BUDGET_MAX = 10**15
# Times: Meta's ads exist since 2007; past these years pandas' timestamps (1677-2262) are near.
YEARS = (1970, 2199)
# last_sig_edit_ts: a Unix time in seconds within YEARS.
EPOCH_MAX = int(datetime(YEARS[1], 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
COUNTRY = re.compile(r"[A-Z]{2}")
DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # as the Graph API writes money: "64.29"
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class SnapshotError(ValueError):
    """The snapshot breaks the format; the message names the object and the field."""


def whole_number(value: Any, maximum: int) -> int | None:
    """A count or budget as the Graph API sends it (a string of digits) or a JSON integer, if it
    is a whole number from 0 to ``maximum``; None otherwise (a fraction, a float, a bool, text)."""
    # A string longer than 20 digits is past every bound; int() of it would only cost (and past
    # 4300 digits raise).
    if isinstance(value, str) and len(value) <= 20 and DIGITS.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        return None
    return number if 0 <= number <= maximum else None


def money(value: Any) -> float | None:
    """An amount as the Graph API sends it (a decimal string such as "64.29") or a JSON number,
    if finite and from 0 to MONEY_MAX; None otherwise."""
    if isinstance(value, str) and len(value) <= 40 and DECIMAL.fullmatch(value):
        number = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value  # an int is compared as it is: float() of a huge one would overflow
    else:
        return None
    # NaN fails both comparisons, infinity the second.
    return float(number) if 0 <= number <= MONEY_MAX else None


COUNT_RULE = f"must be a whole number from 0 to {COUNT_MAX:,}"
MONEY_RULE = f"must be a finite number from 0 to {MONEY_MAX:,}"
ID_RULE = "must be an id: a string of digits 0-9 (or a JSON integer)"


def _object_id(value: Any) -> str:
    # Graph ids are strings of digits; a JSON integer is accepted as one, a boolean is not (int's subclass).
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and DIGITS.fullmatch(value):
        return value
    raise ValueError(ID_RULE)


def _ad_account_id(value: Any) -> str:
    if isinstance(value, str) and AD_ACCOUNT_ID.fullmatch(value):
        return value
    raise ValueError(f"must be an ad account id ({AD_ACCOUNT_FORM})")


def _minor_units(value: Any) -> int | None:
    if value is None:
        return None
    number = whole_number(value, BUDGET_MAX)
    if number is None:
        raise ValueError(f"a budget must be a whole number of minor units from 0 to {BUDGET_MAX:,} (e.g. \"50000\")")
    return number


def iso_time(value: Any) -> datetime:
    rule = "must be an ISO 8601 time string with a UTC offset, e.g. \"2026-11-20T10:00:00+00:00\""
    if not isinstance(value, str):  # a number would be an epoch: in seconds or milliseconds?
        raise ValueError(rule)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(rule) from None
    if moment.tzinfo is None:
        raise ValueError(f"{rule} (this one has no offset)")
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise ValueError(f"must be in the years {YEARS[0]} to {YEARS[1]}")
    return moment


def _count_or_none(value: Any) -> int | None:
    if value is None:
        return None
    number = whole_number(value, COUNT_MAX)
    if number is None:
        raise ValueError(COUNT_RULE)
    return number


def _epoch_seconds(value: Any) -> int | None:
    if value is None:
        return None
    number = whole_number(value, EPOCH_MAX)
    if number is None:
        raise ValueError(f"must be a Unix time in whole seconds (an integer) in the years {YEARS[0]} to {YEARS[1]}")
    return number


def _country_code(value: Any) -> str:
    if isinstance(value, str) and COUNTRY.fullmatch(value):
        return value
    raise ValueError("must be a two-letter country code in capitals (ES)")


ObjectId = Annotated[str, BeforeValidator(_object_id)]
MinorUnits = Annotated[int | None, PlainValidator(_minor_units)]
Time = Annotated[datetime, PlainValidator(iso_time)]
Text = Annotated[str, AfterValidator(unicode_text)]
Status = Literal[STATUSES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Strict):
    # act_<digits>, as the stub and the Dagster partitions name accounts: a snapshot of any other
    # form would be refused by every cycle, so `plan` refuses it too.
    id: Annotated[str, PlainValidator(_ad_account_id)]
    currency: str
    timezone_name: str

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("must be an ISO 4217 code such as USD")
        return value

    @field_validator("timezone_name")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        # OSError: ZoneInfo opens a file named after the value (too long a name, a directory).
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("unknown time zone (an IANA name such as Europe/Madrid)") from None
        return value


class Campaign(_Strict):
    id: ObjectId
    name: Text = ""
    status: Status
    created_time: Time
    daily_budget: MinorUnits = None


class GeoLocations(_Strict):
    countries: list[Annotated[str, PlainValidator(_country_code)]] = []


class Targeting(_Strict):
    geo_locations: GeoLocations = GeoLocations()


class LearningStageInfo(_Strict):
    """Graph's ``AdSet.learning_stage_info`` (its other fields are ignored)."""

    status: Literal[LEARNING_STATUSES]  # type: ignore[valid-type]
    conversions: Annotated[int | None, PlainValidator(_count_or_none)] = None
    last_sig_edit_ts: Annotated[int | None, PlainValidator(_epoch_seconds)] = None


class AdSet(_Strict):
    id: ObjectId
    campaign_id: ObjectId
    name: Text = ""
    status: Status
    created_time: Time
    daily_budget: MinorUnits = None
    targeting: Targeting = Targeting()
    learning_stage_info: LearningStageInfo | None = None


class CreativeRef(_Strict):
    id: ObjectId


class Ad(_Strict):
    id: ObjectId
    adset_id: ObjectId
    campaign_id: ObjectId
    name: Text = ""
    status: Status
    created_time: Time
    creative: CreativeRef
    source_ad_id: ObjectId | None = None  # the ad this one was copied from (a created variant)


class Creative(_Strict):
    id: ObjectId
    # A JSON true/false only: "yes", 1 or "false" would be read as true by a lax bool, and an
    # unapproved creative must never be put live.
    approved: StrictBool


class ABTest(_Strict):
    id: Text
    ad_ids: list[ObjectId]
    started_at: Time

    @field_validator("ad_ids")
    @classmethod
    def _two_or_more(cls, ad_ids: list[str]) -> list[str]:
        if len(set(ad_ids)) != len(ad_ids):
            raise ValueError("an ad appears twice in the same A/B test")
        if len(ad_ids) < 2:
            raise ValueError("an A/B test needs at least two distinct ads")
        return ad_ids


class RecentAction(_Strict):
    entity_type: Literal[ENTITY_TYPES]  # type: ignore[valid-type]
    entity_id: ObjectId
    type: Literal[ACTION_TYPES]  # type: ignore[valid-type]
    executed_at: Time


class SnapshotDocument(_Strict):
    as_of: Time
    account: Account
    campaigns: list[Campaign]
    adsets: list[AdSet]
    ads: list[Ad]
    creatives: list[Creative] = []
    # Insights are the bulk of a snapshot: validated column-wise in _parse_insights, not per row.
    insights: Annotated[list, SkipValidation] = []
    ab_tests: list[ABTest] | None = None
    recent_actions: list[RecentAction] | None = None


@dataclass(frozen=True)
class AccountSnapshot:
    """One ad account at one moment, as frames. Money in the account currency (floats, major
    units) except budgets, which stay integer minor units like the Graph API keeps them."""

    as_of: pd.Timestamp
    today: pd.Timestamp  # the as_of date in the account's time zone (naive midnight)
    account_id: str
    currency: str
    timezone_name: str  # the account's IANA zone, in which ``today`` and the insights' dates are read
    minor_per_unit: int
    campaigns: pd.DataFrame
    adsets: pd.DataFrame
    ads: pd.DataFrame
    creatives: pd.DataFrame
    insights: pd.DataFrame
    ab_tests: pd.DataFrame
    recent_actions: pd.DataFrame


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off for the block. Decoding and parsing make millions of small
    containers and no reference cycles, but every 700 new containers start a collection, and the
    older generations' ones traverse everything alive: with it on, decoding a large snapshot
    took 3.5 times as long (benchmarks/cycle_scale.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_snapshot(
    document: Any, insights: pd.DataFrame | None = None, frames: dict[str, pd.DataFrame] | None = None
) -> AccountSnapshot:
    """Validate ``document`` (already-decoded JSON) and return it as frames, or raise SnapshotError.
    ``insights``: its insights rows already read and validated (engine/columnar.py), in place of
    the document's; ``frames``: the same for some of its lists (campaigns, adsets, ads, creatives),
    which the document then holds empty."""
    if not isinstance(document, dict):
        raise SnapshotError(f"snapshot rejected: must be a JSON object, got {type(document).__name__}")
    with no_cycle_collection():
        try:
            doc = SnapshotDocument.model_validate(document)
        except ValidationError as exc:
            raise SnapshotError(_describe(exc, document)) from None
        snapshot = _to_frames(doc, insights, frames or {})
        _check_relations(snapshot)
    return snapshot


def _describe(exc: ValidationError, document: dict) -> str:
    """Name object (with its id where it has one) and field for the first few problems."""
    problems = []
    for error in exc.errors()[:5]:
        loc = list(error["loc"])
        where = str(loc[0]) if loc else "snapshot"
        rest = loc[1:]
        if rest and isinstance(rest[0], int):
            index = rest.pop(0)
            where += f"[{index}]"
            row = (document.get(loc[0]) or [None] * (index + 1))[index] if isinstance(document.get(loc[0]), list) else None
            if isinstance(row, dict) and "id" in row:
                where += f" (id {shown(row['id'])})"
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)
        value = f" (got {echo(error['input'])})" if error["type"] != "missing" else ""
        message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own rules
        problems.append(f"{where}{field}: {message}{value}")
    more = len(exc.errors()) - len(problems)
    return "snapshot rejected: " + "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def utc_times(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


# An ad set's learning_stage_info as frame columns (None / NaT when Meta did not report it).
LEARNING_COLUMNS = ["learning_status", "learning_conversions", "last_sig_edit_at"]


def _learning_columns(info: LearningStageInfo | None) -> dict[str, Any]:
    if info is None:
        return dict.fromkeys(LEARNING_COLUMNS)
    return {"learning_status": info.status, "learning_conversions": info.conversions, "last_sig_edit_at": info.last_sig_edit_ts}


# The frames' columns, in order, for the lists that engine/columnar.py can also read column-wise.
CAMPAIGN_COLUMNS = ["id", "name", "status", "created_time", "daily_budget"]
ADSET_COLUMNS = ["id", "campaign_id", "name", "status", "created_time", "daily_budget", "countries", *LEARNING_COLUMNS]
AD_COLUMNS = ["id", "adset_id", "campaign_id", "name", "status", "created_time", "creative_id", "source_ad_id"]
CREATIVE_COLUMNS = ["id", "approved"]


def epoch_utc(seconds: pd.Series) -> pd.Series:
    """Unix times in whole seconds (missing where unknown) as UTC timestamps."""
    return pd.to_datetime(seconds.astype("Int64"), unit="s", utc=True)


def _campaigns_frame(campaigns: list[Campaign]) -> pd.DataFrame:
    frame = _frame([c.model_dump() for c in campaigns], CAMPAIGN_COLUMNS)
    frame["created_time"] = utc_times(frame["created_time"])
    frame["daily_budget"] = frame["daily_budget"].astype("Int64")
    return frame


def _adsets_frame(adsets: list[AdSet]) -> pd.DataFrame:
    frame = _frame(
        [
            a.model_dump(exclude={"targeting", "learning_stage_info"})
            | {"countries": tuple(a.targeting.geo_locations.countries)}
            | _learning_columns(a.learning_stage_info)
            for a in adsets
        ],
        ADSET_COLUMNS,
    )
    frame["created_time"] = utc_times(frame["created_time"])
    frame["daily_budget"] = frame["daily_budget"].astype("Int64")
    frame["learning_conversions"] = frame["learning_conversions"].astype("Int64")
    frame["last_sig_edit_at"] = epoch_utc(frame["last_sig_edit_at"])
    return frame


def _ads_frame(ads: list[Ad]) -> pd.DataFrame:
    frame = _frame([a.model_dump(exclude={"creative"}) | {"creative_id": a.creative.id} for a in ads], AD_COLUMNS)
    frame["created_time"] = utc_times(frame["created_time"])
    return frame


def _creatives_frame(creatives: list[Creative]) -> pd.DataFrame:
    frame = _frame([c.model_dump() for c in creatives], CREATIVE_COLUMNS)
    frame["approved"] = frame["approved"].astype(bool)
    return frame


_LIST_FRAMES = {"campaigns": _campaigns_frame, "adsets": _adsets_frame, "ads": _ads_frame, "creatives": _creatives_frame}


def _to_frames(doc: SnapshotDocument, insights: pd.DataFrame | None, frames: dict[str, pd.DataFrame]) -> AccountSnapshot:
    zone = ZoneInfo(doc.account.timezone_name)
    as_of = pd.Timestamp(doc.as_of).tz_convert("UTC")
    today = pd.Timestamp(doc.as_of.astimezone(zone).date())

    lists = {name: frames[name] if name in frames else build(getattr(doc, name)) for name, build in _LIST_FRAMES.items()}
    insights = _parse_insights(doc.insights) if insights is None else insights
    ab_tests = _frame([t.model_dump() for t in doc.ab_tests or []], ["id", "ad_ids", "started_at"])
    recent = _frame(
        [r.model_dump() for r in doc.recent_actions or []], ["entity_type", "entity_id", "type", "executed_at"]
    )
    ab_tests["started_at"] = utc_times(ab_tests["started_at"])
    recent["executed_at"] = utc_times(recent["executed_at"])

    return AccountSnapshot(
        as_of=as_of,
        today=today,
        account_id=doc.account.id,
        currency=doc.account.currency,
        timezone_name=doc.account.timezone_name,
        minor_per_unit=1 if doc.account.currency in ZERO_DECIMAL_CURRENCIES else 100,
        **lists,
        insights=insights,
        ab_tests=ab_tests,
        recent_actions=recent,
    )


INSIGHT_IDS = ("ad_id", "adset_id", "campaign_id")
# country is required: rows come from breakdowns=country, and the geo rules read the spend mix.
INSIGHT_REQUIRED = (*INSIGHT_IDS, "date_start", "date_stop", "country", "spend", "impressions", "clicks")
INSIGHT_COLUMNS = [*INSIGHT_IDS, "date", "country", "spend", "impressions", "clicks", "purchases", "revenue"]


def _reject_first(values: list, bad: list[bool] | np.ndarray, field: str, message: str) -> None:
    if np.any(bad):
        index = int(np.flatnonzero(bad)[0])
        raise SnapshotError(f"snapshot rejected: insights[{index}].{field}: {message} (got {echo(values[index])})")


def _parsed(values: list, parse: Callable[[Any], Any], field: str, message: str) -> list:
    """``parse`` of every value, rejecting the first one it refuses (returns None for)."""
    parsed = [parse(value) for value in values]
    _reject_first(values, [value is None for value in parsed], field, message)
    return parsed


# The insights columns are read in two ways that must agree. A vectorized reader (``_digit_strings``,
# ``_counts``, ``_amounts``, ``_by_distinct``) checks a whole column at C speed when every value
# is a string, and answers None when it cannot vouch for all of them (another type, one bad value);
# then the row-wise rule (``whole_number``, ``money``, ...) reads that column value by value and
# names the first offender, exactly as it always did. The vectorized readers accept a subset of
# what the rules accept, with the same values (meta_ads_dagster_tests/engine/test_snapshot_columns.py).
def _strings(values: list) -> bool:
    return bool(values) and set(map(type, values)) == {str}


def _digit_strings(values: list, longest: int | None = None) -> np.ndarray | None:
    """``values`` as an object array if every one is a non-empty string of ASCII digits (what
    DIGITS.fullmatch accepts), at most ``longest`` of them."""
    if not (_strings(values) and all(values) and (longest is None or max(map(len, values)) <= longest)):
        return None
    joined = "".join(values)
    return np.array(values, dtype=object) if joined.isascii() and joined.isdigit() else None


def _counts(values: list, maximum: int) -> np.ndarray | None:
    """int64 counts from digit strings, as ``whole_number(value, maximum)`` reads each one."""
    # 18 digits always fit int64; a longer string (leading zeros, or past every bound) goes row-wise.
    digits = _digit_strings(values, 18)
    if digits is None:
        return None
    numbers = digits.astype(np.int64)
    return numbers if numbers.max() <= maximum else None


_DECIMALS = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?,)*")


def _amounts(values: list) -> np.ndarray | None:
    """float64 amounts from decimal strings, as ``money(value)`` reads each one."""
    if not (_strings(values) and max(map(len, values)) <= 40):
        return None
    joined = ",".join(values) + ","
    # The count: a value holding a comma would otherwise pass as two decimals.
    if joined.count(",") != len(values) or not _DECIMALS.fullmatch(joined):
        return None
    numbers = np.array(values, dtype=object).astype(np.float64)  # float() of each, as money() does
    return numbers if numbers.max() <= MONEY_MAX else None


def _by_distinct(values: list, read: Callable[[list], pd.Series]) -> tuple[pd.Series, np.ndarray]:
    """``read(values)`` (a Series, missing where a value is bad) and each row's badness. A column
    of strings repeats a few values (dates, countries) 100,000s of times: then each distinct one
    is read once and spread back (only strings: a factorization would take True for 1)."""
    if not _strings(values):
        result = read(values)
        return result, result.isna().to_numpy()
    codes, distinct = pd.factorize(np.array(values, dtype=object))
    read_distinct = read(list(distinct))
    return read_distinct.take(codes).reset_index(drop=True), read_distinct.isna().to_numpy()[codes]


def _dates(values: list) -> pd.Series:
    text = [value if isinstance(value, str) and DATE.fullmatch(value) else "" for value in values]
    return pd.to_datetime(pd.Series(text, dtype=object), format="%Y-%m-%d", errors="coerce")


def _countries(values: list) -> pd.Series:
    return pd.Series([_country_or_none(value) for value in values], dtype=object)


def _parse_insights(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Validate the insights rows column by column and return them as a typed frame."""
    if not isinstance(rows, list):
        raise SnapshotError(f"snapshot rejected: insights: must be a list (got {type(rows).__name__})")
    if not set(map(type, rows)) <= {dict}:
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise SnapshotError(f"snapshot rejected: insights[{index}]: must be an object (got {echo(row)})")
    # Plain lists of the values as decoded: a frame would upcast a column of ints holding one
    # float to floats, and then blame row 0 for another row's fraction.
    raw = {field: list(map(dict.get, rows, repeat(field))) for field in (*INSIGHT_REQUIRED, "actions", "action_values")}
    for field in INSIGHT_REQUIRED:
        if None in raw[field]:
            index = raw[field].index(None)
            raise SnapshotError(f"snapshot rejected: insights[{index}].{field}: Field required (got None)")
    ids = {}
    for field in INSIGHT_IDS:
        ids[field] = _digit_strings(raw[field])
        if ids[field] is None:
            ids[field] = _parsed(raw[field], _id_or_none, field, ID_RULE)
    dates = {}
    for field in ("date_start", "date_stop"):
        dates[field], bad = _by_distinct(raw[field], _dates)
        _reject_first(raw[field], bad, field, "must be a date YYYY-MM-DD")
    _reject_first(raw["date_stop"], dates["date_stop"].to_numpy() != dates["date_start"].to_numpy(), "date_stop",
                  "insights must be daily (time_increment=1): date_stop must equal date_start")
    # Meta reports spend it cannot place as country "unknown".
    _reject_first(raw["country"], _by_distinct(raw["country"], _countries)[1], "country",
                  "must be a two-letter country code in capitals (or \"unknown\")")
    spend = _amounts(raw["spend"])
    spend = _parsed(raw["spend"], money, "spend", MONEY_RULE) if spend is None else spend
    counts = {}
    for field in ("impressions", "clicks"):
        counts[field] = _counts(raw[field], COUNT_MAX)
        if counts[field] is None:
            counts[field] = _parsed(raw[field], lambda v: whole_number(v, COUNT_MAX), field, COUNT_RULE)
    return insights_frame(
        {
            **ids,
            "date": dates["date_start"],
            "country": raw["country"],
            "spend": spend,
            **counts,
            # Purchases are whole: the Graph API counts them with the attribution windows the live
            # client asks for (7d_click, 1d_view); only data-driven attribution splits a purchase.
            "purchases": _purchase_totals(
                raw["actions"], "actions", lambda v: whole_number(v, COUNT_MAX), lambda v: _counts(v, COUNT_MAX), COUNT_RULE
            ),
            "revenue": _purchase_totals(raw["action_values"], "action_values", money, _amounts, MONEY_RULE),
        }
    )


def insights_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """The insights frame from its validated columns (INSIGHT_COLUMNS), however they were read."""
    return pd.DataFrame(
        {
            **{field: pd.Series(columns[field], dtype=object) for field in (*INSIGHT_IDS, "country")},
            "date": columns["date"],
            "spend": np.array(columns["spend"], dtype="float64"),
            **{field: np.array(columns[field], dtype="int64") for field in ("impressions", "clicks")},
            **{field: np.array(columns[field], dtype="float64") for field in ("purchases", "revenue")},
        },
        columns=INSIGHT_COLUMNS,
    )


def _id_or_none(value: Any) -> str | None:
    try:
        return _object_id(value)
    except ValueError:
        return None


def _country_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and (COUNTRY.fullmatch(value) or value == "unknown") else None


def _purchase_totals(
    lists: list, field: str, parse: Callable[[Any], Any], read: Callable[[list], np.ndarray | None], rule: str
) -> np.ndarray:
    """The ``purchase`` entry of each row's ``field`` list, read by ``parse`` (a missing list, or
    one without a purchase entry, counts as zero); ``read`` is ``parse``'s vectorized reader."""
    totals = _purchase_totals_vectorized(lists, read)
    return _purchase_totals_by_row(lists, field, parse, rule) if totals is None else totals


def _purchase_totals_vectorized(lists: list, read: Callable[[list], np.ndarray | None]) -> np.ndarray | None:
    """The totals over every row's entries at once, or None when a row-wise look must name a
    problem (or read a value the vectorized reader cannot vouch for)."""
    if not set(map(type, lists)) <= {list, type(None)}:
        return None
    present = [entries or () for entries in lists]
    entries = list(chain.from_iterable(present))
    if not set(map(type, entries)) <= {dict}:
        return None
    try:
        action_types = list(map(itemgetter("action_type"), entries))
        values = list(map(itemgetter("value"), entries))
    except KeyError:
        return None
    if entries and not _strings(action_types):
        return None
    is_purchase = np.array(action_types, dtype=object) == "purchase"
    rows = np.repeat(np.arange(len(lists)), np.fromiter(map(len, present), dtype=np.int64, count=len(present)))[is_purchase]
    if (np.diff(rows) == 0).any():  # a row with two purchase entries
        return None
    totals = np.zeros(len(lists))
    purchases = list(compress(values, is_purchase))
    if purchases:
        numbers = read(purchases)
        if numbers is None:
            return None
        totals[rows] = numbers
    return totals


def _purchase_totals_by_row(lists: list, field: str, parse: Callable[[Any], Any], rule: str) -> np.ndarray:
    totals = np.zeros(len(lists))
    for row, entries in enumerate(lists):
        if entries is None:
            continue
        where = f"snapshot rejected: insights[{row}].{field}"
        if not isinstance(entries, list):
            raise SnapshotError(f"{where}: must be a list of {{action_type, value}} (got {echo(entries)})")
        seen = None
        for position, entry in enumerate(entries):
            if not (isinstance(entry, dict) and "action_type" in entry and "value" in entry):
                raise SnapshotError(f"{where}[{position}]: needs action_type and value (got {echo(entry)})")
            if not isinstance(entry["action_type"], str):
                raise SnapshotError(f"{where}[{position}].action_type: must be a string (got {echo(entry['action_type'])})")
            if entry["action_type"] != "purchase":
                continue
            if seen is not None:  # summing both would count the row's purchases twice
                raise SnapshotError(f"{where}[{position}].action_type: a second purchase entry (the first is [{seen}])")
            number = parse(entry["value"])
            if number is None:
                raise SnapshotError(f"{where}[{position}].value: {rule} (got {echo(entry['value'])})")
            totals[row], seen = number, position
    return totals


def _arrow_text(values: pd.Series) -> pa.Array:
    return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _is_in(keys: pd.Series, ids: pd.Series) -> np.ndarray:
    """Whether each key is one of ``ids`` (pandas' ``isin`` on Arrow strings makes a pyarrow
    scalar of every id, seconds for the ads of a large account)."""
    return pc.is_in(_arrow_text(keys), value_set=_arrow_text(ids)).to_numpy(zero_copy_only=False)


def _positions(keys: pd.Series, ids: pd.Series) -> np.ndarray:
    """Where each key is in ``ids`` (unique), -1 where it is not: Arrow's hash lookup, a third of
    pandas' ``get_indexer`` on 1.6 M Python strings."""
    return pc.index_in(_arrow_text(keys), value_set=_arrow_text(ids)).fill_null(-1).to_numpy()


def _first_offender(frame: pd.DataFrame, bad: pd.Series | np.ndarray, label: str, key: str, message: str) -> None:
    bad = np.asarray(bad)
    if bad.any():
        position = int(bad.nonzero()[0][0])
        index, row = frame.index[position], frame.iloc[position]
        ident = f" (id {shown(row[key])})" if key in frame.columns else ""
        values = {name: shown(value) if isinstance(value, str) else value for name, value in row.items()}
        raise SnapshotError(f"snapshot rejected: {label}[{index}]{ident}.{message.format(**values)}")


def _check_relations(s: AccountSnapshot) -> None:
    for label, frame in (
        ("campaigns", s.campaigns), ("adsets", s.adsets), ("ads", s.ads), ("creatives", s.creatives), ("ab_tests", s.ab_tests)
    ):
        _first_offender(frame, frame["id"].duplicated(), label, "id", "id: duplicate id {id}")

    _first_offender(
        s.adsets, ~_is_in(s.adsets["campaign_id"], s.campaigns["id"]), "adsets", "id",
        "campaign_id: campaign {campaign_id} does not exist",
    )
    cbo = s.adsets["campaign_id"].map(s.campaigns.set_index("id")["daily_budget"].notna())
    _first_offender(
        s.adsets, cbo.astype(bool) & s.adsets["daily_budget"].notna(), "adsets", "id",
        "daily_budget: must be null because campaign {campaign_id} holds the budget (CBO)",
    )
    _first_offender(s.ads, ~_is_in(s.ads["adset_id"], s.adsets["id"]), "ads", "id", "adset_id: ad set {adset_id} does not exist")
    adset_campaign = s.ads["adset_id"].map(s.adsets.set_index("id")["campaign_id"])
    _first_offender(
        s.ads, adset_campaign != s.ads["campaign_id"], "ads", "id",
        "campaign_id: {campaign_id} is not the campaign of ad set {adset_id}",
    )
    _first_offender(
        s.ads, ~_is_in(s.ads["creative_id"], s.creatives["id"]), "ads", "id",
        "creative.id: creative {creative_id} is not listed in creatives",
    )

    ins = s.insights
    # Ad ids are unique (above): each row's ad, found once.
    ad_row = _positions(ins["ad_id"], s.ads["id"])
    _first_offender(ins, ad_row < 0, "insights", "ad_id", "ad_id: ad {ad_id} does not exist")
    _first_offender(
        ins, ins["adset_id"].to_numpy() != s.ads["adset_id"].to_numpy(dtype=object)[ad_row], "insights", "ad_id",
        "adset_id: {adset_id} is not the ad set of ad {ad_id}",
    )
    _first_offender(
        ins, ins["campaign_id"].to_numpy() != s.ads["campaign_id"].to_numpy(dtype=object)[ad_row], "insights", "ad_id",
        "campaign_id: {campaign_id} is not the campaign of ad {ad_id}",
    )
    _first_offender(
        ins, ins["clicks"] > ins["impressions"], "insights", "ad_id",
        "clicks: {clicks} clicks exceed {impressions} impressions",
    )
    # Every purchase follows an impression of the ad on that day (the default action report time).
    _first_offender(
        ins, ins["purchases"] > ins["impressions"], "insights", "ad_id",
        "actions: {purchases:.0f} purchases exceed {impressions} impressions",
    )
    _first_offender(
        ins, ins["date"] > s.today, "insights", "ad_id",
        "date_start: {date} is after the snapshot's as_of date",
    )
    _first_offender(
        ins, ins.duplicated(["ad_id", "date", "country"]), "insights", "ad_id",
        "date_start: duplicate row for ad {ad_id}, {date}, country {country}",
    )

    members = s.ab_tests.explode("ad_ids")
    _first_offender(
        members, ~_is_in(members["ad_ids"], s.ads["id"]), "ab_tests", "id",
        "ad_ids: ad {ad_ids} does not exist",
    )


def decode_snapshot(data: bytes | str) -> Any:
    """The JSON document in ``data`` (a file's bytes, which must be UTF-8, or its text), not yet
    validated; SnapshotError saying where it is not UTF-8 or not JSON. Every reader of snapshot
    files goes through here: ``meta-ads plan``, the stub, and the settings' check of
    META_STUB_SNAPSHOT, so they answer a broken file alike."""
    if isinstance(data, bytes):
        try:
            data = utf8_text(data)
        except ValueError as exc:
            raise SnapshotError(f"snapshot rejected: {exc}") from None
    try:
        with no_cycle_collection():
            return json.loads(data)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot rejected: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # the decoder recurses once per level: a snapshot needs fewer than ten
        raise SnapshotError("snapshot rejected: not valid JSON: nested too deep to read") from None
    except ValueError:  # an integer literal past Python's int() limit (sys.get_int_max_str_digits)
        raise SnapshotError("snapshot rejected: not valid JSON: a number too long to read") from None


def load_snapshot_text(data: bytes | str) -> AccountSnapshot:
    """Parse a snapshot file's bytes or text; a file that is not UTF-8 JSON is a SnapshotError too.
    The cycle collector stays off until the decoded document is gone: turned on while the
    document's millions of containers are alive, its first full collection traverses them all.

    A file's bytes are read into columns when the file has the usual form (engine/columnar.py);
    any other file, a rejected one included, is decoded and parsed as a whole, which names what is
    wrong."""
    with no_cycle_collection():
        snapshot = _load_columnar(data) if isinstance(data, bytes) else None
        return snapshot if snapshot is not None else _load_decoded(data)


def load_snapshot_file(path: str | Path) -> AccountSnapshot:
    """:func:`load_snapshot_text` of the file at ``path`` (OSError if it cannot be read). The
    fast path has pyarrow read the file itself, so that a 650 MB file's bytes are not held in
    Python beside what is made of them; the bytes are read only if the file must be parsed whole."""
    path = Path(path)
    if not path.is_file():  # a pipe is read once: its bytes, then as any bytes (a directory: OSError)
        return load_snapshot_text(path.read_bytes())
    with no_cycle_collection():
        snapshot = _load_columnar(path)
        return snapshot if snapshot is not None else _load_decoded(path.read_bytes())


def _load_decoded(data: bytes | str) -> AccountSnapshot:
    """The whole document decoded, then parsed; the bytes are let go once decoded (unless the
    caller holds them)."""
    document = decode_snapshot(data)
    del data
    snapshot = parse_snapshot(document)
    del document
    return snapshot


def parse_with_insights_fields(document: dict[str, Any], fields: dict[str, Any]) -> AccountSnapshot | None:
    """:func:`parse_snapshot` of ``document`` (its insights left out) with its insights rows given
    as their fields (pyarrow arrays, ``columnar.fields_of``; emptied as they are read), or None
    where the fast path cannot vouch for the rows (then parse the whole document)."""
    from . import columnar  # pyarrow: only where rows come as columns

    columns = columnar.insights_columns(fields, _dates, _countries, COUNT_MAX, MONEY_MAX)
    if columns is None:
        return None
    try:
        return parse_snapshot({**document, "insights": []}, insights_frame(columns))
    except SnapshotError:
        return None  # the whole document's parse says what is wrong, and where


def _load_columnar(source: bytes | Path) -> AccountSnapshot | None:
    """The snapshot in ``source`` (a file's bytes, or the file) by the fast path, or None where
    it cannot vouch for the file."""
    from . import columnar  # pyarrow: only where a file is read

    table = columnar.read_document(source)
    if table is None:
        return None
    parts, rows = columnar.structure(table), columnar.insights_rows(table)
    del table
    if parts is None or rows is None:
        return None
    document, frames = parts
    fields = columnar.fields_of(rows)
    del rows  # each field's memory goes once it is read
    columns = columnar.insights_columns(fields, _dates, _countries, COUNT_MAX, MONEY_MAX)
    if columns is None:
        return None
    try:
        return parse_snapshot(document, insights_frame(columns), frames)
    except SnapshotError:
        return None  # the whole document's parse says what is wrong, and where


def snapshot_file_account_id(path: Path) -> str:
    """:func:`snapshot_account_id` of the file at ``path`` (OSError if it cannot be read), without
    decoding the whole file where pyarrow can read its account id; any file it cannot vouch for
    is decoded, so that a broken one gets the same answer as from ``meta-ads plan``."""
    from . import columnar  # pyarrow: only where a file is read

    table = columnar.read_document(path, columnar.ACCOUNT_ID_ONLY) if path.is_file() else None
    if table is not None:
        account = table.column("account").to_pylist()[0]
        if account is not None and account["id"] is not None:
            return snapshot_account_id({"account": account})
    return snapshot_account_id(decode_snapshot(path.read_bytes()))


def snapshot_account_id(document: Any) -> str:
    """``account.id`` of a decoded snapshot, checked as :func:`parse_snapshot` checks it, without
    reading the rest (the settings find a stub file's account this way)."""
    account = document.get("account") if isinstance(document, dict) else None
    if not isinstance(account, dict) or "id" not in account:
        raise SnapshotError("snapshot rejected: account.id: Field required")
    try:
        return _ad_account_id(account["id"])
    except ValueError as exc:
        raise SnapshotError(f"snapshot rejected: account.id: {exc} (got {echo(account['id'])})") from None
