"""An exclusive lock between the processes of one host: ``fcntl.flock`` on a lock file.

What it guards is a read-modify-write of files that several processes share: the stub's state,
a SQLite ledger's migration, a new DAGSTER_HOME's storage. The kernel releases it when its holder
dies, so a killed process never leaves it held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one process at a time is the caller's affair
    fcntl = None


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its folder, when missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
