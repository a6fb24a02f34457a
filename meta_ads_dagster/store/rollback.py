"""Undo a cycle: restore the budgets and statuses its writes changed (the seed's /rollback/{cycle_id}).

Every executed row of a cycle keeps the entity's state before the write (``prior_budget_minor``,
``prior_status``, an A/B decision's ``prior_loser_statuses``). A rollback turns each into restore
writes, sent through the same client and recorded in the same ledger as any cycle, under the
account's write lock, so it is logged, exactly-once (its ids are derived from the rolled-back
action) and itself visible in ``meta-ads log``. An entity someone changed since the cycle (its
budget or status is no longer what the cycle left) is skipped and reported, unless ``force``.
A created ad variant is not undone: it stays as it was created (CREATIVE_VARIANT_STATUS; a person
pauses a running one by hand).

A rollback restores through the guard rails as they stand *now* (:class:`RestoreGuard`): no
resume of an entity the hard stop holds on the current account (or of one under a hard-stopped
campaign or ad set, or inside its MIN_AGE_HOURS embargo), and no restored raise, nor a resume that
brings a budget back, past MAX_CAMPAIGN_BUDGET_USD (the campaign's total) or MAX_DAILY_SPEND_USD,
served like the spend cap.
Each refused restore is reported with the entity's name and the reason; ``force`` overrides, and
the restore's ledger row and the report say it was forced past which rail. Cuts always go through.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..engine.actions import ACTION_COLUMNS
from ..engine.cycle import account_spend
from ..engine.metrics import entity_table, roas_metrics
from ..engine.policy import EPS, PolicyEngine
from ..engine.snapshot import AccountSnapshot
from ..meta.client import MetaAdsClient
from ..meta.execution import execute_actions
from ..settings import Settings
from .approvals import supersede_written_by
from .ledger import Ledger
from .locks import account_lock


@dataclass
class RollbackReport:
    run_id: str
    rollback_run_id: str
    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # a guard rail said no (--force overrides)
    forced: list[str] = field(default_factory=list)  # restored past a guard rail because of --force
    failed: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # one per restore or note, for the table: amounts before → after

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "rollback_run_id": self.rollback_run_id, "restored": self.restored,
                "skipped": self.skipped, "refused": self.refused, "forced": self.forced, "failed": self.failed,
                "restores": self.rows}


class RestoreGuard:
    """The guard rails a restore meets, on the account as it is now (see the module docstring).

    ``check`` is called once per restore in the order they would be sent. Raises and resumes are
    folded like the SafetyEngine's spend cap: a restored raise, or a resume that puts a budget
    back into the totals (a paused budget holder, or a campaign over its active ad sets), uses up
    room under the account and campaign caps.
    """

    def __init__(self, snapshot: AccountSnapshot, settings: Settings):
        self.settings = settings
        self.policy = PolicyEngine(settings)
        self.minor = snapshot.minor_per_unit
        metrics = roas_metrics(snapshot, entity_table(snapshot))
        halt, _ = self.policy.must_halt(metrics["roas_7d"], metrics["confidence"], metrics["spend_7d"])
        self.metrics = metrics.set_index(["entity_type", "entity_id"])
        halted = metrics[halt]
        self.halted = {(t, e): (r, c) for t, e, r, c in zip(halted["entity_type"], halted["entity_id"], halted["roas_7d"], halted["confidence"])}
        self.ages = ((snapshot.as_of - self.metrics["created_time"]).dt.total_seconds() / 3600).to_dict()
        spend = account_spend(snapshot, metrics)
        self.total, self.spend_today = spend.total_active_daily_budget, spend.spend_today
        self.campaign_totals = spend.campaign_budgets.to_dict()

    def title(self, entity_type: str, entity_id: str) -> str | None:
        """The entity's name in the account (None when it has none, or is gone)."""
        key = (entity_type, entity_id)
        title = self.metrics["name"].get(key) if key in self.metrics.index else None
        return title if isinstance(title, str) and title else None

    def name(self, entity_type: str, entity_id: str) -> str:
        title = self.title(entity_type, entity_id)
        return f"{entity_type} {entity_id}" + (f" '{title}'" if title else "")

    def check(self, kind: str, entity_type: str, entity_id: str, current_minor=None, new_minor=None, force: bool = False) -> str | None:
        """Why a restore may not be sent now (None: it may). With ``force`` the restore is sent
        anyway: what it adds still counts against the caps for the restores after it."""
        key = (entity_type, entity_id)
        if kind == "resume":
            why = self._hard_stop_or_embargo(key)
            campaign, added = self._budget_resumed(key)
        elif kind == "scale_up" and current_minor is not None and not pd.isna(current_minor):
            why, campaign, added = None, self.metrics["campaign_id"].get(key), (float(new_minor) - float(current_minor)) / self.minor
        else:
            return None
        why = why or self._over_caps(campaign, added)
        if why is None or force:
            self.total += added
            self.spend_today += added
            if campaign is not None:
                self.campaign_totals[campaign] = self.campaign_totals.get(campaign, 0.0) + added
        return why

    def _hard_stop_or_embargo(self, key: tuple[str, str]) -> str | None:
        row = self.metrics.loc[key] if key in self.metrics.index else None
        parents = [] if row is None else [("campaign", row["campaign_id"]), ("adset", row["adset_id"])]
        for holder in [key, *parents]:
            if holder in self.halted:
                where = "" if holder == key else f" on its {holder[0]} {holder[1]}"
                return f"the hard stop holds{where}: " + self.policy.hard_stop_reason(*self.halted[holder]).removeprefix("hard stop: ")
        if self.ages.get(key, float("inf")) < self.settings.min_age_hours:
            return f"embargo: younger than MIN_AGE_HOURS {self.settings.min_age_hours:g}"
        return None

    def _budget_resumed(self, key: tuple[str, str]) -> tuple[str | None, float]:
        """(campaign, daily budget) a resume of ``key`` puts back into the totals."""
        if key not in self.metrics.index or key[0] == "ad":
            return None, 0.0
        m = self.metrics
        row = m.loc[key]
        if row["is_budget_holder"]:
            return row["campaign_id"], float(row["daily_budget"]) / self.minor
        if key[0] == "campaign":  # its ad sets hold the budgets: the active ones come back with it
            adsets = m[(m.index.get_level_values(0) == "adset") & m["campaign_id"].eq(key[1]) & m["is_budget_holder"] & m["status"].eq("ACTIVE")]
            return key[1], float(adsets["daily_budget"].astype(float).sum()) / self.minor
        return row["campaign_id"], 0.0  # an ad set under its campaign's budget adds nothing

    def _over_caps(self, campaign: str | None, added: float) -> str | None:
        s = self.settings
        if added <= 0:
            return None
        if campaign is not None and self.campaign_totals.get(campaign, 0.0) + added > s.max_campaign_budget_usd + EPS:
            return f"campaign {campaign}'s total daily budget would exceed MAX_CAMPAIGN_BUDGET_USD {s.max_campaign_budget_usd:g}"
        if max(self.total, self.spend_today) + added > s.max_daily_spend_usd + EPS:
            return f"the account's daily budget or spend would exceed MAX_DAILY_SPEND_USD {s.max_daily_spend_usd:g}"
        return None


def _restore_id(run_id: str, action_id: str, entity_id: str) -> str:
    return hashlib.sha256(f"rollback|{run_id}|{action_id}|{entity_id}".encode()).hexdigest()[:16]


def plan_restores(
    rows: pd.DataFrame, snapshot: AccountSnapshot, force: bool, sent: dict[str, str] | None = None,
    guard: RestoreGuard | None = None,
) -> tuple[list[dict], list[dict]]:
    """Restore writes for a cycle's executed rows, newest first, and notes on what is not restored
    (``outcome`` skipped or refused, ``reason``). ``sent``: restore id → the rollback run that
    already sent it (skipped as already restored). ``guard``: the guard rails each restore meets;
    what it refuses is noted as refused (or, with ``force``, restored with a ``forced`` note)."""
    sent = sent or {}
    status = {("campaign", r.id): r.status for r in snapshot.campaigns.itertuples()}
    status |= {("adset", r.id): r.status for r in snapshot.adsets.itertuples()}
    status |= {("ad", r.id): r.status for r in snapshot.ads.itertuples()}
    budget = {("campaign", r.id): r.daily_budget for r in snapshot.campaigns.itertuples()}
    budget |= {("adset", r.id): r.daily_budget for r in snapshot.adsets.itertuples()}
    restores, notes = [], []

    def note(outcome, kind, entity_type, entity_id, reason):
        notes.append({"outcome": outcome, "action": kind, "entity_type": entity_type, "entity_id": entity_id, "reason": reason})

    def restore(row, kind, entity_type, entity_id, now, left, **write):
        key = (entity_type, entity_id)
        restore_id = _restore_id(row.cycle_run_id, row.action_id, entity_id)
        if restore_id in sent:
            note("skipped", kind, *key, f"already restored by run {sent[restore_id]}")
        elif key not in status:
            note("skipped", kind, *key, "no longer in the account")
        elif now != left and not force:
            note("skipped", kind, *key, f"changed since the cycle ({left} → {now}); use --force to restore anyway")
        elif guard is not None and (why := guard.check(kind, entity_type, entity_id, write.get("current_budget_minor"), write.get("new_budget_minor"), force)) and not force:
            note("refused", kind, *key, f"{why}; use --force to restore anyway")
        else:
            forced = f"forced past a guard rail: {why}" if guard is not None and why else None
            restores.append({"id": restore_id, "type": kind, "entity_type": entity_type, "entity_id": entity_id,
                             "undoes": row.action_id, "forced": forced, "before": now, "after": write.get("new_budget_minor", "ACTIVE"),
                             **write})

    for row in rows.sort_values("row_id", ascending=False).itertuples():
        key = (row.entity_type, row.entity_id)
        if row.type in ("scale_up", "scale_down") and not pd.isna(row.prior_budget_minor):
            prior, left = int(row.prior_budget_minor), int(row.new_budget_minor)
            kind = "scale_down" if prior < left else "scale_up"
            now = budget.get(key)
            restore(row, kind, *key, None if pd.isna(now) else int(now), left, current_budget_minor=now, new_budget_minor=prior)
        elif row.type == "pause" and row.prior_status == "ACTIVE":
            restore(row, "resume", *key, status.get(key), "PAUSED")
        elif row.type == "publish_winner":
            priors = json.loads(row.details or "{}").get("prior_loser_statuses") or {}
            for ad, prior in priors.items():
                if prior == "ACTIVE":
                    restore(row, "resume", "ad", ad, status.get(("ad", ad)), "PAUSED")
        elif row.type == "create_variant":
            note("skipped", "create_variant", "ad", row.entity_id, "its creative variant is left as it was created (a running one: pause it by hand)")
    return restores, notes


def _as_actions(restores: list[dict], run_id: str, minor_per_unit: int) -> pd.DataFrame:
    frame = pd.DataFrame(restores, columns=["id", "type", "entity_type", "entity_id", "entity_name", "undoes", "forced", "current_budget_minor", "new_budget_minor"])
    actions = frame.reindex(columns=ACTION_COLUMNS)
    actions["rule"] = "rollback"
    actions["minor_per_unit"] = minor_per_unit
    actions["verdict"] = "executed"
    actions["reasons"] = [
        [f"rollback of run {run_id}: undoes action {u}", *([f] if isinstance(f, str) else [])] for u, f in zip(frame["undoes"], frame["forced"])
    ]
    actions["rollback_of_run"] = run_id
    actions["undoes"] = frame["undoes"]
    actions["loser_ad_ids"] = None
    for column in ("current_budget_minor", "new_budget_minor", "proposed_pct", "amount_pct", "confidence", "roas_7d", "spend_7d"):
        actions[column] = pd.to_numeric(actions[column], errors="coerce").astype(float)
    actions["amount_pct"] = np.where(
        actions["type"].isin(["scale_up", "scale_down"]),
        (actions["new_budget_minor"] - actions["current_budget_minor"]).abs() / actions["current_budget_minor"],
        np.nan,
    )
    return actions


def _run_rows(ledger: Ledger, run_id: str) -> pd.DataFrame:
    rows = ledger.cycle_actions(run_id)
    if rows.empty:
        raise LookupError(f"run_id: no ledger rows for run {run_id}")
    return rows


def rollback_cycle_run(ledger: Ledger, client: MetaAdsClient, settings: Settings, run_id: str, rollback_run_id: str, actor: str,
                       force: bool = False) -> RollbackReport:
    """Undo run ``run_id`` in the account it ran for (the ledger knows which), read as it is now."""
    account = _run_rows(ledger, run_id)["account_id"].iloc[0]
    client = client.for_account(account)
    return rollback_run(ledger, client, client.fetch_account(), settings, run_id, rollback_run_id, actor, force)


def rollback_run(ledger: Ledger, client: MetaAdsClient, snapshot: AccountSnapshot, settings: Settings, run_id: str,
                 rollback_run_id: str, actor: str, force: bool = False) -> RollbackReport:
    """Restore what run ``run_id`` changed in ``snapshot``'s account (see the module docstring)."""
    settings = settings.for_account(snapshot.account_id)
    report = RollbackReport(run_id, rollback_run_id)
    rows = _run_rows(ledger, run_id)
    if set(rows["account_id"]) != {snapshot.account_id}:
        raise LookupError(f"run_id: run {run_id} changed account {', '.join(sorted(set(rows['account_id'])))}, not {snapshot.account_id}")
    done = rows[(rows["status"] == "done") & rows["rollback_of_run"].isna()]
    with account_lock(ledger, snapshot.account_id, rollback_run_id, settings.cycle_max_runtime):
        # What an earlier rollback already restored is reported as such (not as "changed since"),
        # and never sent again: decided under the lock, so two rollbacks at once send it once.
        candidates, _ = plan_restores(done, snapshot, force=True)
        sent = ledger.already_sent(snapshot.account_id, [r["id"] for r in candidates])
        guard = RestoreGuard(snapshot, settings)
        restores, notes = plan_restores(done, snapshot, force, sent, guard)
        report.skipped = [f"{n['entity_type']} {n['entity_id']}: {n['reason']}" for n in notes if n["outcome"] == "skipped"]
        report.refused = [f"{guard.name(n['entity_type'], n['entity_id'])}: {n['reason']}" for n in notes if n["outcome"] == "refused"]
        report.forced = [f"{r['type']} {r['entity_type']} {r['entity_id']}: {r['forced']}" for r in restores if r["forced"]]
        for r in restores:
            r["entity_name"] = guard.title(r["entity_type"], r["entity_id"])
        actions = _as_actions(restores, run_id, snapshot.minor_per_unit)
        done_actions = actions
        if not actions.empty:
            ledger.record_cycle(actions, rollback_run_id, snapshot.account_id, snapshot.as_of, actor=actor, currency=snapshot.currency)
            done_actions, _ = execute_actions(
                actions, client,
                lambda o: ledger.mark_outcome(rollback_run_id, o.action_id, snapshot.as_of, o.error, o.status, o.result),
            )
    if not actions.empty:
        supersede_written_by(ledger, snapshot.account_id, rollback_run_id)
    outcome = dict(zip(done_actions["id"], done_actions["verdict"]))
    last_reason = dict(zip(done_actions["id"], done_actions["reasons"].map(lambda r: r[-1] if r else "")))
    for r in restores:
        label = f"{r['type']} {r['entity_type']} {r['entity_id']}"
        if outcome.get(r["id"]) == "executed":
            report.restored.append(label)
        else:
            report.failed.append(f"{label}: {last_reason.get(r['id'], '')}")
    report.rows = [
        {"action": r["type"], "entity": guard.name(r["entity_type"], r["entity_id"]), "before": _shown(r["before"], snapshot.minor_per_unit),
         "after": _shown(r["after"], snapshot.minor_per_unit),
         "outcome": ("restored" if outcome.get(r["id"]) == "executed" else "failed") + (" (forced)" if r["forced"] else ""),
         "reason": r["forced"] or ("" if outcome.get(r["id"]) == "executed" else last_reason.get(r["id"], ""))}
        for r in restores
    ] + [
        {"action": n["action"], "entity": guard.name(n["entity_type"], n["entity_id"]), "before": None, "after": None,
         "outcome": n["outcome"], "reason": n["reason"]}
        for n in notes
    ]
    return report


def _shown(value, minor_per_unit: int) -> str | None:
    """A restore's before/after for people: a budget in major units, or a status."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else f"{int(value) / minor_per_unit:,.2f}"
