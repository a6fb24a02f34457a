"""The backtest's output: one row per action of every replayed day, and the totals.

Money is in the account currency's major units. ``spend_moved_per_day`` is what the action would
move each day from then on: after − before for a budget change, minus the entity's trailing
daily spend (its 7-day spend / 7) for a pause; none for an A/B decision or a creative variant,
which move delivery inside an ad set, not its budget. The totals add up only what the replay
carried out (``applied``).
"""

from __future__ import annotations

import pandas as pd

from ..engine.actions import BUDGET_TYPES, optional_float
from ..engine.metrics import WINDOW_DAYS
from ..engine.snapshot import AccountSnapshot
from ..settings import Settings
from .replay import replay

# The fields a person scans first (the table); the JSON rows add the action id and the reasons.
REPORT_COLUMNS = (
    "day", "type", "entity_type", "entity_id", "entity_name", "rule", "budget_before", "budget_after",
    "spend_moved_per_day", "confidence", "verdict", "applied",
)

CAVEAT = (
    "the insights are what happened under the real budgets: the backtest shows what the rules would have "
    "done and when, not how delivery would have answered (meta-ads simulate models that)"
)


def _numbers(column: pd.Series) -> pd.Series:
    # Days stacked together leave object columns holding pd.NA, which astype(float) refuses.
    return pd.to_numeric(column, errors="coerce").astype(float)


def spend_moved_per_day(actions: pd.DataFrame) -> pd.Series:
    """Per action, the daily spend it moves (see the module docstring); NaN where none."""
    budget_change = (_numbers(actions["new_budget_minor"]) - _numbers(actions["current_budget_minor"])) / _numbers(actions["minor_per_unit"])
    paused_spend = -_numbers(actions["spend_7d"]) / WINDOW_DAYS
    return budget_change.where(actions["type"].isin(BUDGET_TYPES), paused_spend.where(actions["type"].eq("pause")))


def report_rows(actions: pd.DataFrame, snapshot: AccountSnapshot) -> list[dict]:
    """The replayed actions in the output's shape, day by day."""
    moved = spend_moved_per_day(actions)
    minor = snapshot.minor_per_unit
    return [
        {
            "day": row.day.date().isoformat(),
            "decided_at": row.decided_at.tz_convert(snapshot.timezone_name).isoformat(),
            "id": row.id,
            "type": row.type,
            "entity_type": row.entity_type,
            "entity_id": row.entity_id,
            "entity_name": row.entity_name,
            "rule": row.rule,
            "budget_before": optional_float(row.current_budget_minor / minor, 2),
            "budget_after": optional_float(row.new_budget_minor / minor, 2),
            "spend_moved_per_day": optional_float(change, 2),
            "confidence": optional_float(row.confidence, 4),
            "verdict": row.verdict,
            "applied": bool(row.applied),
            "reasons": list(row.reasons),
        }
        for row, change in zip(actions.itertuples(index=False), moved)
    ]


def totals(rows: list[dict]) -> dict:
    """Actions counted by type and verdict, how many were applied, and the daily spend the
    applied ones moved up and down."""
    by_type: dict[str, dict[str, int]] = {}
    for row in rows:
        verdicts = by_type.setdefault(row["type"], {})
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    moved = [row["spend_moved_per_day"] for row in rows if row["applied"] and row["spend_moved_per_day"] is not None]
    return {
        "actions": len(rows),
        "applied": sum(row["applied"] for row in rows),
        "by_type_and_verdict": {kind: dict(sorted(verdicts.items())) for kind, verdicts in sorted(by_type.items())},
        "daily_spend_moved_up": round(sum(m for m in moved if m > 0), 2),
        "daily_spend_moved_down": round(sum(m for m in moved if m < 0), 2),
    }


def backtest_document(snapshot: AccountSnapshot, settings: Settings, days: int | None = None, approve_all: bool = False) -> dict:
    """``meta-ads backtest``: the replay of the snapshot's last ``days`` days as one document."""
    actions, replayed_days = replay(snapshot, settings, days, approve_all)
    rows = report_rows(actions, snapshot)
    return {
        "account": snapshot.account_id,
        "currency": snapshot.currency,
        "as_of": snapshot.as_of.isoformat(),
        "mode": settings.meta_auto_mode,
        "approve_all": approve_all,
        "days": [
            {"day": day.day.date().isoformat(), "decided_at": day.decided_at.tz_convert(snapshot.timezone_name).isoformat(),
             "campaigns_evaluated": int(day.campaigns_evaluated)}
            for day in replayed_days.itertuples(index=False)
        ],
        "actions": rows,
        "totals": totals(rows),
        "caveat": CAVEAT,
    }
