"""Exactly once for every write, under races and kills (issue 11), through ``cycle.steps``.

- #2: a reconcile racing a live writer, forced into the harmful interleaving with the project's
  own functions; open writes settled from the account as it is after the writes, not before.
- #3: a run killed while holding the account's write lock (a real SIGKILL of a subprocess): the
  next cycle takes the lock over at once and reconciles the dead run's writes.
- The kill loop: a few SIGKILLs at random points of the write phase, then a normal cycle: every
  intended write applied exactly once or recorded failed, no row left open.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter

import pandas as pd
import pytest

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.meta.client import WriteOutcome
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.store.ledger import Ledger, cycle_locks_table

from ..engine.factories import campaign, campaign_id, make_snapshot
from . import killable
from .harness import Account

LOG = logging.getLogger(__name__)
RAISES = 12  # campaigns the first auto cycle raises 200 → 220


@pytest.fixture
def account(tmp_path):
    acc = Account(make_snapshot([campaign(roas=4.0, spend=150, budget_usd=200) for _ in range(RAISES)]), tmp_path, meta_auto_mode="auto")
    yield acc
    acc.close()


def budget_writes(account: Account) -> Counter:
    return Counter(w["entity_id"] for w in account.writes() if w["method"] == "update_budget")


def test_a_reconcile_racing_a_live_writer_leaves_its_writes_alone(account, monkeypatch):
    """Issue 11 #2. Run A has sent its 12 raises (they landed) and not yet recorded the answers.
    Run B, with the account read before A wrote, reconciles: it reads A's rows (still executing),
    A records its answers, B settles. B used to turn the 12 landed writes into failed, and the next
    cycle raised the same budgets again inside 24 h. Now B settles only under the account lock,
    which A holds, and only rows still open."""
    before_a = account.client().fetch_snapshot()
    b_read, a_marked = threading.Event(), threading.Event()
    other = Ledger(f"sqlite:///{account.ledger.engine.url.database}")  # run B's own connections
    settle = other.settle

    def b_settles(*args, **kwargs):
        b_read.set()  # B has read A's open rows and is about to close them
        assert a_marked.wait(30)
        return settle(*args, **kwargs)

    other.settle = b_settles

    def run_b():
        try:
            steps.reconcile(other, account.client(), steps.parse_snapshot(before_a), account.settings, "run-B", LOG)
        finally:
            b_read.set()  # B is done (or never got as far as settling)

    b = threading.Thread(target=run_b, name="run-B")
    apply_writes, execute_actions = StubMetaAdsClient.apply_writes, steps.execute_actions

    def writes_then_b_reconciles(self, writes):
        outcomes = apply_writes(self, writes)  # the writes landed; A has not recorded it yet
        b.start()
        assert b_read.wait(30)
        return outcomes

    def answers_recorded(*args, **kwargs):
        result = execute_actions(*args, **kwargs)
        a_marked.set()
        b.join(30)
        return result

    monkeypatch.setattr(StubMetaAdsClient, "apply_writes", writes_then_b_reconciles)
    monkeypatch.setattr(steps, "execute_actions", answers_recorded)
    try:
        account.cycle()
    finally:
        a_marked.set()
        other.dispose()
    assert not b.is_alive()
    a_rows = account.ledger.cycle_actions(account.runs[-1])
    assert len(a_rows) == RAISES and set(a_rows["status"]) == {"done"}

    monkeypatch.undo()
    account.cycle()  # half an hour later: every raised campaign is in its 24 h cooldown
    assert budget_writes(account) == Counter({campaign_id(i): 1 for i in range(RAISES)})


class LostAnswers(StubMetaAdsClient):
    """Every write lands, and no answer comes back (a timeout after sending)."""

    def apply_writes(self, writes):
        return [WriteOutcome(o.action_id, "unknown", error="ReadTimeout") for o in super().apply_writes(writes)]


def test_unknown_outcomes_are_settled_from_the_account_read_after_the_writes(account):
    """A cycle that read the account before another run's writes went out must not judge them by
    that copy: every write of A landed, its answers were lost, and B (its account read before A
    wrote) used to settle them as "did not land" and send them again."""
    before_a = account.client().fetch_snapshot()
    steps.run_cycle(account.ledger, LostAnswers(**account.client().model_dump()), account.settings, "run-A", LOG)
    assert set(account.ledger.cycle_actions("run-A")["status"]) == {"unknown"}

    steps.run_cycle(account.ledger, account.client(), account.settings, "run-B", LOG, document=before_a)
    a_rows = account.ledger.cycle_actions("run-A")
    assert set(a_rows["status"]) == {"done"}
    assert all(reasons[-1] == "reconciled: landed (daily budget now 22000)" for reasons in a_rows["reasons"])
    assert budget_writes(account) == Counter({campaign_id(i): 1 for i in range(RAISES)})


def test_the_open_writes_of_a_run_still_alive_stay_open(account):
    """A stale lock's holder may only be late: rows of a run that ``run_alive`` says goes on are
    never settled; a run that ended, or one it cannot tell, is settled under the lock."""
    steps.run_cycle(account.ledger, LostAnswers(**account.client().model_dump()), account.settings, "run-A", LOG)
    snapshot = account.snapshot()
    steps.reconcile(account.ledger, account.client(), snapshot, account.settings, "run-B", LOG, run_alive={"run-A": True}.get)
    assert set(account.ledger.cycle_actions("run-A")["status"]) == {"unknown"}
    steps.reconcile(account.ledger, account.client(), snapshot, account.settings, "run-C", LOG, run_alive={"run-A": False}.get)
    assert set(account.ledger.cycle_actions("run-A")["status"]) == {"done"}


def wait_for(condition, process, seconds: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail if ``process`` ended first or time ran out."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the cycle process ended (exit {process.returncode}) before it was killed"
        assert time.monotonic() < deadline, "timed out waiting for the cycle process"
        time.sleep(0.02)


def utc(moment) -> pd.Timestamp:
    """SQLite hands back naive UTC datetimes; the stub's log has ISO strings with an offset."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def open_rows(account: Account):
    return account.ledger.open_writes(account.account_id, "nobody")


def test_a_run_killed_while_writing_leaves_the_lock_to_the_next_cycle_at_once(account, caplog):
    """Issue 11 #3: after a SIGKILL during writes, every cycle was refused ("has been writing
    since ...") until the lock went stale at cycle_max_runtime (25 minutes). The lock knows its
    holder's process: gone from this host, the next cycle takes the lock over at once and
    reconciles what the dead run sent."""
    child = killable.start(account, "killed-1", hang_after=5)
    try:
        wait_for(lambda: len(account.writes()) == 5, child)  # 5 raises landed, the ledger knows none
    finally:
        child.kill()
        child.wait()
    with account.ledger.engine.connect() as conn:
        lock = conn.execute(cycle_locks_table.select()).mappings().one()
    assert (lock["run_id"], lock["pid"]) == ("killed-1", child.pid)
    assert set(account.ledger.cycle_actions("killed-1")["status"]) == {"executing"}

    with caplog.at_level(logging.WARNING):
        actions, _ = account.cycle()
    assert f"took over the write lock of run killed-1: its process {child.pid} is gone" in caplog.messages
    dead = account.ledger.cycle_actions("killed-1")
    assert sorted(dead["status"]) == ["done"] * 5 + ["failed"] * 7  # read back, never re-sent
    assert (actions["verdict"] == "executed").sum() == 7  # what did not land is decided again and sent
    assert budget_writes(account) == Counter({campaign_id(i): 1 for i in range(RAISES)})
    assert open_rows(account).empty


def test_a_killed_runs_writes_are_settled_though_dagster_still_reports_it_running(account):
    """Dagster notices a killed run worker only later (run monitoring): its status still says
    STARTED. The process gone from this host is proof enough: its lock is taken over and its open
    writes settled."""
    child = killable.start(account, "killed-1", hang_after=3)
    try:
        wait_for(lambda: len(account.writes()) == 3, child)
    finally:
        child.kill()
        child.wait()
    steps.reconcile(account.ledger, account.client(), account.snapshot(), account.settings, "run-2", LOG, run_alive={"killed-1": True}.get)
    assert sorted(account.ledger.cycle_actions("killed-1")["status"]) == ["done"] * 3 + ["failed"] * 9


def test_kill_loop_every_write_lands_exactly_once_or_is_recorded_failed(tmp_path):
    """SIGKILLs at random points of the write phase of three cycles in a row (each writes at most
    4 of the 12 raises: MAX_ACTIONS_PER_TICK), then a normal cycle. From the stub's write log and
    the ledger: every write a cycle sent landed exactly once and is ``done``, every ``failed`` one
    never landed, no campaign was raised twice, and no row is left open."""
    account = Account(
        make_snapshot([campaign(roas=4.0, spend=150, budget_usd=200) for _ in range(RAISES)]), tmp_path,
        meta_auto_mode="auto", max_actions_per_tick=4,
    )
    rng = random.Random(11)
    try:
        for n in range(3):
            run_id = f"killed-{n}"
            child = killable.start(account, run_id, pause_seconds=0.1, seed=n)
            try:
                deadline = time.monotonic() + 60
                while child.poll() is None and account.ledger.cycle_actions(run_id).query("status == 'executing'").empty:
                    assert time.monotonic() < deadline, "the cycle process never started writing"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.3))  # somewhere in its write phase (4 writes, up to 0.2 s each)
            finally:
                child.kill()
                child.wait()
        account.cycle()

        rows = pd.concat([account.ledger.cycle_actions(run) for run in [*(f"killed-{n}" for n in range(3)), *account.runs]])
        rows = rows[rows["type"] == "scale_up"]
        landed = Counter((utc(w["at"]), w["entity_id"]) for w in account.writes() if w["method"] == "update_budget")
        done = Counter((utc(r.as_of), r.entity_id) for r in rows.itertuples() if r.status == "done")
        failed = {(utc(r.as_of), r.entity_id) for r in rows.itertuples() if r.status == "failed"}
        assert landed == done and set(landed.values()) == {1}  # each sent write landed once, and is done
        assert not failed & set(landed)  # recorded failed: never landed
        assert max(budget_writes(account).values()) == 1  # no campaign raised twice within 24 h
        assert not {"executing", "unknown"} & set(rows["status"]) and open_rows(account).empty
        # The kills did land inside write phases: rows the dead runs left open were reconciled.
        assert rows["reasons"].map(lambda reasons: reasons[-1].startswith("reconciled: ")).any()
    finally:
        account.close()
