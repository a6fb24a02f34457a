"""The action ledger: every action of every cycle with its verdict, reasons and status.

Plain SQLAlchemy Core, no Dagster: SQLite by default, PostgreSQL in production (give the driver
explicitly, ``postgresql+psycopg2://``: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3,
which is not installed). It is what the cooldown reads ("when was this entity last changed?") and
what the queue of suggested actions is made of.

A cycle's rows are written in one transaction before any Meta write, with executable actions as
``executing``; each is then marked ``executed`` or ``failed``. A crash in between leaves
``executing`` rows behind: evidence that a write may have gone out, never a silent gap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa

from ..engine.actions import optional_float, optional_int

metadata = sa.MetaData()

actions_table = sa.Table(
    "meta_actions",
    metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.String(64), nullable=False),
    sa.Column("cycle_run_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("entity_type", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("proposed_pct", sa.Float),
    sa.Column("amount_pct", sa.Float),
    sa.Column("current_budget_minor", sa.BigInteger),
    sa.Column("new_budget_minor", sa.BigInteger),
    sa.Column("confidence", sa.Float),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("details", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("executed_at", sa.DateTime(timezone=True)),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.UniqueConstraint("cycle_run_id", "action_id", name="uq_meta_actions_cycle_action"),
    sa.Index("ix_meta_actions_entity", "account_id", "entity_type", "entity_id"),
)

# status of a row: pending (queued for a human), executing (write under way), done, failed,
# unknown (sent, no answer: may have landed), blocked, superseded (a newer proposal replaced it)
STATUS_BY_VERDICT = {
    "queued": "pending",
    "executed": "executing",
    "policy_blocked": "blocked",
    "safety_blocked": "blocked",
    "failed": "failed",
}


def _utc(value) -> datetime:
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


class Ledger:
    def __init__(self, database_url: str):
        self.engine = sa.create_engine(database_url, future=True)
        metadata.create_all(self.engine)

    def record_cycle(self, actions: pd.DataFrame, cycle_run_id: str, account_id: str, as_of, actor: str = "autonomous") -> None:
        """Write one cycle's actions in one transaction (all or nothing)."""
        now = datetime.now(timezone.utc)
        rows = [
            {
                "action_id": a.id,
                "cycle_run_id": cycle_run_id,
                "account_id": account_id,
                "as_of": _utc(as_of),
                "recorded_at": now,
                "type": a.type,
                "entity_type": a.entity_type,
                "entity_id": a.entity_id,
                "rule": a.rule,
                "proposed_pct": optional_float(a.proposed_pct),
                "amount_pct": optional_float(a.amount_pct),
                "current_budget_minor": optional_int(a.current_budget_minor),
                "new_budget_minor": optional_int(a.new_budget_minor),
                "confidence": optional_float(a.confidence),
                "verdict": a.verdict,
                "status": STATUS_BY_VERDICT[a.verdict],
                "reasons": json.dumps(list(a.reasons)),
                "details": json.dumps({"loser_ad_ids": list(a.loser_ad_ids)}) if isinstance(a.loser_ad_ids, (list, tuple)) else None,
                "actor": actor,
            }
            for a in actions.itertuples(index=False)
        ]
        if not rows:
            return
        queued = {(r["entity_type"], r["entity_id"], r["type"]) for r in rows if r["status"] == "pending"}
        c = actions_table.c
        with self.engine.begin() as conn:
            if queued:
                # A newer proposal for the same entity and action replaces the older one in the
                # queue: a reviewer never sees (or approves) a stale duplicate.
                conn.execute(
                    actions_table.update()
                    .where(c.account_id == account_id, c.status == "pending", sa.tuple_(c.entity_type, c.entity_id, c.type).in_(sorted(queued)))
                    .values(status="superseded")
                )
            conn.execute(actions_table.insert(), rows)

    def mark_outcome(self, cycle_run_id: str, action_id: str, executed_at, error: str | None = None, status: str | None = None) -> None:
        """After Meta answered (or did not): ``executed`` → status done; ``failed`` with the error;
        ``unknown`` (sent, no answer) keeps the error and counts for the cooldown, since it may have landed."""
        status = status or ("executed" if error is None else "failed")
        values = {
            "executed": {"verdict": "executed", "status": "done", "executed_at": _utc(executed_at)},
            "failed": {"verdict": "failed", "status": "failed", "error_message": error},
            "unknown": {"verdict": "failed", "status": "unknown", "error_message": error, "executed_at": _utc(executed_at)},
        }[status]
        with self.engine.begin() as conn:
            conn.execute(
                actions_table.update()
                .where(actions_table.c.cycle_run_id == cycle_run_id, actions_table.c.action_id == action_id)
                .values(**values)
            )

    def last_actions(self, account_id: str) -> pd.DataFrame:
        """Latest execution per entity (what the 24 h cooldown measures from).

        Rows still ``executing`` or ``unknown`` count too: a write whose outcome is unknown may have landed.
        """
        c = actions_table.c
        when = sa.func.coalesce(c.executed_at, c.as_of)
        query = (
            sa.select(c.entity_type, c.entity_id, sa.func.max(when).label("executed_at"))
            .where(c.account_id == account_id, c.status.in_(["done", "executing", "unknown"]))
            .group_by(c.entity_type, c.entity_id)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["entity_type", "entity_id", "executed_at"])
        frame["executed_at"] = pd.to_datetime(frame["executed_at"], utc=True)
        return frame

    def already_sent(self, account_id: str, action_ids: Iterable[str]) -> dict[str, str]:
        """Action ids (deterministic: snapshot time, entity, type) whose write was already sent,
        done or of unknown outcome, by any run → that run's id. A re-executed step must not send
        them again."""
        ids = list(action_ids)
        if not ids:
            return {}
        c = actions_table.c
        query = sa.select(c.action_id, c.cycle_run_id).where(
            c.account_id == account_id, c.action_id.in_(ids), c.status.in_(["done", "executing", "unknown"])
        )
        with self.engine.connect() as conn:
            return {row.action_id: row.cycle_run_id for row in conn.execute(query)}

    def open_writes(self, account_id: str, other_than_run: str) -> pd.DataFrame:
        """Writes whose outcome is open: ``unknown``, or ``executing`` left by another (dead) run."""
        c = actions_table.c
        frame = self._select(
            (c.account_id == account_id) & (c.cycle_run_id != other_than_run) & c.status.in_(["unknown", "executing"])
        )
        frame["loser_ad_ids"] = frame["details"].map(lambda d: json.loads(d).get("loser_ad_ids") if isinstance(d, str) else None)
        return frame

    def settle(self, cycle_run_id: str, action_id: str, landed: bool, note: str) -> None:
        """Close an open write after reading the account: ``done`` if it landed, else ``failed``."""
        values = (
            {"verdict": "executed", "status": "done"}
            if landed
            else {"verdict": "failed", "status": "failed"}
        )
        c = actions_table.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(c.reasons).where(c.cycle_run_id == cycle_run_id, c.action_id == action_id)).one()
            reasons = [*json.loads(row.reasons), f"reconciled: {note}"]
            conn.execute(
                actions_table.update()
                .where(c.cycle_run_id == cycle_run_id, c.action_id == action_id)
                .values(**values, reasons=json.dumps(reasons))
            )

    def cycle_actions(self, cycle_run_id: str) -> pd.DataFrame:
        return self._select(actions_table.c.cycle_run_id == cycle_run_id)

    def pending(self, account_id: str | None = None) -> pd.DataFrame:
        condition = actions_table.c.status == "pending"
        if account_id:
            condition = condition & (actions_table.c.account_id == account_id)
        return self._select(condition)

    def _select(self, condition) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(actions_table).where(condition).order_by(actions_table.c.row_id)).mappings().all()
        frame = pd.DataFrame(rows, columns=[col.name for col in actions_table.columns])
        frame["reasons"] = frame["reasons"].map(json.loads)
        return frame

    def dispose(self) -> None:
        self.engine.dispose()


def entity_history(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of (entity_type, entity_id, executed_at) histories: the ledger's and a snapshot's."""
    usable = [f[["entity_type", "entity_id", "executed_at"]] for f in frames if not f.empty]
    if not usable:
        return pd.DataFrame(columns=["entity_type", "entity_id", "executed_at"])
    merged = pd.concat(usable, ignore_index=True)
    merged["executed_at"] = pd.to_datetime(merged["executed_at"], utc=True)
    return merged
