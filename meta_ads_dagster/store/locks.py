"""One writer per ad account: a lock row in the app database, held while a cycle (or a rollback)
writes. The primary key makes taking it atomic on SQLite and PostgreSQL alike.

The row names its holder: the run, and the process (pid and host) that took it. A run killed while
writing (SIGKILL, a lost container) cannot release it, so another run takes it over at once when
the holder is known to be over: its process is gone from this host, or ``run_alive`` (Dagster's
run status, on the Dagster side) says the run ended. A lock older than ``stale_after`` is taken
over whatever is known: the last resort, for a holder no one can vouch for.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from .ledger import Ledger, cycle_locks_table

t = cycle_locks_table.c

# run id → True while the run goes on, False once it ended, None when the caller cannot tell (a run
# it does not know). Dagster's side: the instance's run status (cycle/graph.py).
RunAlive = Callable[[str], "bool | None"]


class AccountLocked(RuntimeError):
    """Another run is writing to this account; this one must not."""


STALE_LOCK = timedelta(minutes=25)  # Settings.cycle_max_runtime at the default 30-minute interval
HOST = socket.gethostname()


def process_running(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (an unknown answer counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    # A killed process that its parent has not reaped yet (a zombie) still answers signal 0.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class TakenOver:
    """The lock this run took over: whose, why, and whether that run is known to be over (not
    merely late: a stale lock's run may still be writing)."""

    run_id: str
    why: str
    ended: bool

    def __str__(self) -> str:
        return f"took over the write lock of run {self.run_id}: {self.why}"


def _holder_gone(holder, run_alive: RunAlive | None) -> str | None:
    """Why the lock's holder is known to be over, or None."""
    if holder.host == HOST and holder.pid is not None and not process_running(holder.pid):
        return f"its process {holder.pid} is gone"
    if run_alive is not None and run_alive(holder.run_id) is False:
        return "Dagster reports the run ended"
    return None


@contextmanager
def account_lock(ledger: Ledger, account_id: str, run_id: str, stale_after: timedelta = STALE_LOCK, run_alive: RunAlive | None = None):
    """Hold ``account_id``'s write lock for ``run_id``, or raise :class:`AccountLocked`.

    Yields the :class:`TakenOver` lock of another run, or None."""
    now = datetime.now(timezone.utc)
    mine = {"run_id": run_id, "acquired_at": now, "pid": os.getpid(), "host": HOST}
    taken_from = None
    with ledger.engine.begin() as conn:
        for _ in range(3):
            try:
                with conn.begin_nested():
                    conn.execute(cycle_locks_table.insert().values(account_id=account_id, **mine))
                break
            except sa.exc.IntegrityError:
                holder = conn.execute(sa.select(t.run_id, t.acquired_at, t.pid, t.host).where(t.account_id == account_id)).first()
                if holder is None:  # the holder released it between our insert and this read: try again
                    continue
                acquired = holder.acquired_at if holder.acquired_at.tzinfo else holder.acquired_at.replace(tzinfo=timezone.utc)
                gone = _holder_gone(holder, run_alive) if holder.run_id != run_id else None
                if holder.run_id != run_id and not gone and now - acquired < stale_after:
                    raise AccountLocked(
                        f"account {account_id}: run {holder.run_id} has been writing since {acquired:%Y-%m-%d %H:%M:%S} UTC; "
                        f"run {run_id} refused so two cycles never write at once"
                    ) from None
                # Compare-and-set on the holder: of two runs taking over one lock, one wins.
                if not conn.execute(
                    cycle_locks_table.update().where(t.account_id == account_id, t.run_id == holder.run_id).values(**mine)
                ).rowcount:
                    continue
                if holder.run_id != run_id:
                    taken_from = TakenOver(holder.run_id, gone or f"its lock is older than {stale_after}", ended=gone is not None)
                break
        else:
            raise AccountLocked(f"account {account_id}: the write lock kept changing hands; run {run_id} refused, try again")
    try:
        yield taken_from
    finally:
        with ledger.engine.begin() as conn:
            conn.execute(cycle_locks_table.delete().where(t.account_id == account_id, t.run_id == run_id))
