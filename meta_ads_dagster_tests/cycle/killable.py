"""A stub cycle in a process of its own, for tests that SIGKILL it while it writes.

``python -m meta_ads_dagster_tests.cycle.killable CONFIG_JSON`` runs one ``steps.run_cycle`` of
the harness account described by CONFIG_JSON (``database_url``, ``state_dir``, ``snapshot_path``,
``account_id``, ``run_id``, ``settings``: keyword overrides of ``load_settings``, and the
:class:`KillableStub` options ``pause_seconds``, ``hang_after``, ``seed``).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from typing import Any

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.meta.client import Write
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import Ledger

from .harness import Account


class KillableStub(StubMetaAdsClient):
    """The stub with time in its write phase for a kill to land in: a random pause of up to
    ``pause_seconds`` before and after each write (after it: the write landed, the ledger does not
    know yet); after the ``hang_after``-th write of this client it hangs until killed."""

    pause_seconds: float = 0.0
    hang_after: int | None = None
    seed: int = 0

    def apply_writes(self, writes: list[Write]):
        rng = random.Random(self.seed)
        outcomes = []
        for count, write in enumerate(writes, start=1):
            time.sleep(rng.uniform(0, self.pause_seconds))
            outcomes += super().apply_writes([write])
            if count == self.hang_after:
                threading.Event().wait()  # until killed
            time.sleep(rng.uniform(0, self.pause_seconds))
        return outcomes


def start(account: Account, run_id: str, **stub: Any) -> subprocess.Popen:
    """One cycle of ``account`` as run ``run_id`` in a new process (see the module docstring)."""
    config = {
        "database_url": account.ledger.engine.url.render_as_string(hide_password=False),
        "state_dir": account.state_dir, "snapshot_path": str(account.snapshot_path), "account_id": account.account_id,
        "run_id": run_id, "settings": account.settings_overrides, "stub": stub,
    }
    return subprocess.Popen([sys.executable, "-m", __name__, json.dumps(config)])


def main(config: dict) -> None:
    client = KillableStub(state_dir=config["state_dir"], snapshot_path=config["snapshot_path"], account_id=config["account_id"], **config["stub"])
    ledger = Ledger(config["database_url"])
    steps.run_cycle(ledger, client, load_settings(**config["settings"]), config["run_id"])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
