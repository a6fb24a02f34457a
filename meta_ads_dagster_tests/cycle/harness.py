"""One ad account driven through whole cycles without Dagster (``cycle.steps.run_cycle``): the
stub serving a factory snapshot, a ledger, and the review and rollback operations a person uses.

Each cycle is the job's own sequence of steps, so a test can run dozens of cycles in seconds; the
stub's clock moves one interval (30 minutes) per cycle after the first.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import Settings, load_settings
from meta_ads_dagster.store import approvals
from meta_ads_dagster.store.ledger import Ledger
from meta_ads_dagster.store.rollback import RollbackReport, rollback_run

LOG = logging.getLogger("meta_ads_dagster_tests.cycle")


class Account:
    """A stub account under test. ``settings``: keyword overrides of ``load_settings``."""

    def __init__(self, document: dict, folder: Path, database_url: str | None = None, **settings):
        folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = folder / "account.json"
        self.snapshot_path.write_text(json.dumps(document))
        self.account_id = document["account"]["id"]
        self.state_dir = str(folder / "stub_state")
        self.ledger = Ledger(database_url or f"sqlite:///{folder / 'ledger.sqlite'}")
        self.settings_overrides = settings
        self.settings = load_settings(**settings)
        self.runs: list[str] = []

    def client(self, **faults) -> StubMetaAdsClient:
        """A fresh client over the account's state file (what another process would see)."""
        return StubMetaAdsClient(state_dir=self.state_dir, snapshot_path=str(self.snapshot_path), account_id=self.account_id, **faults)

    def cycle(self, settings: Settings | None = None, document: dict | None = None) -> tuple[pd.DataFrame, dict]:
        """One whole cycle (its run id is ``runs[-1]``); returns its actions and stats.
        ``document``: the account as the caller synced and read it for this cycle."""
        run_id = f"cycle-{len(self.runs) + 1}"
        self.runs.append(run_id)
        return steps.run_cycle(self.ledger, self.client(), settings or self.settings, run_id, LOG, document)

    def snapshot(self):
        return parse_snapshot(self.client().fetch_snapshot())

    def writes(self, after: int = 0) -> list[dict]:
        """The stub's write log without its insight syncs, from the ``after``-th write on."""
        return [w for w in self.client().writes if w["method"] != "sync_insights"][after:]

    def pending(self) -> pd.DataFrame:
        return approvals.queue(self.ledger, "pending", self.account_id)

    def approve(self, action_ids, reviewer: str = "alice") -> pd.DataFrame:
        return approvals.decide(self.ledger, list(action_ids), "approve", reviewer, None, self.settings.approval_ttl_hours)

    def reject(self, action_ids, reviewer: str = "bob", reason: str = "not now") -> pd.DataFrame:
        return approvals.decide(self.ledger, list(action_ids), "reject", reviewer, reason, self.settings.approval_ttl_hours)

    def rollback(self, run_id: str, force: bool = False) -> RollbackReport:
        rollback_id = f"rollback-{len(self.runs) + 1}-{run_id}"
        return rollback_run(self.ledger, self.client(), self.snapshot(), self.settings, run_id, rollback_id, actor="carol", force=force)

    def close(self) -> None:
        self.ledger.dispose()


# The reasons that state a routing verdict: a row may carry one, and only for the verdict it has.
VERDICT_REASONS = {
    "queued": ("queued for human approval", "queued for approval", "needs approval", "need human approval"),
    "executed": ("executes immediately", "re-validated against the current account: executing"),
}


def contradictions(actions: pd.DataFrame) -> list[tuple[str, str, list[str]]]:
    """Rows whose reasons state a verdict they no longer have (issue 10: "queued for human
    approval" beside "not queued again" on one row)."""
    found = []
    for row in actions.itertuples(index=False):
        for verdict, phrases in VERDICT_REASONS.items():
            if row.verdict != verdict and row.verdict != "failed" and any(p in r for r in row.reasons for p in phrases):
                found.append((row.id, row.verdict, list(row.reasons)))
    return found
