"""The Dagster instance at DAGSTER_HOME, safe to open from several processes on a new home.

The first use of a home creates Dagster's SQLite storage (runs, the event log's index,
schedules) and stamps each database with its Alembic revision. Two processes doing that at once
(two ``meta-ads cycle`` started together) race: "table secondary_indexes already exists",
"UNIQUE constraint failed: alembic_version". :func:`open_instance` opens the instance under a file
lock in the home, so the storage is created once; what still goes wrong with the storage reaches
the person as one line (:class:`InstanceError`).
"""

from __future__ import annotations

import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.errors import DagsterError

from .settings import dagster_home
from .store.filelock import file_lock

LOCK_FILE = ".meta-ads-instance.lock"


class InstanceError(RuntimeError):
    """Dagster's storage at DAGSTER_HOME could not be opened (one line, for a person)."""


def open_instance() -> DagsterInstance:
    """``DagsterInstance.get()`` for DAGSTER_HOME, one process at a time (see the module docstring)."""
    home = dagster_home()
    try:
        with file_lock(home / LOCK_FILE):
            return DagsterInstance.get()
    except (DagsterError, sa.exc.SQLAlchemyError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InstanceError(f"Dagster's storage at {home} could not be opened: {first_line}") from None
