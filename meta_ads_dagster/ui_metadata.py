"""What the Dagster UI shows of a cycle: tables with a schema, and numbers it plots over cycles.

Plain functions from the engine's frames (or the ledger's rows) to Dagster metadata values; the
assets and ops only attach what they return. A table is a ``TableMetadataValue`` with a
``TableSchema``, which the UI renders as a table with typed columns (a markdown string would hide
behind a link, with "nan" in empty cells). Empty cells are empty: a missing text is "", a missing
number is None. Money is in the account's currency and says which.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from .engine.actions import optional_float, pct
from .engine.snapshot import AccountSnapshot

ROW_COUNT = "dagster/row_count"  # Dagster's own key: the UI shows it as the asset's row count
# Between two reasons: a reason may itself hold "; " ("also proposed by spike_up; overruled").
REASON_SEPARATOR = " | "
CAMPAIGNS_EACH_END = 5  # campaigns_by_roas lists the best and the worst this many

ACTION_SCHEMA = TableSchema(
    columns=[
        TableColumn("id", "string", "the action's id (meta-ads approve ID)"),
        TableColumn("verdict", "string", "executed, queued, policy_blocked, safety_blocked, deferred, superseded or failed"),
        TableColumn("type", "string"),
        TableColumn("campaign", "string", "campaign name"),
        TableColumn("ad_set", "string", "ad set name (empty when the action is on a campaign)"),
        TableColumn("ad", "string", "ad name (empty unless the action is on an ad)"),
        TableColumn("change", "string", "before → after, money in the account's currency"),
        TableColumn("confidence", "float", "statistical confidence in the entity's 7-day ROAS (0–1)"),
        TableColumn("reasons", "string", "every reason, in the order they were given; the last states the verdict"),
    ]
)

PENDING_SCHEMA = TableSchema(
    columns=[
        TableColumn("id", "string", "the action's id: meta-ads approve ID --by NAME"),
        TableColumn("status", "string", "pending (waits for a person) or approved (waits for the next cycle)"),
        TableColumn("type", "string"),
        TableColumn("entity", "string", "level, id and name"),
        TableColumn("change", "string", "before → after, money in the account's currency"),
        TableColumn("confidence", "float"),
        TableColumn("reasons", "string"),
        TableColumn("expires", "string", "when the approval lapses (UTC)"),
    ]
)

AB_TEST_SCHEMA = TableSchema(
    columns=[
        TableColumn("test", "string"),
        TableColumn("ad", "string", "one arm: ad name and id"),
        TableColumn("p_best", "string", "the arm's probability to be the best (purchases per impression)"),
        TableColumn("best", "bool", "the arm most likely to be best"),
        TableColumn("status", "string", "winner, no_clear_winner, insufficient_data, too_young or finished"),
        TableColumn("age_hours", "float", "hours the arms have been compared"),
        TableColumn("min_arm_impressions", "int", "impressions of the test's smallest arm"),
    ]
)

LEVELS = {"campaign": "campaign", "adset": "ad set", "ad": "ad"}


def _text(value) -> str:
    """A cell as text, "" where it is missing (never "nan" or "None")."""
    return "" if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)) else str(value)


def money(minor, minor_per_unit: int) -> float | None:
    """An integer minor-unit amount in major units, None where it is missing."""
    return None if minor is None or pd.isna(minor) else float(minor) / minor_per_unit


def change_text(action_type: str, before_minor, after_minor, minor_per_unit: int, currency: str, loser_ad_ids=None) -> str:
    """What an action changes, before → after: "USD 500.00 → 600.00 (+20%)" for a budget,
    "ACTIVE → PAUSED" for a pause, the ads paused for an A/B winner."""
    before, after = money(before_minor, minor_per_unit), money(after_minor, minor_per_unit)
    if before is not None and after is not None:
        digits = 0 if minor_per_unit == 1 else 2
        step = f" ({'+' if after >= before else '−'}{pct(abs(after / before - 1))})" if before else ""
        return f"{currency} {before:,.{digits}f} → {after:,.{digits}f}{step}"
    if action_type == "pause":
        return "ACTIVE → PAUSED"
    if action_type == "publish_winner":
        losers = [str(ad) for ad in loser_ad_ids] if isinstance(loser_ad_ids, (list, tuple)) else []
        return "keeps this ad; " + (f"pauses ad {', '.join(losers)}" if losers else "pauses the other arms")
    if action_type == "create_variant":
        return "adds a PAUSED copy of the ad to vary"
    return ""


def entity_names(snapshot: AccountSnapshot) -> dict[str, pd.Series]:
    """Id → name for the account's campaigns, ad sets and ads."""
    return {
        level: frame.set_index("id")["name"] if not frame.empty else pd.Series(dtype=object)
        for level, frame in (("campaign", snapshot.campaigns), ("adset", snapshot.adsets), ("ad", snapshot.ads))
    }


def action_table(actions: pd.DataFrame, snapshot: AccountSnapshot) -> MetadataValue:
    """The cycle's actions, one row each, in decision order. The action is on the deepest level
    whose name is filled in (campaign, ad set, ad); its first reason names the rule."""
    names = entity_names(snapshot)
    records = []
    for row in actions.itertuples(index=False):
        adset_id = row.adset_id if row.entity_type != "campaign" else None
        records.append(TableRecord({
            "id": row.id,
            "verdict": row.verdict,
            "type": row.type,
            "campaign": _text(names["campaign"].get(row.campaign_id)),
            "ad_set": _text(names["adset"].get(adset_id)) if adset_id is not None else "",
            "ad": _text(names["ad"].get(row.entity_id)) if row.entity_type == "ad" else "",
            "change": change_text(row.type, row.current_budget_minor, row.new_budget_minor, int(row.minor_per_unit), snapshot.currency, row.loser_ad_ids),
            "confidence": optional_float(row.confidence, 3),
            "reasons": REASON_SEPARATOR.join(row.reasons),
        }))
    return MetadataValue.table(records, ACTION_SCHEMA)


def pending_table(rows: pd.DataFrame) -> MetadataValue:
    """Ledger rows that wait for a person (pending) or for the next cycle (approved), oldest first."""
    records = []
    for row in rows.itertuples(index=False):
        per_unit = int(row.minor_per_unit) if not pd.isna(row.minor_per_unit) else 100
        name = _text(row.entity_name)
        expires = pd.Timestamp(row.expires_at) if row.expires_at is not None and not pd.isna(row.expires_at) else None
        if expires is not None:
            expires = expires.tz_localize("UTC") if expires.tzinfo is None else expires.tz_convert("UTC")
        records.append(TableRecord({
            "id": row.action_id,
            "status": row.status,
            "type": row.type,
            "entity": f"{LEVELS.get(row.entity_type, row.entity_type)} {row.entity_id}" + (f" '{name}'" if name else ""),
            "change": change_text(row.type, row.current_budget_minor, row.new_budget_minor, per_unit, _text(row.currency), row.loser_ad_ids),
            "confidence": optional_float(row.confidence, 3),
            "reasons": REASON_SEPARATOR.join(row.reasons),
            "expires": expires.strftime("%Y-%m-%d %H:%M UTC") if expires is not None else "",
        }))
    return MetadataValue.table(records, PENDING_SCHEMA)


def campaign_ranking_schema(currency: str) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn("rank", "int", "1 = the highest 7-day ROAS among campaigns that spent"),
            TableColumn("campaign", "string"),
            TableColumn("id", "string"),
            TableColumn("status", "string"),
            TableColumn("roas_7d", "float", "7-day revenue / spend"),
            TableColumn("confidence", "float", "statistical confidence in the ROAS (0–1)"),
            TableColumn("spend_7d", "float", f"7-day spend, {currency}"),
            TableColumn("revenue_7d", "float", f"7-day revenue, {currency}"),
            TableColumn("spend_today", "float", f"spend today, {currency}"),
        ]
    )


def campaign_ranking(metrics: pd.DataFrame, currency: str, each_end: int = CAMPAIGNS_EACH_END) -> MetadataValue:
    """Campaigns that spent in the last 7 days ranked by 7-day ROAS: the best ``each_end`` and the
    worst ``each_end`` (every one when there are no more than twice that); the rank column shows
    where the middle was left out."""
    campaigns = metrics[(metrics["entity_type"] == "campaign") & (metrics["spend_7d"] > 0)]
    ranked = campaigns.sort_values(["roas_7d", "spend_7d"], ascending=[False, False], kind="stable").reset_index(drop=True)
    ranked["rank"] = range(1, len(ranked) + 1)
    if len(ranked) > 2 * each_end:
        ranked = pd.concat([ranked.head(each_end), ranked.tail(each_end)])
    records = [
        TableRecord({
            "rank": int(row.rank),
            "campaign": _text(row.name),
            "id": row.entity_id,
            "status": _text(row.status),
            "roas_7d": optional_float(row.roas_7d, 2),
            "confidence": optional_float(row.confidence, 3),
            "spend_7d": optional_float(row.spend_7d, 2),
            "revenue_7d": optional_float(row.revenue_7d, 2),
            "spend_today": optional_float(row.spend_today, 2),
        })
        for row in ranked.itertuples(index=False)
    ]
    return MetadataValue.table(records, campaign_ranking_schema(currency))


def ab_test_table(tests: pd.DataFrame, ad_names: pd.Series) -> MetadataValue:
    """One row per arm of each A/B test: its probability to be best as a percentage."""
    records = []
    for test in tests.itertuples(index=False):
        for ad_id, p_best in zip(test.ad_ids, test.arm_prob_best):
            name = _text(ad_names.get(ad_id))
            records.append(TableRecord({
                "test": test.test_id,
                "ad": f"{name} ({ad_id})" if name else str(ad_id),
                "p_best": f"{p_best:.1%}",
                "best": bool(ad_id == test.winner_ad_id),
                "status": test.status,
                "age_hours": optional_float(test.age_hours, 1),
                "min_arm_impressions": int(test.min_arm_impressions),
            }))
    return MetadataValue.table(records, AB_TEST_SCHEMA)


def cycle_numbers(spend_today: float, daily_cap: float, started_at: str, completed_at: str) -> dict[str, float]:
    """Numbers of one cycle the UI plots over an account's cycles, besides the stats counters:
    today's spend as a percentage of the account's daily cap (MAX_DAILY_SPEND_USD, after its
    overrides) and how long the cycle took, from the run's start to its finalize step."""
    duration = datetime.fromisoformat(completed_at) - datetime.fromisoformat(started_at)
    return {
        "spend_vs_cap_pct": round(100.0 * spend_today / daily_cap, 2),
        "cycle_duration_seconds": round(duration.total_seconds(), 2),
    }
