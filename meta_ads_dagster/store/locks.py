"""One writer per ad account: a lock row in the app database, held while a cycle (or a rollback)
writes. The primary key makes taking it atomic on SQLite and PostgreSQL alike; a lock older than
``stale_after`` belongs to a run that died and is taken over.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from .ledger import Ledger, cycle_locks_table

t = cycle_locks_table.c


class AccountLocked(RuntimeError):
    """Another run is writing to this account; this one must not."""


STALE_LOCK = timedelta(minutes=25)  # Settings.cycle_max_runtime at the default 30-minute interval


@contextmanager
def account_lock(ledger: Ledger, account_id: str, run_id: str, stale_after: timedelta = STALE_LOCK):
    now = datetime.now(timezone.utc)
    with ledger.engine.begin() as conn:
        for _ in range(3):
            try:
                with conn.begin_nested():
                    conn.execute(cycle_locks_table.insert().values(account_id=account_id, run_id=run_id, acquired_at=now))
                break
            except sa.exc.IntegrityError:
                holder = conn.execute(sa.select(t.run_id, t.acquired_at).where(t.account_id == account_id)).first()
                if holder is None:  # the holder released it between our insert and this read: try again
                    continue
                acquired = holder.acquired_at if holder.acquired_at.tzinfo else holder.acquired_at.replace(tzinfo=timezone.utc)
                if holder.run_id != run_id and now - acquired < stale_after:
                    raise AccountLocked(
                        f"account {account_id}: run {holder.run_id} has been writing since {acquired:%Y-%m-%d %H:%M:%S} UTC; "
                        f"run {run_id} refused so two cycles never write at once"
                    ) from None
                conn.execute(cycle_locks_table.update().where(t.account_id == account_id).values(run_id=run_id, acquired_at=now))
                break
        else:
            raise AccountLocked(f"account {account_id}: the write lock kept changing hands; run {run_id} refused, try again")
    try:
        yield
    finally:
        with ledger.engine.begin() as conn:
            conn.execute(cycle_locks_table.delete().where(t.account_id == account_id, t.run_id == run_id))
