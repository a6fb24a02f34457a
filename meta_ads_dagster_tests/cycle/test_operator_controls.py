"""Issue 13's operator controls change what the next cycle does: the stored mode and the stored kill
switch, through the job's own steps (``cycle.steps.run_cycle``) on the stub."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from meta_ads_dagster.cli.control import open_approvals, today_counts
from meta_ads_dagster.store import controls

from ..engine.factories import AS_OF, campaign, campaign_id, make_snapshot
from .harness import Account

# A money pit (the hard stop pauses it in both modes) and a winner (auto mode raises it by itself,
# suggest mode queues the raise for a person).
PIT, WINNER = campaign_id(0), campaign_id(1)


def document(account_id: str) -> dict:
    # Each account read at its own minute: the harness names runs cycle-1, cycle-2, … per account,
    # and an action's id (snapshot time, entity, type) must differ between two accounts' runs.
    read_at = datetime.fromisoformat(AS_OF) + timedelta(minutes=int(account_id.removeprefix("act_")) % 60)
    return make_snapshot(
        [campaign(roas=0.3, spend=300, purchases=30), campaign(roas=4.0, spend=300, purchases=30)],
        account_id=account_id, as_of=read_at.isoformat(),
    )


@pytest.fixture
def account_factory(tmp_path, database_url):
    made: list[Account] = []

    def make(account_id: str = "act_1001", **settings) -> Account:
        """An account on the one ledger of ``database_url`` (accounts are told apart by id there)."""
        account = Account(document(account_id), tmp_path / f"account-{len(made)}", database_url, **settings)
        made.append(account)
        return account

    yield make
    for account in made:
        account.close()


def written(account: Account) -> set[tuple[str, str]]:
    return {(w["method"], w["entity_id"]) for w in account.writes()}


def verdict_of(actions, entity_id: str) -> str:
    return actions.loc[actions["entity_id"] == entity_id, "verdict"].item()


@pytest.mark.parametrize("default, stored", [("suggest", "auto"), ("auto", "suggest")])
def test_the_stored_mode_replaces_the_default_from_the_next_cycle(account_factory, default, stored):
    steered, untouched = account_factory(meta_auto_mode=default), account_factory("act_2002", meta_auto_mode=default)
    controls.record(steered.ledger, [steered.account_id], "mode", stored, "alice")

    actions, _ = steered.cycle()
    baseline, _ = untouched.cycle()  # the same account under another id, on the same ledger: nothing stored for it
    raise_verdict = {"auto": "executed", "suggest": "queued"}
    assert verdict_of(actions, WINNER) == raise_verdict[stored]
    assert verdict_of(baseline, WINNER) == raise_verdict[default]
    assert ("pause", PIT) in written(steered)  # the hard stop executes in both modes
    assert (("update_budget", WINNER) in written(steered)) == (stored == "auto")


def test_a_mode_switch_between_cycles_applies_to_the_next_one_only(account_factory):
    account = account_factory()  # suggest by default
    first, _ = account.cycle()
    assert verdict_of(first, WINNER) == "queued"
    controls.record(account.ledger, [account.account_id], "mode", "auto", "alice")
    # The first cycle's rows are as they were decided; the switch steers what comes next.
    assert account.ledger.cycle_actions(account.runs[0]).set_index("entity_id").at[WINNER, "verdict"] == "queued"
    second, _ = account.cycle()
    assert verdict_of(second, WINNER) == "executed"
    assert ("update_budget", WINNER) in written(account)


def test_a_stored_pause_makes_the_next_cycle_write_nothing_until_resumed(account_factory):
    account = account_factory(meta_auto_mode="auto")
    controls.record(account.ledger, [account.account_id], "automation", "paused", "bob")
    pause = controls.current(account.ledger)[account.account_id].paused

    actions, stats = account.cycle()
    assert account.writes() == []
    assert set(actions["verdict"]) == {"deferred"} and len(actions) == 2  # the hard stop too, as META_AUTO_ENABLED=false does
    reason = f"automation paused by {pause.describe()} (meta-ads pause-automation): the autonomous system is stopped, nothing is written"
    assert all(reasons[-1] == reason for reasons in actions["reasons"])
    assert set(account.ledger.cycle_actions(account.runs[0])["status"]) == {"deferred"}  # evaluated and recorded all the same
    assert stats["actions_deferred"] == 2 and stats["actions_executed"] == 0

    controls.record(account.ledger, [account.account_id], "automation", "running", "bob")
    account.cycle()
    assert written(account) == {("pause", PIT), ("update_budget", WINNER)}


def test_a_pause_of_one_account_leaves_another_running(account_factory):
    paused, running = account_factory(meta_auto_mode="auto"), account_factory("act_2002", meta_auto_mode="auto")
    controls.record(paused.ledger, [paused.account_id], "automation", "paused", "bob")
    paused.cycle()
    running.cycle()
    assert paused.writes() == []
    assert written(running) == {("pause", PIT), ("update_budget", WINNER)}


def test_todays_counts_and_open_approvals_come_from_the_ledger(account_factory):
    """What ``meta-ads status`` reads of the ledger, on both backends: today's rows of the cycles'
    own proposals by verdict, approvals carried out, and what waits for a person."""
    account = account_factory()  # suggest: the hard stop executes, the raise waits
    before = datetime.now(timezone.utc)
    first, _ = account.cycle()
    assert today_counts(account.ledger, account.account_id, before) == {
        "generated": 2, "executed": 1, "queued": 1, "policy_blocked": 0, "safety_blocked": 0, "deferred": 0, "failed": 0,
        "approvals_executed": 0,
    }
    assert open_approvals(account.ledger, account.account_id, datetime.now(timezone.utc)) == {"pending": 1, "approved": 0}
    assert open_approvals(account.ledger, "act_2002", datetime.now(timezone.utc)) == {"pending": 0, "approved": 0}

    account.approve(first.loc[first["verdict"] == "queued", "id"])
    assert open_approvals(account.ledger, account.account_id, datetime.now(timezone.utc)) == {"pending": 0, "approved": 1}
    account.cycle()
    counts = today_counts(account.ledger, account.account_id, before)
    assert counts["approvals_executed"] == 1 and counts["executed"] >= 1
    assert today_counts(account.ledger, account.account_id, datetime.now(timezone.utc) + timedelta(hours=1))["generated"] == 0
    assert open_approvals(account.ledger, account.account_id, datetime.now(timezone.utc)) == {"pending": 0, "approved": 0}
