"""store/rollback.py on SQLite and PostgreSQL: undo a 25-change auto cycle through the stub and the ledger.

The cycle here is the engine plus the same execution steps as the ``execute`` op (account lock,
hold back what was sent, prior state, record, write, mark), over a StubMetaAdsClient: 20 raises,
2 ad-set cuts, 2 hard-stop pauses and an A/B decision that pauses one loser.
"""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.reconcile import with_prior_state
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.execution import execute_actions, hold_back_already_sent
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import Ledger, cycle_locks_table, entity_history
from meta_ads_dagster.store.locks import AccountLocked, account_lock
from meta_ads_dagster.store.rollback import rollback_run

from ..engine.factories import AdSetSpec, AdSpec, CampaignSpec, ab_test, ad_id, adset_id, campaign, campaign_id, make_snapshot, steady_days

ACCOUNT = "act_1001"
RAISED = [campaign_id(i) for i in range(20)]
CUT = [adset_id(20), adset_id(21)]
STOPPED = [campaign_id(22), campaign_id(23)]
LOSER = ad_id(24, 0, 1)
CHANGES = 25


def rollback_document() -> dict:
    specs = [campaign(roas=4.0, spend=150, budget_usd=200) for _ in range(20)]
    specs += [campaign(roas=1.2, spend=140, budget_usd=150, cbo=False) for _ in range(2)]
    specs += [campaign(roas=0.5, spend=80, budget_usd=100) for _ in range(2)]
    specs.append(
        CampaignSpec(
            adsets=[AdSetSpec(ads=[AdSpec(days=steady_days(spend=100, roas=3, purchases=30)), AdSpec(days=steady_days(spend=100, roas=1, purchases=5))])],
            daily_budget_usd=300,
        )
    )
    return make_snapshot(specs, account_id=ACCOUNT, ab_tests=[ab_test([ad_id(24, 0, 0), LOSER])])


@pytest.fixture
def snapshot_path(tmp_path) -> str:
    path = tmp_path / "rollback_account.json"
    path.write_text(json.dumps(rollback_document()))
    return str(path)


@pytest.fixture
def client(snapshot_path, tmp_path) -> StubMetaAdsClient:
    return StubMetaAdsClient(state_dir=str(tmp_path / "stub_state"), snapshot_path=snapshot_path)


def fresh(client: StubMetaAdsClient) -> StubMetaAdsClient:
    """Another client over the same state file: another process looking at the account."""
    return StubMetaAdsClient(state_dir=client.state_dir, snapshot_path=client.snapshot_path)


@pytest.fixture
def ledger(database_url):
    store = Ledger(database_url)
    yield store
    store.dispose()


def run_cycle(ledger: Ledger, client: StubMetaAdsClient, run_id: str) -> pd.DataFrame:
    """One auto cycle: the engine, then what the execute op does."""
    settings = load_settings(meta_auto_mode="auto", max_actions_per_tick=30)
    snapshot = parse_snapshot(client.fetch_snapshot())
    history = entity_history([ledger.last_actions(ACCOUNT), snapshot.recent_actions])
    actions, _ = plan_cycle(snapshot, settings, history)
    with account_lock(ledger, ACCOUNT, run_id):
        ids = actions.loc[actions["verdict"] == "executed", "id"]
        actions = with_prior_state(hold_back_already_sent(actions, ledger.already_sent(ACCOUNT, ids)), snapshot)
        ledger.record_cycle(actions, run_id, ACCOUNT, snapshot.as_of)
        done, _ = execute_actions(actions, client, lambda o: ledger.mark_outcome(run_id, o.action_id, snapshot.as_of, o.error, o.status, o.result))
    return done


def account_state(document: dict) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(kind, id) → (status, daily budget) of every campaign, ad set and ad."""
    return {
        (kind, row["id"]): (row["status"], row.get("daily_budget"))
        for kind in ("campaigns", "adsets", "ads")
        for row in document[kind]
    }


def restore_writes(client: StubMetaAdsClient, after: int) -> list[tuple[str, str]]:
    return [(w["method"], w["entity_id"]) for w in fresh(client).writes[after:]]


@pytest.fixture
def cycled(ledger, client):
    """The account before, the cycle's actions, and how many stub writes there were after it."""
    before = account_state(client.fetch_snapshot())
    done = run_cycle(ledger, client, "cycle-1")
    assert (done["verdict"] == "executed").sum() == CHANGES
    assert (ledger.cycle_actions("cycle-1")["status"] == "done").sum() == CHANGES
    after = account_state(fresh(client).fetch_snapshot())
    changed = {key for key in before if before[key] != after[key]}
    assert len(changed) == CHANGES  # 22 budgets, 3 statuses (2 campaigns, 1 losing ad)
    return before, done, len(fresh(client).writes)


def test_rolling_back_25_changes_restores_every_budget_and_status_once(ledger, client, cycled):
    before, _, writes = cycled

    # While a cycle holds the account, a rollback is refused clearly and writes nothing.
    with account_lock(ledger, ACCOUNT, "scheduled-cycle-42"):
        with pytest.raises(AccountLocked, match="run scheduled-cycle-42 has been writing since .* run rollback-0 refused"):
            rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), "cycle-1", "rollback-0", actor="cli")
    assert len(fresh(client).writes) == writes and ledger.cycle_actions("rollback-0").empty

    report = rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), "cycle-1", "rollback-1", actor="alice")
    assert report.skipped == [] and report.failed == []
    assert len(report.restored) == CHANGES
    assert account_state(fresh(client).fetch_snapshot()) == before  # every budget and status
    sent = restore_writes(client, writes)
    assert sorted(sent) == sorted(
        [("update_budget", e) for e in RAISED + CUT] + [("resume", e) for e in STOPPED] + [("resume", LOSER)]
    )

    # Logged like any cycle: one done row per restore, by the person who asked, pointing at the cycle.
    rows = ledger.cycle_actions("rollback-1")
    assert len(rows) == CHANGES
    assert set(rows["status"]) == {"done"} and set(rows["actor"]) == {"alice"} and set(rows["rule"]) == {"rollback"}
    assert set(rows["rollback_of_run"]) == {"cycle-1"}
    budgets = rows[rows["type"].isin(["scale_up", "scale_down"])].set_index("entity_id")
    assert (budgets.loc[RAISED, "type"] == "scale_down").all() and (budgets.loc[RAISED, "new_budget_minor"] == 20000).all()
    assert (budgets.loc[CUT, "type"] == "scale_up").all() and (budgets.loc[CUT, "new_budget_minor"] == 15000).all()
    assert (ledger.cycle_actions("cycle-1")["status"] == "done").sum() == CHANGES  # the cycle's rows are untouched

    # A second rollback of the same run (forced or not) sends nothing: everything is already restored.
    for run, force in (("rollback-2", False), ("rollback-3", True)):
        again = rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), "cycle-1", run, actor="cli", force=force)
        assert again.restored == [] and again.failed == []
        assert len(again.skipped) == CHANGES
        assert all(line.endswith("already restored by run rollback-1") for line in again.skipped), again.skipped
        assert ledger.cycle_actions(run).empty
    assert len(fresh(client).writes) == writes + CHANGES
    assert account_state(fresh(client).fetch_snapshot()) == before


def test_an_entity_changed_since_is_skipped_unless_forced(ledger, client, cycled):
    before, _, writes = cycled
    someone = fresh(client)
    someone.update_budget("campaign", RAISED[3], 25000)  # a person raised it again by hand
    someone.resume("campaign", STOPPED[0])  # and turned a stopped campaign back on
    writes += 2

    report = rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), "cycle-1", "rollback-1", actor="cli")
    assert len(report.restored) == CHANGES - 2 and report.failed == []
    assert sorted(report.skipped) == sorted([
        f"campaign {RAISED[3]}: changed since the cycle (22000 → 25000); use --force to restore anyway",
        f"campaign {STOPPED[0]}: changed since the cycle (PAUSED → ACTIVE); use --force to restore anyway",
    ])
    state = account_state(fresh(client).fetch_snapshot())
    assert state[("campaigns", RAISED[3])] == ("ACTIVE", "25000")  # left as the person set it
    assert {k: v for k, v in state.items() if k[1] not in (RAISED[3], STOPPED[0])} == {
        k: v for k, v in before.items() if k[1] not in (RAISED[3], STOPPED[0])
    }
    assert len(restore_writes(client, writes)) == CHANGES - 2

    forced = rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), "cycle-1", "rollback-2", actor="cli", force=True)
    assert sorted(forced.restored) == sorted([f"scale_down campaign {RAISED[3]}", f"resume campaign {STOPPED[0]}"])
    assert len(forced.skipped) == CHANGES - 2 and all("already restored by run rollback-1" in s for s in forced.skipped)
    assert account_state(fresh(client).fetch_snapshot()) == before
    # Only the two skipped ones were sent by the forced rollback.
    assert sorted(restore_writes(client, writes)[CHANGES - 2:]) == [("resume", STOPPED[0]), ("update_budget", RAISED[3])]


def test_two_rollbacks_at_once_restore_each_entity_once(database_url, client, cycled):
    before, _, writes = cycled
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def roll(name: str) -> None:
        store = Ledger(database_url)  # its own connection pool, as another process would have
        mine = fresh(client)
        snapshot = parse_snapshot(mine.fetch_snapshot())  # both read the account before either writes
        barrier.wait()
        try:
            outcomes[name] = rollback_run(store, mine, snapshot, "cycle-1", name, actor=name)
        except Exception as exc:  # noqa: BLE001 - the test asserts on the type
            outcomes[name] = exc
        finally:
            store.dispose()

    threads = [threading.Thread(target=roll, args=(f"rollback-{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(outcomes) == {"rollback-1", "rollback-2"}
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert all(isinstance(e, AccountLocked) for e in errors), errors
    reports = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert sum(len(r.restored) for r in reports) == CHANGES
    if errors:  # refused clearly, naming the run that holds the account
        assert "run rollback-" in str(errors[0]) and "refused so two cycles never write at once" in str(errors[0])

    sent = restore_writes(client, writes)
    assert len(sent) == len(set(sent)) == CHANGES  # each entity restored exactly once
    assert account_state(fresh(client).fetch_snapshot()) == before


def test_a_run_without_ledger_rows_cannot_be_rolled_back(ledger, client):
    with pytest.raises(LookupError, match="no ledger rows for run nope"):
        rollback_run(ledger, client, parse_snapshot(client.fetch_snapshot()), "nope", "rollback-1", actor="cli")
    assert client.writes == []


def test_a_client_that_read_the_account_earlier_never_writes_back_a_stale_copy(client):
    """The stub's state file is shared (a cycle, and a ``meta-ads rollback`` in another process):
    a write by one client must survive a later write by a client that loaded the file before it."""
    cycle_client = fresh(client)
    cycle_client.sync_insights()  # a cycle starts and reads the account...
    rollback_client = fresh(client)
    rollback_client.update_budget("campaign", RAISED[0], 12345)  # ...another process writes...
    cycle_client.pause("ad", ad_id(1))  # ...then the cycle writes
    state = account_state(fresh(client).fetch_snapshot())
    assert state[("campaigns", RAISED[0])] == ("ACTIVE", "12345")
    assert state[("ads", ad_id(1))][0] == "PAUSED"
    assert [w["method"] for w in fresh(client).writes] == ["sync_insights", "update_budget", "pause"]
    assert cycle_client.writes == rollback_client.writes == fresh(client).writes


def test_a_lock_released_while_another_run_asks_for_it_is_taken_not_crashed_on(postgres_url):
    """PostgreSQL: run B's insert of the lock row fails on run A's row, and A releases it before B
    reads who holds it. B must take the lock (or be refused clearly), never die on a missing row.
    (On SQLite B's failed insert keeps the database's write lock, so A cannot release in between.)"""
    a_ledger, b_ledger = Ledger(postgres_url), Ledger(postgres_url)
    held = account_lock(a_ledger, ACCOUNT, "run-A")
    held.__enter__()
    released = []

    @sa.event.listens_for(b_ledger.engine, "before_cursor_execute")
    def a_finishes_now(conn, cursor, statement, *args):
        if not released and statement.lstrip().upper().startswith("SELECT") and "meta_cycle_locks" in statement:
            released.append(statement)
            held.__exit__(None, None, None)

    try:
        with account_lock(b_ledger, ACCOUNT, "run-B"):
            with b_ledger.engine.connect() as conn:
                assert conn.execute(sa.select(cycle_locks_table.c.run_id)).scalars().all() == ["run-B"]
        assert released  # the interleaving did happen
        with b_ledger.engine.connect() as conn:
            assert conn.execute(sa.select(cycle_locks_table.c.run_id)).scalars().all() == []
    finally:
        a_ledger.dispose()
        b_ledger.dispose()
