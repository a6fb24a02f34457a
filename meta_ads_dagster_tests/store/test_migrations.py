"""store/migrations on SQLite and PostgreSQL: head equals the tables in ledger.py, old databases
upgrade in place (rows intact), legacy ``create_all`` databases are stamped first, downgrade works.

The autogenerate comparison fails the suite when a table in ledger.py changes without a revision.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from meta_ads_dagster.store.ledger import VERSION_TABLE, Ledger, alembic_config, metadata, upgrade_schema

from ..at_once import run_at_once

# meta_actions as ``metadata.create_all`` made it before the migrations (revision 0001): frozen here.
legacy_metadata = sa.MetaData()
legacy_actions = sa.Table(
    "meta_actions",
    legacy_metadata,
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
LEGACY_COLUMNS = [c.name for c in legacy_actions.columns]
# meta_cycle_locks as revisions 0002 and 0003 left it (0004 added the holder's pid and host): frozen here.
locks_0002 = sa.Table(
    "meta_cycle_locks",
    sa.MetaData(),
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)
NEW_COLUMNS = [
    "step", "input_snapshot", "output_snapshot", "success", "minor_per_unit", "prior_budget_minor", "prior_status",
    "decided_by", "decided_at", "decision_reason", "expires_at", "rollback_of_run",
]  # fmt: skip

HEAD = "0005"

OLD_ROW = {
    "action_id": "a-1",
    "cycle_run_id": "run-old",
    "account_id": "act_1001",
    "as_of": datetime(2026, 11, 20, 10, tzinfo=timezone.utc),
    "recorded_at": datetime(2026, 11, 20, 10, 1, tzinfo=timezone.utc),
    "type": "budget_increase",
    "entity_type": "adset",
    "entity_id": "200001",
    "rule": "scale_winner",
    "proposed_pct": 20.0,
    "amount_pct": 20.0,
    "current_budget_minor": 50000,
    "new_budget_minor": 60000,
    "confidence": 0.97,
    "verdict": "executed",
    "status": "done",
    "reasons": '["roas above target"]',
    "details": None,
    "error_message": None,
    "executed_at": datetime(2026, 11, 20, 10, 2, tzinfo=timezone.utc),
    "actor": "autonomous",
}


@pytest.fixture
def engine(database_url):
    eng = sa.create_engine(database_url)
    yield eng
    eng.dispose()


def _migrate(engine: sa.Engine, verb: str, revision: str) -> None:
    with engine.begin() as conn:
        getattr(command, verb)(alembic_config(conn), revision)


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _columns(engine: sa.Engine) -> dict[str, list[str]]:
    inspector = sa.inspect(engine)
    return {t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names() if t != VERSION_TABLE}


def _indexes(engine: sa.Engine, table: str) -> dict[str, list[str]]:
    """Plain indexes (PostgreSQL also lists the one behind each unique constraint)."""
    indexes = sa.inspect(engine).get_indexes(table)
    return {ix["name"]: ix["column_names"] for ix in indexes if "duplicates_constraint" not in ix}


def _differences(engine: sa.Engine, target: sa.MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True, "version_table": VERSION_TABLE})
        return compare_metadata(context, target)


def _rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM meta_actions ORDER BY row_id")).mappings()]


def _assert_old_row_intact(row: dict) -> None:
    for name, value in OLD_ROW.items():
        got = row[name]
        if isinstance(value, datetime):  # SQLite hands back naive UTC (or a string through text())
            got = datetime.fromisoformat(got) if isinstance(got, str) else got
            got = got.replace(tzinfo=timezone.utc) if got.tzinfo is None else got
        assert got == value, name
    assert all(row[name] is None for name in NEW_COLUMNS)


def test_one_head_and_a_linear_history():
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    assert [r.revision for r in script.walk_revisions()] == ["0005", "0004", "0003", "0002", "0001"]


def test_an_empty_database_migrates_to_the_tables_of_ledger_py(engine):
    upgrade_schema(engine)
    assert _revision(engine) == HEAD
    assert _columns(engine) == {t.name: [c.name for c in t.columns] for t in metadata.sorted_tables}
    assert _indexes(engine, "meta_actions") == {
        ix.name: [c.name for c in ix.columns] for ix in metadata.tables["meta_actions"].indexes
    }
    unique = {u["name"]: u["column_names"] for u in sa.inspect(engine).get_unique_constraints("meta_actions")}
    assert unique == {"uq_meta_actions_cycle_action": ["cycle_run_id", "action_id"]}


def test_head_has_no_difference_from_the_metadata(engine):
    """A table edit in ledger.py without a new revision fails here (autogenerate's comparison)."""
    upgrade_schema(engine)
    assert _differences(engine, metadata) == []


def test_revision_0001_is_the_old_create_all_shape(engine):
    _migrate(engine, "upgrade", "0001")
    assert _revision(engine) == "0001"
    assert _columns(engine) == {"meta_actions": LEGACY_COLUMNS}
    assert _differences(engine, legacy_metadata) == []


def test_a_database_at_0001_upgrades_in_place(database_url, engine):
    _migrate(engine, "upgrade", "0001")
    with engine.begin() as conn:
        conn.execute(legacy_actions.insert(), OLD_ROW)

    ledger = Ledger(database_url)
    try:
        assert _revision(engine) == HEAD
        assert _differences(engine, metadata) == []
        [row] = _rows(engine)
        _assert_old_row_intact(row)
        read = ledger.cycle_actions("run-old")  # the ledger reads the old row, new fields empty
        assert list(read["action_id"]) == ["a-1"] and read.loc[0, "reasons"] == ["roas above target"]
        assert read[NEW_COLUMNS].isna().all().all()
    finally:
        ledger.dispose()


def test_a_legacy_create_all_database_is_stamped_then_upgraded(database_url, engine):
    legacy_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(legacy_actions.insert(), OLD_ROW)
    assert VERSION_TABLE not in sa.inspect(engine).get_table_names()

    Ledger(database_url).dispose()
    assert _revision(engine) == HEAD
    assert _differences(engine, metadata) == []
    [row] = _rows(engine)
    _assert_old_row_intact(row)


def test_a_legacy_database_already_in_the_0002_shape_is_stamped_then_upgraded(database_url, engine):
    # Made by ledger.py's create_all after 0002's columns, before the migrations (and before 0003).
    metadata.create_all(engine, tables=[metadata.tables["meta_actions"]])
    locks_0002.create(engine)
    with engine.begin() as conn:
        conn.execute(metadata.tables["meta_actions"].insert(), OLD_ROW)
    Ledger(database_url).dispose()
    assert _revision(engine) == HEAD
    assert _differences(engine, metadata) == []
    assert len(_rows(engine)) == 1


def test_a_lock_held_at_0003_survives_the_upgrade_without_a_known_process(database_url, engine):
    """Revision 0004 adds the holder's pid and host; a lock taken before it keeps its row, and
    with no process known only the timeout can free it (store/locks.py)."""
    _migrate(engine, "upgrade", "0003")
    acquired = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(locks_0002.insert().values(account_id="act_1001", run_id="run-old", acquired_at=acquired))
    upgrade_schema(database_url)
    assert _revision(engine) == HEAD
    with engine.connect() as conn:
        [row] = conn.execute(sa.select(metadata.tables["meta_cycle_locks"])).mappings().all()
    assert (row["run_id"], row["pid"], row["host"]) == ("run-old", None, None)


def test_a_half_migrated_legacy_database_is_refused(engine):
    legacy_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE meta_actions ADD COLUMN step VARCHAR(32)"))
    with pytest.raises(RuntimeError, match="only part of revision 0002"):
        upgrade_schema(engine)
    assert VERSION_TABLE not in sa.inspect(engine).get_table_names()


def test_downgrade_to_0001_and_back(database_url, engine):
    upgrade_schema(database_url)
    with engine.begin() as conn:
        conn.execute(legacy_actions.insert(), OLD_ROW)

    _migrate(engine, "downgrade", "0001")
    assert _revision(engine) == "0001"
    assert _columns(engine) == {"meta_actions": LEGACY_COLUMNS}
    assert set(_indexes(engine, "meta_actions")) == {"ix_meta_actions_entity"}
    assert _differences(engine, legacy_metadata) == []
    [row] = _rows(engine)
    assert {k: row[k] for k in ("action_id", "cycle_run_id", "status", "reasons")} == {
        k: OLD_ROW[k] for k in ("action_id", "cycle_run_id", "status", "reasons")
    }

    upgrade_schema(engine)
    assert _revision(engine) == HEAD
    assert _differences(engine, metadata) == []
    _assert_old_row_intact(_rows(engine)[0])


def test_a_database_at_head_is_not_migrated_again(database_url, monkeypatch):
    Ledger(database_url).dispose()

    def fail(*args, **kwargs):
        raise AssertionError("alembic ran on a database already at head")

    monkeypatch.setattr(command, "upgrade", fail)  # the ledger imports it where it migrates
    monkeypatch.setattr(command, "stamp", fail)
    Ledger(database_url).dispose()


def test_processes_migrating_a_new_database_at_once_all_succeed(database_url, engine, tmp_path):
    """Issue 11 #5: SQLite runs DDL outside the transaction, and two processes migrating a new
    file at once both created the tables ("table meta_actions already exists"). One migrator at a
    time: a lock file beside a SQLite database, an advisory lock on PostgreSQL."""
    # Each migration takes a moment longer than usual: the processes all find the database empty
    # before any of them has made a table, as they can on a busy host.
    slow_upgrade = (
        "from alembic import command\n"
        "from meta_ads_dagster.store.ledger import Ledger\n"
        "upgrade = command.upgrade\n"
        "command.upgrade = lambda *args, **kwargs: (time.sleep(0.5), upgrade(*args, **kwargs))\n"
    )
    failures = run_at_once(slow_upgrade, "Ledger(ARGS[0]).dispose()\n", tmp_path / "race", 3, database_url)
    assert failures == []
    assert _revision(engine) == HEAD
    assert _differences(engine, metadata) == []


def test_a_database_at_0004_gains_the_controls_table_with_its_rows_intact(database_url, engine):
    """Revision 0005 adds meta_automation_controls (store/controls.py): a ledger at 0004 upgrades
    in place, its actions and locks kept, with no control stored (every account on its defaults)."""
    from meta_ads_dagster.store import controls

    _migrate(engine, "upgrade", "0004")
    assert "meta_automation_controls" not in sa.inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(metadata.tables["meta_actions"].insert(), OLD_ROW)
    ledger = Ledger(database_url)
    try:
        assert _revision(engine) == HEAD
        assert _differences(engine, metadata) == []
        _assert_old_row_intact(_rows(engine)[0])
        assert controls.current(ledger) == {}
        controls.record(ledger, ["act_1001"], "mode", "auto", "alice")
        assert controls.current(ledger)["act_1001"].mode.value == "auto"
    finally:
        ledger.dispose()


def test_downgrade_from_0005_drops_only_the_controls_table(database_url, engine):
    from meta_ads_dagster.store import controls

    ledger = Ledger(database_url)
    controls.record(ledger, ["act_1001"], "automation", "paused", "alice")
    ledger.dispose()
    with engine.begin() as conn:
        conn.execute(metadata.tables["meta_actions"].insert(), OLD_ROW)

    _migrate(engine, "downgrade", "0004")
    assert _revision(engine) == "0004"
    assert "meta_automation_controls" not in sa.inspect(engine).get_table_names()
    assert len(_rows(engine)) == 1
    _migrate(engine, "upgrade", "head")
    assert _differences(engine, metadata) == []
