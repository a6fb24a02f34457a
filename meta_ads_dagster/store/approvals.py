"""The queue of suggested actions: list, approve, reject, expire (SQLite or PostgreSQL).

Statuses of a queued row: ``pending`` → ``approved`` | ``rejected`` | ``expired`` |
``superseded``; an approved row becomes ``carried_out`` (executed by a later cycle, which logs the
execution as a row of its own), ``refused`` (re-validation said no), ``superseded`` or ``expired``.

A queued row is superseded as soon as its numbers are no longer true: a newer proposal for the same
entity and action, a write to its entity by any run or rollback, or an account that shows another
budget or status than the one it was proposed against. So ``pending`` never offers "100 → 80" for
a budget that is 90 now.

Times here are wall-clock UTC: an approval's deadline is about people, not the account's clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa

from ..engine.actions import written_entities
from ..engine.reconcile import stale_queued
from ..engine.snapshot import AccountSnapshot
from .ledger import QUEUE_STATUSES, WRITTEN_STATUSES, Ledger, actions_table

c = actions_table.c
OPEN_STATUSES = QUEUE_STATUSES


class ReviewError(ValueError):
    """A review names actions that cannot take that decision; nothing was changed."""


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def expire(ledger: Ledger, now: datetime | None = None) -> int:
    """Mark pending or approved rows past their deadline ``expired``; returns how many."""
    with ledger.engine.begin() as conn:
        result = conn.execute(
            actions_table.update()
            .where(c.status.in_(OPEN_STATUSES), c.expires_at.is_not(None), c.expires_at < (now or now_utc()))
            .values(status="expired")
        )
    return result.rowcount


def queue(ledger: Ledger, status: str = "pending", account_id: str | None = None) -> pd.DataFrame:
    """Rows of the queue in ``status`` (after expiring what is due), oldest first."""
    expire(ledger)
    condition = c.status == status
    if account_id:
        condition = condition & (c.account_id == account_id)
    return ledger.select(condition)


def decide(
    ledger: Ledger, action_ids: Iterable[str], decision: str, reviewer: str, reason: str | None, ttl_hours: float
) -> pd.DataFrame:
    """Approve or reject pending actions, all or none: an id that is not pending (unknown,
    already decided, expired) fails the whole review with a message naming it."""
    if decision not in ("approve", "reject"):
        raise ReviewError(f"decision: must be 'approve' or 'reject', got {decision!r}")
    if not (reviewer or "").strip():
        raise ReviewError("reviewer: a name is required (--by NAME)")
    if decision == "reject" and not (reason or "").strip():
        raise ReviewError("reason: a rejection needs a reason (--reason TEXT)")
    ids = list(dict.fromkeys(action_ids))
    if not ids:
        raise ReviewError("ids: name at least one action id")
    expire(ledger)
    now = now_utc()
    with ledger.engine.begin() as conn:
        rows = conn.execute(sa.select(c.action_id, c.status).where(c.action_id.in_(ids), c.status.in_(["pending", *_DECIDED]))).all()
        status_of = {}
        for row in rows:  # a pending row wins over an older decided one with the same id
            if status_of.get(row.action_id) != "pending":
                status_of[row.action_id] = row.status
        problems = [f"{i} ({status_of[i]})" if i in status_of else f"{i} (no such queued action)" for i in ids if status_of.get(i) != "pending"]
        if problems:
            raise ReviewError("ids: not pending, nothing changed: " + ", ".join(problems))
        ids = _with_unit_legs(conn, ids)
        conn.execute(
            actions_table.update()
            .where(c.action_id.in_(ids), c.status == "pending")
            .values(
                status="approved" if decision == "approve" else "rejected",
                decided_by=reviewer.strip(),
                decided_at=now,
                decision_reason=(reason or "").strip() or None,
                step="review",
                # An approval has its own deadline: carried out by a cycle within the TTL, or expired.
                expires_at=now + timedelta(hours=ttl_hours),
            )
        )
    return ledger.select(c.action_id.in_(ids) & c.status.in_(["approved", "rejected"]))


_DECIDED = ("approved", "rejected", "expired", "superseded", "carried_out", "refused")


def _with_unit_legs(conn: sa.Connection, ids: list[str]) -> list[str]:
    """``ids`` and every pending leg of the reallocations they name: a reallocation is one
    decision, approved or rejected whole (its legs share ``unit_id`` in ``details``)."""
    pending = conn.execute(sa.select(c.action_id, c.details).where(c.status == "pending", c.details.like('%"unit_id"%'))).all()
    unit_of = {row.action_id: json.loads(row.details).get("unit_id") for row in pending}
    units = {unit_of[i] for i in ids if unit_of.get(i)}
    return list(dict.fromkeys([*ids, *(i for i, unit in unit_of.items() if unit in units)]))


def close_approvals(ledger: Ledger, outcomes: dict[str, tuple[str, str]]) -> None:
    """After a cycle dealt with approved actions: action id → (``carried_out``|``refused``|``superseded``, why)."""
    with ledger.engine.begin() as conn:
        for action_id, (status, why) in outcomes.items():
            row = conn.execute(sa.select(c.row_id, c.reasons).where(c.action_id == action_id, c.status == "approved")).first()
            if row is None:
                continue
            conn.execute(
                actions_table.update().where(c.row_id == row.row_id)
                .values(status=status, reasons=json.dumps([*json.loads(row.reasons), why]))
            )



def supersede_stale(ledger: Ledger, snapshot: AccountSnapshot) -> list[str]:
    """Supersede the account's queued rows that ``snapshot`` no longer bears out; returns a line each."""
    queued = ledger.select((c.account_id == snapshot.account_id) & c.status.in_(QUEUE_STATUSES))
    stale = stale_queued(queued, snapshot)
    ledger.supersede((r.cycle_run_id, r.action_id, r.why) for r in stale.itertuples(index=False))
    return [f"{r.status} {r.type} {r.entity_type} {r.entity_id} ({r.action_id}) {r.why}" for r in stale.itertuples(index=False)]


def supersede_written_by(ledger: Ledger, account_id: str, run_id: str) -> list[str]:
    """Supersede the account's queued rows (of other runs) on entities run ``run_id`` wrote (a
    cycle or a rollback): they were proposed against numbers that are gone. The reason names the
    change. A line each."""
    written = ledger.select((c.cycle_run_id == run_id) & c.status.in_(WRITTEN_STATUSES))
    queued = ledger.select((c.account_id == account_id) & (c.cycle_run_id != run_id) & c.status.in_(QUEUE_STATUSES))
    if written.empty or queued.empty:
        return []
    change = {}
    for entity in written_entities(written).itertuples(index=False):
        row = written.iloc[entity.position]
        key = (entity.entity_type, entity.entity_id)
        if row.type in ("scale_up", "scale_down") and key == (row.entity_type, row.entity_id):
            per_unit = row.minor_per_unit or 100
            change[key] = f"changed its budget {row.current_budget_minor / per_unit:,.2f} → {row.new_budget_minor / per_unit:,.2f}"
        elif row.type == "publish_winner" and key != (row.entity_type, row.entity_id):
            change[key] = "paused it (A/B loser)"
        else:
            change[key] = {"pause": "paused it", "resume": "resumed it", "create_variant": "made a creative variant of it"}.get(row.type, f"wrote it ({row.type})")
    lines, rows = [], []
    for entity in written_entities(queued).itertuples(index=False):
        key = (entity.entity_type, entity.entity_id)
        if key in change and entity.position not in {position for position, _ in rows}:
            rows.append((entity.position, f"superseded: run {run_id} {change[key]} after this was proposed"))
    ledger.supersede((queued.iloc[p].cycle_run_id, queued.iloc[p].action_id, why) for p, why in rows)
    for position, why in rows:
        r = queued.iloc[position]
        lines.append(f"{r.status} {r.type} {r.entity_type} {r.entity_id} ({r.action_id}) {why}")
    return lines


def purge(ledger: Ledger, retention_days: int, now: datetime | None = None) -> int:
    """Delete ledger rows recorded more than ``retention_days`` ago (AUDIT_RETENTION_DAYS);
    open rows (pending, approved, executing, unknown) are kept whatever their age."""
    cutoff = (now or now_utc()) - timedelta(days=retention_days)
    with ledger.engine.begin() as conn:
        result = conn.execute(
            actions_table.delete().where(c.recorded_at < cutoff, c.status.not_in(["pending", "approved", "executing", "unknown"]))
        )
    return result.rowcount
