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

import contextlib
import functools
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from ..engine.actions import optional_float, optional_int
from ..engine.history import history_frame
from .filelock import file_lock

if TYPE_CHECKING:
    from alembic.config import Config

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
    # --- revision 0002: audit fields, approvals, rollback -----------------------------------------
    sa.Column("step", sa.String(32)),  # the seed's log field: route, execute, review, rollback
    sa.Column("input_snapshot", sa.Text),  # JSON: what the action was decided from
    sa.Column("output_snapshot", sa.Text),  # JSON: what Meta answered
    sa.Column("success", sa.Boolean),
    sa.Column("minor_per_unit", sa.Integer),
    sa.Column("prior_budget_minor", sa.BigInteger),  # the entity before the write (rollback)
    sa.Column("prior_status", sa.String(16)),
    sa.Column("decided_by", sa.String(64)),  # reviewer of a queued action
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decision_reason", sa.Text),
    sa.Column("expires_at", sa.DateTime(timezone=True)),  # a pending approval's deadline
    sa.Column("rollback_of_run", sa.String(64)),  # set on the rows of a rollback
    sa.UniqueConstraint("cycle_run_id", "action_id", name="uq_meta_actions_cycle_action"),
    sa.Index("ix_meta_actions_entity", "account_id", "entity_type", "entity_id"),
    sa.Index("ix_meta_actions_status", "account_id", "status"),
)

# One row per account while a cycle (or rollback) is writing to it: two never write at once.
cycle_locks_table = sa.Table(
    "meta_cycle_locks",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    # revision 0004: the holder's process, so a lock whose process is gone is taken over at once
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),
)

# When each campaign was last evaluated by a tick (revision 0003): the per-tick scope rotates on it.
campaign_evaluations_table = sa.Table(
    "meta_campaign_evaluations",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
)

# The operator's stored controls (revision 0005; store/controls.py): one row per change, never
# updated, so the newest row of an account and control is its state and the rest its history.
automation_controls_table = sa.Table(
    "meta_automation_controls",
    metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("control", sa.String(16), nullable=False),  # mode | automation
    sa.Column("value", sa.String(16), nullable=False),  # suggest | auto; paused | running
    sa.Column("changed_by", sa.String(64), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_meta_automation_controls_account", "account_id", "control"),
)

# status of a row: pending (queued for a human), executing (write under way), done, failed,
# unknown (sent, no answer: may have landed), blocked, deferred (not written this cycle: waits),
# superseded (another action replaced it, or the numbers it was proposed with are no longer true)
STATUS_BY_VERDICT = {
    "queued": "pending",
    "executed": "executing",
    "policy_blocked": "blocked",
    "safety_blocked": "blocked",
    "deferred": "deferred",
    "superseded": "superseded",
    "failed": "failed",
}
WRITTEN_STATUSES = ("done", "executing", "unknown")  # sent, or may have been
OPEN_STATUSES = ("executing", "unknown")  # sent or being sent, outcome not known yet
QUEUE_STATUSES = ("pending", "approved")


def _text(value) -> str | None:
    """An optional text cell of an action frame (missing: None, NaN or absent)."""
    return value if isinstance(value, str) and value else None


def _utc(value) -> datetime:
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


# --- schema: Alembic migrations in store/migrations (no alembic.ini, the Config is built here) ---

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# Columns revision 0002 added: a database made by ``metadata.create_all`` (before the migrations)
# without them is at 0001, with all of them (and meta_cycle_locks) at 0002.
_COLUMNS_OF_0002 = frozenset(
    {"step", "input_snapshot", "output_snapshot", "success", "minor_per_unit", "prior_budget_minor", "prior_status",
     "decided_by", "decided_at", "decision_reason", "expires_at", "rollback_of_run"}
)  # fmt: skip
_PG_SCHEMA_LOCK = 0x6D6574615F616473  # pg_advisory_xact_lock key: one upgrader at a time
# Our own revision table: Dagster's PostgreSQL storage keeps *its* revision in Alembic's default
# ``alembic_version``, and the ledger may share a database and schema with it.
VERSION_TABLE = "meta_ads_alembic_version"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's Config for the ledger tables; env.py runs the migrations on ``connection``."""
    # Alembic (with Mako and Pygments) is imported where the schema is checked, not when the
    # module loads: loading the Dagster definitions imports this module (issue 14's start time).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _legacy_revision(conn: sa.Connection) -> str | None:
    """The revision of tables made by ``metadata.create_all`` (no version table), None if empty."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("meta_actions"):
        return None
    present = {col["name"] for col in inspector.get_columns("meta_actions")} & _COLUMNS_OF_0002
    if not present:
        return "0001"
    if present == _COLUMNS_OF_0002 and inspector.has_table("meta_cycle_locks"):
        return "0002"
    raise RuntimeError(f"meta_actions has no {VERSION_TABLE} and only part of revision 0002 ({sorted(present)}): fix it by hand")


def _migration_lock(engine: sa.Engine) -> contextlib.AbstractContextManager:
    """One migrator at a time on a SQLite file: a lock file beside it. SQLite runs DDL outside
    the transaction, so two processes on a new file both created the tables ("table meta_actions
    already exists"). PostgreSQL takes an advisory lock inside the transaction instead; an
    in-memory SQLite database belongs to one process."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return contextlib.nullcontext()
    path = Path(database)
    return file_lock(path.with_name(path.name + ".migrate.lock"))


def upgrade_schema(engine_or_url: sa.Engine | sa.URL | str) -> None:
    """Bring the ledger tables to the newest revision, in one transaction, one migrator at a time
    (PostgreSQL: an advisory lock; SQLite: a lock file beside the database).

    Cheap when already there (one read of the version table). Tables made by the old
    ``metadata.create_all`` (no version table) are stamped with their revision first.
    """
    engine = engine_or_url if isinstance(engine_or_url, sa.Engine) else sa.create_engine(engine_or_url)
    try:
        with engine.connect() as conn:
            if _current_revision(conn) == _head_revision():
                return
        with _migration_lock(engine), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            current = _current_revision(conn)  # again, under the lock
            if current == _head_revision():
                return
            from alembic import command

            config = alembic_config(conn)
            if current is None and (legacy := _legacy_revision(conn)) is not None:
                command.stamp(config, legacy)
            command.upgrade(config, "head")
    finally:
        if engine is not engine_or_url:
            engine.dispose()


class Ledger:
    def __init__(self, database_url: str):
        self.engine = sa.create_engine(database_url, future=True)
        upgrade_schema(self.engine)

    def record_cycle(
        self, actions: pd.DataFrame, cycle_run_id: str, account_id: str, as_of,
        actor: str = "autonomous", approval_ttl_hours: float | None = None, currency: str | None = None,
    ) -> None:
        """Write one cycle's actions in one transaction (all or nothing), before any Meta write.

        Optional action columns: ``actor`` (per row, e.g. the reviewer of an approved action),
        ``entity_name``, ``undoes`` (a rollback's restore: the action it undoes),
        ``prior_status`` and ``prior_loser_statuses`` (the state a rollback restores; a budget's
        prior value is ``current_budget_minor``). Queued rows get a deadline ``approval_ttl_hours``
        from now.
        """
        now = datetime.now(timezone.utc)
        deadline = now + timedelta(hours=approval_ttl_hours) if approval_ttl_hours else None
        rows = []
        for a in actions.itertuples(index=False):
            status = STATUS_BY_VERDICT[a.verdict]
            losers = list(a.loser_ad_ids) if isinstance(a.loser_ad_ids, (list, tuple)) else None
            details = {
                key: value
                for key, value in (("loser_ad_ids", losers), ("prior_loser_statuses", getattr(a, "prior_loser_statuses", None)))
                if isinstance(value, (list, dict)) and value
            } | {  # what a person reading the queue needs: the entity's name, the money's currency
                key: value for key, value in (("entity_name", _text(getattr(a, "entity_name", None))), ("currency", currency),
                                              ("undoes", _text(getattr(a, "undoes", None))),
                                              # a reallocation's legs share it: one decision, its legs
                                              ("unit_id", _text(getattr(a, "unit_id", None)))) if value
            }
            rows.append(
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
                    "status": status,
                    "reasons": json.dumps(list(a.reasons)),
                    "details": json.dumps(details) if details else None,
                    "actor": _text(getattr(a, "actor", None)) or actor,
                    "step": "execute" if a.verdict == "executed" else "route",
                    "input_snapshot": json.dumps(
                        {"rule": a.rule, "roas_7d": optional_float(a.roas_7d, 4), "confidence": optional_float(a.confidence, 4),
                         "spend_7d": optional_float(a.spend_7d, 2), "current_budget_minor": optional_int(a.current_budget_minor)}
                    ),
                    "minor_per_unit": optional_int(a.minor_per_unit),
                    "prior_budget_minor": optional_int(a.current_budget_minor),
                    "prior_status": _text(getattr(a, "prior_status", None)),
                    "expires_at": deadline if status == "pending" else None,
                    "rollback_of_run": _text(getattr(a, "rollback_of_run", None)),
                }
            )
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

    def mark_outcome(
        self, cycle_run_id: str, action_id: str, executed_at, error: str | None = None, status: str | None = None,
        output: dict | None = None,
    ) -> None:
        """After Meta answered (or did not): ``executed`` → status done; ``failed`` with the error;
        ``unknown`` (sent, no answer) keeps the error and counts for the cooldown, since it may have landed.
        ``output`` is what Meta answered (the audit's output snapshot)."""
        status = status or ("executed" if error is None else "failed")
        values = {
            "executed": {"verdict": "executed", "status": "done", "executed_at": _utc(executed_at), "success": True},
            "failed": {"verdict": "failed", "status": "failed", "error_message": error, "success": False},
            "unknown": {"verdict": "failed", "status": "unknown", "error_message": error, "executed_at": _utc(executed_at)},
        }[status]
        if output is not None:
            values["output_snapshot"] = json.dumps(output, default=str)
        with self.engine.begin() as conn:
            conn.execute(
                actions_table.update()
                .where(actions_table.c.cycle_run_id == cycle_run_id, actions_table.c.action_id == action_id)
                .values(**values)
            )

    def history(self, account_id: str, since) -> pd.DataFrame:
        """The account's writes since ``since`` (engine/history.py's rows): what the cooldown, the
        creative embargo and the rolling 24 h change limit read.

        Rows still ``executing`` or ``unknown`` count too: a write whose outcome is unknown may have landed.
        """
        c = actions_table.c
        when = sa.func.coalesce(c.executed_at, c.as_of)
        query = sa.select(c.entity_type, c.entity_id, c.type, c.rule, c.amount_pct, when.label("executed_at"), c.details).where(
            c.account_id == account_id, c.status.in_(WRITTEN_STATUSES), when >= _utc(since)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["entity_type", "entity_id", "type", "rule", "amount_pct", "executed_at", "details"])
        frame["loser_ad_ids"] = frame.pop("details").map(_loser_ad_ids)
        return history_frame([frame])

    def last_evaluated(self, account_id: str) -> pd.Series:
        """Campaign id → when a tick last evaluated it (the scope's rotation)."""
        t = campaign_evaluations_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.campaign_id, t.evaluated_at).where(t.account_id == account_id)).all()
        return pd.Series({row.campaign_id: row.evaluated_at for row in rows}, dtype=object).pipe(pd.to_datetime, utc=True)

    def record_evaluated(self, account_id: str, campaign_ids: Iterable[str], at) -> None:
        """Remember that a tick at ``at`` evaluated ``campaign_ids``."""
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return
        t = campaign_evaluations_table.c
        with self.engine.begin() as conn:
            conn.execute(campaign_evaluations_table.delete().where(t.account_id == account_id, t.campaign_id.in_(ids)))
            conn.execute(campaign_evaluations_table.insert(), [{"account_id": account_id, "campaign_id": i, "evaluated_at": _utc(at)} for i in ids])

    def supersede(self, rows: Iterable[tuple[str, str, str]]) -> int:
        """Mark queued rows (cycle_run_id, action_id, why) ``superseded``, each only while it is
        still pending or approved (compare-and-set: a decision taken meanwhile wins). Returns how many."""
        c = actions_table.c
        changed = 0
        with self.engine.begin() as conn:
            for run_id, action_id, why in rows:
                where = (c.cycle_run_id == run_id, c.action_id == action_id, c.status.in_(QUEUE_STATUSES))
                row = conn.execute(sa.select(c.reasons).where(*where)).first()
                if row is None:
                    continue
                changed += conn.execute(
                    actions_table.update().where(*where).values(status="superseded", reasons=json.dumps([*json.loads(row.reasons), why]))
                ).rowcount
        return changed

    def already_sent(self, account_id: str, action_ids: Iterable[str]) -> dict[str, str]:
        """Action ids (deterministic: snapshot time, entity, type) whose write was already sent,
        done or of unknown outcome, by any run → that run's id. A re-executed step must not send
        them again."""
        ids = list(action_ids)
        if not ids:
            return {}
        c = actions_table.c
        query = sa.select(c.action_id, c.cycle_run_id).where(
            c.account_id == account_id, c.action_id.in_(ids), c.status.in_(WRITTEN_STATUSES)
        )
        with self.engine.connect() as conn:
            return {row.action_id: row.cycle_run_id for row in conn.execute(query)}

    def open_writes(self, account_id: str, other_than_run: str) -> pd.DataFrame:
        """Writes of other runs whose outcome is open: ``unknown``, or still ``executing``."""
        c = actions_table.c
        return self.select((c.account_id == account_id) & (c.cycle_run_id != other_than_run) & c.status.in_(OPEN_STATUSES))

    def settle(self, cycle_run_id: str, action_id: str, landed: bool, note: str) -> bool:
        """Close an open write after reading the account: ``done`` if it landed, else ``failed``.

        Compare-and-set: only while the row is still open. An outcome recorded meanwhile (the
        write's own run got its answer after all, another run settled it) wins. Returns whether
        this call closed it."""
        values = {"verdict": "executed", "status": "done"} if landed else {"verdict": "failed", "status": "failed"}
        c = actions_table.c
        where = (c.cycle_run_id == cycle_run_id, c.action_id == action_id, c.status.in_(OPEN_STATUSES))
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(c.reasons).where(*where)).first()
            if row is None:
                return False
            reasons = [*json.loads(row.reasons), f"reconciled: {note}"]
            return conn.execute(actions_table.update().where(*where).values(**values, reasons=json.dumps(reasons))).rowcount == 1

    def run_ids_starting_with(self, prefix: str) -> list[str]:
        """The runs (cycles, rollbacks) with ledger rows whose id starts with ``prefix``."""
        c = actions_table.c
        query = sa.select(c.cycle_run_id).where(c.cycle_run_id.startswith(prefix, autoescape=True)).distinct()
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def rollbacks(self, account: str | None = None, of_run: str | None = None) -> pd.DataFrame:
        """The restore rows of rollbacks (of one account, or of one rolled-back run)."""
        condition = actions_table.c.rollback_of_run.is_not(None)
        if account:
            condition = condition & (actions_table.c.account_id == account)
        if of_run:
            condition = condition & (actions_table.c.rollback_of_run == of_run)
        return self.select(condition)

    def cycle_actions(self, cycle_run_id: str) -> pd.DataFrame:
        return self.select(actions_table.c.cycle_run_id == cycle_run_id)

    def pending(self, account_id: str | None = None) -> pd.DataFrame:
        condition = actions_table.c.status == "pending"
        if account_id:
            condition = condition & (actions_table.c.account_id == account_id)
        return self.select(condition)

    def select(self, condition) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(actions_table).where(condition).order_by(actions_table.c.row_id)).mappings().all()
        frame = pd.DataFrame(rows, columns=[col.name for col in actions_table.columns])
        frame["reasons"] = frame["reasons"].map(json.loads)
        details = frame["details"].map(lambda d: json.loads(d) if isinstance(d, str) else {})
        frame["loser_ad_ids"] = details.map(lambda d: d.get("loser_ad_ids"))
        for key in ("entity_name", "currency", "undoes", "unit_id"):
            frame[key] = details.map(lambda d: d.get(key))
        return frame

    def dispose(self) -> None:
        self.engine.dispose()


def _loser_ad_ids(details) -> list[str] | None:
    return json.loads(details).get("loser_ad_ids") if isinstance(details, str) else None
