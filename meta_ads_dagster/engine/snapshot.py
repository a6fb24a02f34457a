"""Parse and validate an account snapshot (docs/snapshot-format.md) into pandas frames.

This is the one parser for every source: the stub's snapshot files and generated demo account,
the live client's Graph API reads, and ``meta-ads plan``. A document that breaks a rule is rejected
as a whole with :class:`SnapshotError`, whose message names the offending object and field; nothing
downstream ever sees half of a document.

Field-level rules are declared as pydantic models (one per Graph object), except for the insights
rows, the bulk of a document, which are validated column by column; rules that relate rows to each
other (references, clicks <= impressions, duplicates) run vectorized over the frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, SkipValidation, ValidationError, field_validator

# Currencies whose Graph API "offset" is 1: budgets are whole units, not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)
STATUSES = ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "IN_PROCESS", "WITH_ISSUES")
ENTITY_TYPES = ("campaign", "adset", "ad", "creative")
ACTION_TYPES = ("scale_up", "scale_down", "pause", "resume", "reallocate", "publish_winner", "create_variant")


class SnapshotError(ValueError):
    """The snapshot breaks the format; the message names the object and the field."""


def _non_negative_decimal(value: Any) -> float:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError("must be a finite number >= 0")
    return float(number)


def _non_negative_int(value: Any) -> int:
    text = str(value)
    if not re.fullmatch(r"\d+", text):
        raise ValueError("must be a whole number >= 0")
    return int(text)


def _minor_units(value: Any) -> int | None:
    if value is None:
        return None
    text = str(value)
    if not re.fullmatch(r"\d+", text):
        raise ValueError("a budget must be a whole number of minor units (e.g. \"50000\")")
    return int(text)


Money = Annotated[float, BeforeValidator(_non_negative_decimal)]
Count = Annotated[int, BeforeValidator(_non_negative_int)]
MinorUnits = Annotated[int | None, BeforeValidator(_minor_units)]
Status = Literal[STATUSES]  # type: ignore[valid-type]
# Graph ids are strings; a JSON integer is accepted as one, a boolean is not (int's subclass).
ObjectId = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Strict):
    id: ObjectId
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
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Campaign(_Strict):
    id: ObjectId
    name: str = ""
    status: Status
    created_time: AwareDatetime
    daily_budget: MinorUnits = None


class Targeting(_Strict):
    geo_locations: dict[str, Any] = {}


class AdSet(_Strict):
    id: ObjectId
    campaign_id: ObjectId
    name: str = ""
    status: Status
    created_time: AwareDatetime
    daily_budget: MinorUnits = None
    targeting: Targeting = Targeting()


class CreativeRef(_Strict):
    id: ObjectId


class Ad(_Strict):
    id: ObjectId
    adset_id: ObjectId
    campaign_id: ObjectId
    name: str = ""
    status: Status
    created_time: AwareDatetime
    creative: CreativeRef


class Creative(_Strict):
    id: ObjectId
    approved: bool


class ABTest(_Strict):
    id: str
    ad_ids: list[ObjectId]
    started_at: AwareDatetime

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
    executed_at: AwareDatetime


class SnapshotDocument(_Strict):
    as_of: AwareDatetime
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
    minor_per_unit: int
    campaigns: pd.DataFrame
    adsets: pd.DataFrame
    ads: pd.DataFrame
    creatives: pd.DataFrame
    insights: pd.DataFrame
    ab_tests: pd.DataFrame
    recent_actions: pd.DataFrame


def parse_snapshot(document: Any) -> AccountSnapshot:
    """Validate ``document`` (already-decoded JSON) and return it as frames, or raise SnapshotError."""
    if not isinstance(document, dict):
        raise SnapshotError(f"snapshot: must be a JSON object, got {type(document).__name__}")
    try:
        doc = SnapshotDocument.model_validate(document)
    except ValidationError as exc:
        raise SnapshotError(_describe(exc, document)) from None
    snapshot = _to_frames(doc)
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
                where += f" (id {row['id']})"
        field = ".".join(str(part) for part in rest)
        value = f" (got {error['input']!r})" if error["type"] != "missing" else ""
        problems.append(f"{where}{'.' + field if field else ''}: {error['msg']}{value}")
    more = len(exc.errors()) - len(problems)
    return "snapshot rejected: " + "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _to_frames(doc: SnapshotDocument) -> AccountSnapshot:
    zone = ZoneInfo(doc.account.timezone_name)
    as_of = pd.Timestamp(doc.as_of).tz_convert("UTC")
    today = pd.Timestamp(doc.as_of.astimezone(zone).date())

    campaigns = _frame(
        [c.model_dump() for c in doc.campaigns], ["id", "name", "status", "created_time", "daily_budget"]
    )
    adsets = _frame(
        [
            a.model_dump(exclude={"targeting"})
            | {"countries": tuple(a.targeting.geo_locations.get("countries") or ())}
            for a in doc.adsets
        ],
        ["id", "campaign_id", "name", "status", "created_time", "daily_budget", "countries"],
    )
    ads = _frame(
        [a.model_dump(exclude={"creative"}) | {"creative_id": a.creative.id} for a in doc.ads],
        ["id", "adset_id", "campaign_id", "name", "status", "created_time", "creative_id"],
    )
    creatives = _frame([c.model_dump() for c in doc.creatives], ["id", "approved"])
    insights = _parse_insights(doc.insights)
    ab_tests = _frame([t.model_dump() for t in doc.ab_tests or []], ["id", "ad_ids", "started_at"])
    recent = _frame(
        [r.model_dump() for r in doc.recent_actions or []], ["entity_type", "entity_id", "type", "executed_at"]
    )

    for frame in (campaigns, adsets, ads):
        frame["created_time"] = _utc(frame["created_time"])
    for frame in (campaigns, adsets):
        frame["daily_budget"] = frame["daily_budget"].astype("Int64")
    ab_tests["started_at"] = _utc(ab_tests["started_at"])
    recent["executed_at"] = _utc(recent["executed_at"])
    creatives["approved"] = creatives["approved"].astype(bool)

    return AccountSnapshot(
        as_of=as_of,
        today=today,
        account_id=doc.account.id,
        currency=doc.account.currency,
        minor_per_unit=1 if doc.account.currency in ZERO_DECIMAL_CURRENCIES else 100,
        campaigns=campaigns,
        adsets=adsets,
        ads=ads,
        creatives=creatives,
        insights=insights,
        ab_tests=ab_tests,
        recent_actions=recent,
    )


INSIGHT_IDS = ("ad_id", "adset_id", "campaign_id")
# country is required: rows come from breakdowns=country, and the geo rules read the spend mix.
INSIGHT_REQUIRED = (*INSIGHT_IDS, "date_start", "date_stop", "country", "spend", "impressions", "clicks")
INSIGHT_COLUMNS = [*INSIGHT_IDS, "date", "country", "spend", "impressions", "clicks", "purchases", "revenue"]


def _reject_first(bad: pd.Series, values: pd.Series, field: str, message: str) -> None:
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        raise SnapshotError(f"snapshot rejected: insights[{index}].{field}: {message} (got {values.iloc[index]!r})")


def _parse_insights(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Validate the insights rows column by column and return them as a typed frame."""
    if not isinstance(rows, list):
        raise SnapshotError(f"snapshot rejected: insights: must be a list (got {type(rows).__name__})")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SnapshotError(f"snapshot rejected: insights[{index}]: must be an object (got {row!r})")
    raw = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(INSIGHT_REQUIRED))
    for field in INSIGHT_REQUIRED:
        values = raw[field] if field in raw else pd.Series([None] * len(raw), dtype=object)
        _reject_first(values.isna(), values, field, "Field required")
    for field in INSIGHT_IDS:
        _reject_first(~raw[field].map(lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)), raw[field], field, "must be an id string")
    dates = {}
    for field in ("date_start", "date_stop"):
        dates[field] = pd.to_datetime(raw[field].astype(str), format="%Y-%m-%d", errors="coerce")
        _reject_first(dates[field].isna(), raw[field], field, "must be a date YYYY-MM-DD")
    _reject_first(dates["date_stop"] != dates["date_start"], raw["date_stop"], "date_stop",
                  "insights must be daily (time_increment=1): date_stop must equal date_start")
    spend = pd.to_numeric(raw["spend"].astype(str), errors="coerce")
    _reject_first(~(spend >= 0) | ~np.isfinite(spend), raw["spend"], "spend", "must be a finite number >= 0")
    counts = {}
    for field in ("impressions", "clicks"):
        text = raw[field].astype(str)
        _reject_first(~text.str.fullmatch(r"\d+"), raw[field], field, "must be a whole number >= 0")
        counts[field] = text.astype("int64")
    # Meta reports spend it cannot place as country "unknown".
    _reject_first(
        ~raw["country"].map(lambda v: isinstance(v, str) and ((len(v) == 2 and v.isalpha()) or v == "unknown")),
        raw["country"], "country", "must be a two-letter country code (or \"unknown\")",
    )
    return pd.DataFrame(
        {
            **{field: raw[field].astype(str) for field in INSIGHT_IDS},
            "date": dates["date_start"],
            "country": raw["country"],
            "spend": spend.astype("float64"),
            **counts,
            "purchases": _purchase_totals(raw, "actions"),
            "revenue": _purchase_totals(raw, "action_values"),
        },
        columns=INSIGHT_COLUMNS,
    )


def _purchase_totals(raw: pd.DataFrame, field: str) -> np.ndarray:
    """The ``purchase`` entry of each row's ``field`` list (a missing list counts as zero)."""
    if field not in raw:
        return np.zeros(len(raw))
    column = raw[field]
    is_list = column.map(lambda v: isinstance(v, list))
    _reject_first(~is_list & column.notna(), column, field, "must be a list of {action_type, value}")
    entries = [(row, position, entry) for row, items in zip(range(len(column)), column) if isinstance(items, list) for position, entry in enumerate(items)]
    flat = pd.DataFrame(entries, columns=["row", "position", "entry"])
    well_formed = flat["entry"].map(lambda e: isinstance(e, dict) and "action_type" in e and "value" in e)
    if not well_formed.all():
        bad = flat[~well_formed].iloc[0]
        raise SnapshotError(f"snapshot rejected: insights[{bad['row']}].{field}[{bad['position']}]: needs action_type and value (got {bad['entry']!r})")
    purchases = flat[flat["entry"].map(lambda e: e["action_type"] == "purchase")]
    raw_values = purchases["entry"].map(lambda e: e["value"])
    values = pd.to_numeric(raw_values.astype(str), errors="coerce")
    bad = ~(values >= 0) | ~np.isfinite(values)
    if bad.any():
        first = purchases[bad.to_numpy()].iloc[0]
        raise SnapshotError(
            f"snapshot rejected: insights[{first['row']}].{field}[{first['position']}].value: must be a finite number >= 0 (got {first['entry']['value']!r})"
        )
    return np.bincount(purchases["row"].to_numpy(dtype=int), weights=values.to_numpy(), minlength=len(raw)).astype(float)


def _first_offender(frame: pd.DataFrame, bad: pd.Series, label: str, key: str, message: str) -> None:
    if bad.any():
        position = int(bad.to_numpy().nonzero()[0][0])
        index, row = frame.index[position], frame.iloc[position]
        ident = f" (id {row[key]})" if key in frame.columns else ""
        raise SnapshotError(f"snapshot rejected: {label}[{index}]{ident}.{message.format(**row.to_dict())}")


def _check_relations(s: AccountSnapshot) -> None:
    for label, frame in (
        ("campaigns", s.campaigns), ("adsets", s.adsets), ("ads", s.ads), ("creatives", s.creatives), ("ab_tests", s.ab_tests)
    ):
        _first_offender(frame, frame["id"].duplicated(), label, "id", "id: duplicate id {id}")

    _first_offender(
        s.adsets, ~s.adsets["campaign_id"].isin(s.campaigns["id"]), "adsets", "id",
        "campaign_id: campaign {campaign_id} does not exist",
    )
    cbo = s.adsets["campaign_id"].map(s.campaigns.set_index("id")["daily_budget"].notna())
    _first_offender(
        s.adsets, cbo.astype(bool) & s.adsets["daily_budget"].notna(), "adsets", "id",
        "daily_budget: must be null because campaign {campaign_id} holds the budget (CBO)",
    )
    _first_offender(s.ads, ~s.ads["adset_id"].isin(s.adsets["id"]), "ads", "id", "adset_id: ad set {adset_id} does not exist")
    adset_campaign = s.ads["adset_id"].map(s.adsets.set_index("id")["campaign_id"])
    _first_offender(
        s.ads, adset_campaign != s.ads["campaign_id"], "ads", "id",
        "campaign_id: {campaign_id} is not the campaign of ad set {adset_id}",
    )
    _first_offender(
        s.ads, ~s.ads["creative_id"].isin(s.creatives["id"]), "ads", "id",
        "creative.id: creative {creative_id} is not listed in creatives",
    )

    ins = s.insights
    _first_offender(ins, ~ins["ad_id"].isin(s.ads["id"]), "insights", "ad_id", "ad_id: ad {ad_id} does not exist")
    ad_parents = s.ads.set_index("id")[["adset_id", "campaign_id"]]
    _first_offender(
        ins, ins["adset_id"] != ins["ad_id"].map(ad_parents["adset_id"]), "insights", "ad_id",
        "adset_id: {adset_id} is not the ad set of ad {ad_id}",
    )
    _first_offender(
        ins, ins["campaign_id"] != ins["ad_id"].map(ad_parents["campaign_id"]), "insights", "ad_id",
        "campaign_id: {campaign_id} is not the campaign of ad {ad_id}",
    )
    _first_offender(
        ins, ins["clicks"] > ins["impressions"], "insights", "ad_id",
        "clicks: {clicks} clicks exceed {impressions} impressions",
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
        members, ~members["ad_ids"].isin(s.ads["id"]), "ab_tests", "id",
        "ad_ids: ad {ad_ids} does not exist",
    )


def load_snapshot_text(text: str) -> AccountSnapshot:
    """Parse a JSON text; invalid JSON is a SnapshotError too."""
    import json

    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot rejected: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_snapshot(document)
