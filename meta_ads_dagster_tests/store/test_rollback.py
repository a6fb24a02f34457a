"""store/rollback.py on SQLite and PostgreSQL: undo a 25-change auto cycle through the stub and the ledger.

The cycle here is ``cycle.steps.run_cycle`` (the job's steps without Dagster) over a
StubMetaAdsClient: 20 raises, 2 ad-set cuts, 2 hard-stop pauses and an A/B decision that pauses one
loser. A rollback restores through the guard rails as they stand now: the two hard-stopped
campaigns still lose money, so their resume is refused unless forced.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import Ledger, cycle_locks_table
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
    return StubMetaAdsClient(state_dir=str(tmp_path / "stub_state"), snapshot_path=snapshot_path, account_id=ACCOUNT)


def fresh(client: StubMetaAdsClient) -> StubMetaAdsClient:
    """Another client over the same state file: another process looking at the account."""
    return StubMetaAdsClient(state_dir=client.state_dir, snapshot_path=client.snapshot_path, account_id=ACCOUNT)


@pytest.fixture
def ledger(database_url):
    store = Ledger(database_url)
    yield store
    store.dispose()


SETTINGS = load_settings(meta_auto_mode="auto", max_actions_per_tick=30)


def run_cycle(ledger: Ledger, client: StubMetaAdsClient, run_id: str) -> pd.DataFrame:
    """One auto cycle through the same steps as the Dagster job (cycle/steps.py)."""
    done, _ = steps.run_cycle(ledger, client, SETTINGS, run_id)
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


def rollback(ledger, client, run, actor="cli", force=False, settings=SETTINGS):
    return rollback_run(ledger, fresh(client), parse_snapshot(fresh(client).fetch_snapshot()), settings, "cycle-1", run, actor=actor, force=force)


RESTORABLE = CHANGES - len(STOPPED)  # the hard stop still holds on the stopped campaigns


def hard_stop_refusal(campaign: str, number: int) -> str:
    return (f"campaign {campaign} 'Campaign {number}': the hard stop holds: ROAS 0.50 < 0.9 with confidence 0.91 ≥ 0.7; "
            "use --force to restore anyway")


def test_rolling_back_25_changes_restores_every_budget_and_status_the_guard_rails_allow(ledger, client, cycled):
    before, _, writes = cycled

    # While a cycle holds the account, a rollback is refused clearly and writes nothing.
    with account_lock(ledger, ACCOUNT, "scheduled-cycle-42"):
        with pytest.raises(AccountLocked, match="run scheduled-cycle-42 has been writing since .* run rollback-0 refused"):
            rollback(ledger, client, "rollback-0")
    assert len(fresh(client).writes) == writes and ledger.cycle_actions("rollback-0").empty

    report = rollback(ledger, client, "rollback-1", actor="alice")
    assert report.skipped == [] and report.failed == [] and report.forced == []
    assert len(report.restored) == RESTORABLE
    # Issue 9 #2: the rollback used to resume the hard-stopped campaigns; the hard stop still holds.
    assert sorted(report.refused) == [hard_stop_refusal(STOPPED[0], 22), hard_stop_refusal(STOPPED[1], 23)]
    state = account_state(fresh(client).fetch_snapshot())
    assert {k: v for k, v in state.items() if k[1] not in STOPPED} == {k: v for k, v in before.items() if k[1] not in STOPPED}
    assert {state[("campaigns", c)][0] for c in STOPPED} == {"PAUSED"}
    sent = restore_writes(client, writes)
    assert sorted(sent) == sorted([("update_budget", e) for e in RAISED + CUT] + [("resume", LOSER)])

    # Logged like any cycle: one done row per restore, by the person who asked, pointing at the cycle.
    rows = ledger.cycle_actions("rollback-1")
    assert len(rows) == RESTORABLE
    assert set(rows["status"]) == {"done"} and set(rows["actor"]) == {"alice"} and set(rows["rule"]) == {"rollback"}
    assert set(rows["rollback_of_run"]) == {"cycle-1"}
    budgets = rows[rows["type"].isin(["scale_up", "scale_down"])].set_index("entity_id")
    assert (budgets.loc[RAISED, "type"] == "scale_down").all() and (budgets.loc[RAISED, "new_budget_minor"] == 20000).all()
    assert (budgets.loc[CUT, "type"] == "scale_up").all() and (budgets.loc[CUT, "new_budget_minor"] == 15000).all()
    assert (ledger.cycle_actions("cycle-1")["status"] == "done").sum() == CHANGES  # the cycle's rows are untouched

    # Again without --force: nothing is sent, the refusals stand. With --force: the two stopped
    # campaigns are resumed, and the restore says it was forced past the hard stop.
    again = rollback(ledger, client, "rollback-2")
    assert again.restored == [] and again.failed == [] and len(again.refused) == 2
    assert len(again.skipped) == RESTORABLE and all(line.endswith("already restored by run rollback-1") for line in again.skipped)
    assert ledger.cycle_actions("rollback-2").empty
    forced = rollback(ledger, client, "rollback-3", force=True)
    assert sorted(forced.restored) == sorted(f"resume campaign {c}" for c in STOPPED) and forced.refused == []
    assert len(forced.forced) == 2 and all("forced past a guard rail: the hard stop holds" in line for line in forced.forced)
    forced_rows = ledger.cycle_actions("rollback-3")
    assert all(any(r.startswith("forced past a guard rail: the hard stop holds") for r in reasons) for reasons in forced_rows["reasons"])
    assert len(fresh(client).writes) == writes + CHANGES
    assert account_state(fresh(client).fetch_snapshot()) == before


def test_a_restored_raise_meets_the_campaign_and_account_caps_as_they_stand_now(ledger, client, cycled):
    """Issue 9 #2: undoing a cut raises a budget again; it must fit under MAX_CAMPAIGN_BUDGET_USD
    and MAX_DAILY_SPEND_USD as they are now (here: lowered since the cycle), unless forced."""
    tight = load_settings(meta_auto_mode="auto", max_campaign_budget_usd=140)  # the cut ad sets were 150 before
    report = rollback(ledger, client, "rollback-1", settings=tight)
    cap_refusals = [
        f"adset {a} 'Ad set {n}.0': campaign {campaign_id(n)}'s total daily budget would exceed MAX_CAMPAIGN_BUDGET_USD 140; "
        "use --force to restore anyway"
        for a, n in zip(CUT, (20, 21))
    ]
    assert sorted(report.refused) == sorted(cap_refusals + [hard_stop_refusal(STOPPED[0], 22), hard_stop_refusal(STOPPED[1], 23)])
    assert len(report.restored) == CHANGES - 4 and not any(f"adset {a}" in r for a in CUT for r in report.restored)

    # The account cap: the first restored raise fits in the room left, the second does not.
    state = account_state(fresh(client).fetch_snapshot())
    total_now = sum(int(b) for (kind, _), (status, b) in state.items() if kind in ("campaigns", "adsets") and b and status == "ACTIVE") / 100
    capped = load_settings(meta_auto_mode="auto", max_daily_spend_usd=total_now + 20)  # room for one +15 restore
    second = rollback(ledger, client, "rollback-2", settings=capped)
    restored_cuts = [line for line in second.restored if line.startswith("scale_up adset")]
    assert len(restored_cuts) == 1
    assert any("MAX_DAILY_SPEND_USD" in line for line in second.refused)


def test_a_run_without_ledger_rows_cannot_be_rolled_back(ledger, client):
    with pytest.raises(LookupError, match="no ledger rows for run nope"):
        rollback_run(ledger, client, parse_snapshot(client.fetch_snapshot()), SETTINGS, "nope", "rollback-1", actor="cli")
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
