"""The policies the simulation compares, each deciding on the account as the market reports it.

- ``engine``: the real cycle (:func:`meta_ads_dagster.cycle.steps.run_cycle`: reconcile, rules,
  PolicyEngine, SafetyEngine, routing, approvals, the per-tick limits, execution) on a SQLite
  ledger of its own, so cooldowns, the rolling 24 h limit and the queue are the ledger's, as in a
  scheduled cycle. In suggest mode a simulated reviewer approves every queued action right after
  the cycle, through the store's approval API, and the next cycle carries it out (re-validated);
  in auto mode nothing is approved and queued actions wait.
- ``plain_rules``: the seeds' rule table alone, as an Ads Manager automated rule would apply it:
  7-day ROAS > 3 → +30 %, < 1.5 → −30 %, and the hard stop (7-day ROAS < HARD_STOP_ROAS on at least
  MIN_SPEND_USD of 7-day spend) → pause; no confidence, no spikes, no cooldown, no guard rail.
  Once a simulated day (see :data:`PLAIN_RULES_EVERY_TICKS`).
- ``do_nothing``: keeps every budget; it never decides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cycle.steps import run_cycle
from ..engine.decisions import ROAS_HIGH, ROAS_LOW
from ..engine.metrics import entity_table, roas_metrics
from ..engine.snapshot import parse_snapshot
from ..meta.client import Write
from ..settings import Settings
from ..store import approvals
from ..store.ledger import Ledger
from ..meta.market import MarketMetaAdsClient

PLAIN_RAISE = PLAIN_CUT = 0.30  # the seeds' table: +30 % / −30 %
# Measured (README "Simulated market"): evaluated every 30 minutes the table compounds (+30 % up to
# 48 times a day on the same 7-day ROAS), so it runs once a simulated day, at the day's first
# decision, as a daily automated rule in Ads Manager does.
PLAIN_RULES_EVERY_TICKS = 48
REVIEWER = "simulated reviewer"


@dataclass
class Decision:
    """What one decision did, for the checker: a row per action with who asked for it and under
    which rule (``entity_type``, ``entity_id``, ``type``, ``rule``, ``actor``, ``status``; the
    ledger's rows for the engine), and the queued rows a person approved after it."""

    rows: list[dict] = field(default_factory=list)
    approved: list[dict] = field(default_factory=list)


class Policy(ABC):
    name: str

    def __init__(self, settings: Settings, client: MarketMetaAdsClient):
        self.settings = settings
        self.client = client

    @abstractmethod
    def decides_at(self, tick: int) -> bool:
        """Whether the policy looks at the account at decision ``tick`` (0, 1, … every 30 minutes)."""

    @abstractmethod
    def decide(self, run_id: str, document: dict) -> Decision:
        """Decide on the account as ``document`` reports it and write through the client."""

    def close(self) -> None:
        """Release what the policy holds (the engine's ledger)."""


class DoNothing(Policy):
    name = "do_nothing"

    def decides_at(self, tick: int) -> bool:
        return False

    def decide(self, run_id: str, document: dict) -> Decision:
        return Decision()


class Engine(Policy):
    name = "engine"

    def __init__(self, settings: Settings, client: MarketMetaAdsClient, folder: Path):
        super().__init__(settings, client)
        self.ledger = Ledger(f"sqlite:///{folder / 'ledger.sqlite'}")

    def decides_at(self, tick: int) -> bool:
        return True

    def decide(self, run_id: str, document: dict) -> Decision:
        run_cycle(self.ledger, self.client, self.settings, run_id, SILENT, document)
        decision = Decision(rows=self.ledger.cycle_actions(run_id).to_dict("records"))
        if not self.settings.is_auto:
            pending = approvals.queue(self.ledger, "pending", self.client.account_id)
            if len(pending):
                approved = approvals.decide(self.ledger, pending["action_id"], "approve", REVIEWER, None, self.settings.approval_ttl_hours)
                decision.approved = approved.to_dict("records")
        return decision

    def close(self) -> None:
        self.ledger.dispose()


class PlainRules(Policy):
    name = "plain_rules"

    def __init__(self, settings: Settings, client: MarketMetaAdsClient, every_ticks: int = PLAIN_RULES_EVERY_TICKS):
        super().__init__(settings, client)
        self.every_ticks = every_ticks

    def decides_at(self, tick: int) -> bool:
        return tick % self.every_ticks == 0

    def decide(self, run_id: str, document: dict) -> Decision:
        snapshot = parse_snapshot(document)
        proposed = plain_rule_writes(roas_metrics(snapshot, entity_table(snapshot)), snapshot.minor_per_unit, self.settings)
        writes = [
            Write(f"{run_id}-{n}", row.type, row.entity_type, row.entity_id, None if pd.isna(row.new_budget_minor) else int(row.new_budget_minor))
            for n, row in enumerate(proposed.itertuples(index=False))
        ]
        outcomes = self.client.apply_writes(writes)
        return Decision(rows=[
            {"entity_type": w.entity_type, "entity_id": w.entity_id, "type": w.type, "rule": rule, "actor": "autonomous",
             "status": "done" if outcome.status == "executed" else "failed"}
            for w, rule, outcome in zip(writes, proposed["rule"], outcomes)
        ])


def plain_rule_writes(metrics: pd.DataFrame, minor_per_unit: int, settings: Settings) -> pd.DataFrame:
    """The seeds' table over a ``roas_metrics`` frame: one write per entity (``type``,
    ``entity_type``, ``entity_id``, ``rule``, ``new_budget_minor``; NaN for a pause).

    The hard stop pauses the highest halted level only (what is under a paused campaign or ad set
    stops with it) and beats a budget change; budget rules apply to budget holders, as in Ads
    Manager (the CBO campaign, else its ad sets). Budgets stay whole minor units, at least one
    currency unit."""
    active = metrics[metrics["effective_active"] & metrics["roas_7d"].notna()]
    roas = active["roas_7d"]
    halted = active[(roas < settings.hard_stop_roas) & (active["spend_7d"] >= settings.min_spend_usd)]
    halted_campaigns = set(halted.loc[halted["entity_type"].eq("campaign"), "entity_id"])
    halted_adsets = set(halted.loc[halted["entity_type"].eq("adset"), "entity_id"])
    covered = (active["entity_type"].ne("campaign") & active["campaign_id"].isin(halted_campaigns)) | (
        active["entity_type"].eq("ad") & active["adset_id"].isin(halted_adsets)
    )
    pauses = halted[~covered[halted.index]].assign(type="pause", rule="hard_stop", new_budget_minor=np.nan)
    holders = active[active["is_budget_holder"] & ~covered & ~active.index.isin(halted.index)]
    budget = holders["daily_budget"].astype(float)
    high, low = holders["roas_7d"] > ROAS_HIGH, holders["roas_7d"] < ROAS_LOW
    raises = holders[high].assign(type="scale_up", rule="roas_high", new_budget_minor=np.round(budget[high] * (1 + PLAIN_RAISE)))
    cuts = holders[low].assign(
        type="scale_down", rule="roas_low", new_budget_minor=np.maximum(np.round(budget[low] * (1 - PLAIN_CUT)), minor_per_unit)
    )
    columns = ["type", "entity_type", "entity_id", "rule", "new_budget_minor"]
    return pd.concat([pauses[columns], cuts[columns], raises[columns]], ignore_index=True)


class _Silent:
    """The cycles' run log, not kept: the simulation reports totals (and the engine's sanity
    warnings would otherwise reach stderr through logging's last-resort handler)."""

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass


SILENT = _Silent()
