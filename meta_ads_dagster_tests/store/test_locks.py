"""store/locks.py: the account's write lock names its holder's run and process; a holder known
to be over (its process gone from this host, or its run ended) is taken over at once; the
timeout is the last resort for a holder no one can vouch for."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from meta_ads_dagster.store.ledger import Ledger, cycle_locks_table
from meta_ads_dagster.store.locks import HOST, AccountLocked, TakenOver, account_lock, process_running

ACCOUNT = "act_1001"


@pytest.fixture
def ledger(database_url):
    store = Ledger(database_url)
    yield store
    store.dispose()


def held_by(ledger: Ledger, run_id: str, pid: int | None, host: str | None, minutes_ago: float = 1) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(cycle_locks_table.insert().values(
            account_id=ACCOUNT, run_id=run_id, acquired_at=datetime.now(timezone.utc) - timedelta(minutes=minutes_ago), pid=pid, host=host,
        ))


def lock_row(ledger: Ledger):
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(cycle_locks_table)).mappings().all()


def test_the_lock_row_names_the_holders_run_and_process(ledger):
    with account_lock(ledger, ACCOUNT, "run-A") as taken_over:
        assert taken_over is None
        [row] = lock_row(ledger)
        assert (row["run_id"], row["pid"], row["host"]) == ("run-A", os.getpid(), HOST)
    assert lock_row(ledger) == []


def test_a_dead_process_on_this_host_gives_the_lock_up_at_once(ledger):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not process_running(dead.pid)
    held_by(ledger, "run-dead", dead.pid, HOST)
    with account_lock(ledger, ACCOUNT, "run-B") as taken_over:
        assert taken_over == TakenOver("run-dead", f"its process {dead.pid} is gone", ended=True)
        assert [r["run_id"] for r in lock_row(ledger)] == ["run-B"]


def test_a_killed_process_its_parent_has_not_reaped_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_running(child.pid)
        child.kill()
        for _ in range(200):  # the zombie appears once the kernel has delivered the signal
            if not process_running(child.pid):
                break
            __import__("time").sleep(0.01)
        assert not process_running(child.pid)
    finally:
        child.wait()


@pytest.mark.parametrize(
    ("pid", "host", "alive", "taken"),
    [
        (os.getpid(), HOST, None, False),  # this very process: alive
        (1, "another-host", None, False),  # elsewhere, and nobody can tell
        (1, "another-host", True, False),  # Dagster: still running
        (1, "another-host", False, True),  # Dagster: the run ended
        (None, None, False, True),  # a lock taken before revision 0004: Dagster's word suffices
    ],
)
def test_a_live_or_unknown_holder_keeps_the_lock_until_it_is_stale(ledger, pid, host, alive, taken):
    held_by(ledger, "run-A", pid, host)
    run_alive = {"run-A": alive}.get
    if taken:
        with account_lock(ledger, ACCOUNT, "run-B", run_alive=run_alive) as taken_over:
            assert taken_over == TakenOver("run-A", "Dagster reports the run ended", ended=True)
        return
    with pytest.raises(AccountLocked, match="run run-A has been writing since .* run run-B refused"):
        with account_lock(ledger, ACCOUNT, "run-B", run_alive=run_alive):
            pass
    # The last resort: past stale_after the holder is taken to be dead, but not known to be over.
    with account_lock(ledger, ACCOUNT, "run-B", stale_after=timedelta(seconds=30), run_alive=run_alive) as taken_over:
        assert taken_over == TakenOver("run-A", "its lock is older than 0:00:30", ended=False)
