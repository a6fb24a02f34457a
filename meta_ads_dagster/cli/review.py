"""The review family: ``pending``, ``approve``, ``reject``, ``history``, ``log``, ``rollback``.

They read the ledger where the cycles recorded it (:class:`~.common.Place`); a read command on a
home with nothing in it says so in one line and creates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import datetime, timezone

import pandas as pd

from ..engine.actions import optional_float
from ..settings import Settings, load_settings
from ..store import approvals, controls
from .common import CliError, Place, ad_account, configured, positive_int, print_rows, resolve_run

LEDGER_COLUMNS = ("id", "type", "entity_type", "entity_id", "status", "current_budget_usd", "new_budget_usd", "actor", "age_hours", "cycle_run_id")
PENDING_COLUMNS = ("account", "id", "type", "rule", "unit", "entity", "confidence", "budget", "at_stake", "status", "approved_by")
HISTORY_COLUMNS = ("run_id", "kind", "account", "status", "started", "triggered_by", "auto_mode", "actions_executed", "actions_queued", "actions_failed", "undoes")
ROLLBACK_COLUMNS = ("action", "entity", "before", "after", "outcome", "reason")


def _money(minor, per_unit: int) -> float | None:
    return optional_float(minor / per_unit if minor is not None and not pd.isna(minor) else None, 2)


def ledger_rows(frame: pd.DataFrame) -> list[dict]:
    """Ledger rows as the JSON the listing commands print (scripts read these keys)."""
    now = approvals.now_utc()
    rows = []
    for r in frame.itertuples(index=False):
        per_unit = int(r.minor_per_unit) if r.minor_per_unit and not pd.isna(r.minor_per_unit) else 100
        recorded = r.recorded_at if r.recorded_at.tzinfo else r.recorded_at.replace(tzinfo=timezone.utc)
        rows.append({
            "id": r.action_id, "type": r.type, "entity_type": r.entity_type, "entity_id": r.entity_id,
            "entity_name": r.entity_name, "account": r.account_id, "currency": r.currency,
            "status": r.status, "verdict": r.verdict, "rule": r.rule, "confidence": optional_float(r.confidence, 4),
            "current_budget_usd": _money(r.current_budget_minor, per_unit), "new_budget_usd": _money(r.new_budget_minor, per_unit),
            "reasons": list(r.reasons), "actor": r.actor, "decided_by": r.decided_by if isinstance(r.decided_by, str) else None,
            "cycle_run_id": r.cycle_run_id, "recorded_at": recorded.isoformat(),
            "age_hours": round((now - recorded).total_seconds() / 3600, 2),
            "error_message": r.error_message if isinstance(r.error_message, str) else None,
            "rollback_of_run": r.rollback_of_run if isinstance(r.rollback_of_run, str) else None,
            "undoes": r.undoes if isinstance(r.undoes, str) else None,
            "unit": r.unit_id if isinstance(r.unit_id, str) else None,
        })
    return rows


def _entity(row: dict) -> str:
    name = f" '{row['entity_name']}'" if row.get("entity_name") else ""
    return f"{row['entity_type']} {row['entity_id']}{name}"


def _at_stake(row: dict, spend_7d: float | None) -> float:
    """Money a queued action moves a day: a budget change's size, or what a pause stops spending."""
    if row["current_budget_usd"] is not None and row["new_budget_usd"] is not None:
        return round(abs(row["new_budget_usd"] - row["current_budget_usd"]), 2)
    return round((spend_7d or 0.0) / 7, 2) if row["type"] in ("pause", "publish_winner") else 0.0


def _read(settings: Settings):
    """The ledger of this place, or None (after saying so in one line) when nothing is recorded."""
    place = Place.of(settings)
    missing = place.nothing_yet()
    if missing:
        print(missing)
        return place, None
    return place, place.open_ledger()


def pending_rows(queued: pd.DataFrame) -> list[dict]:
    """The queue as ``meta-ads pending`` lists it: the most money at stake first, and a
    reallocation's legs (one decision, approved or rejected whole) side by side under their unit,
    ranked by the unit's largest leg."""
    rows = ledger_rows(queued)
    spend = queued["input_snapshot"].map(lambda s: json.loads(s).get("spend_7d") if isinstance(s, str) else None)
    for row, spend_7d in zip(rows, spend):
        currency = row["currency"] or ""
        budget = (f"{currency} {row['current_budget_usd']:,.2f} → {row['new_budget_usd']:,.2f}".strip()
                  if row["current_budget_usd"] is not None and row["new_budget_usd"] is not None else None)
        row |= {"entity": _entity(row), "budget": budget, "at_stake": _at_stake(row, spend_7d),
                "approved_by": row["decided_by"] if row["status"] == "approved" else None}
    def decision(row: dict) -> str:
        return row["unit"] or row["id"]

    stake: dict[str, float] = {}
    for row in rows:
        stake[decision(row)] = max(stake.get(decision(row), 0.0), row["at_stake"])
    rows.sort(key=lambda r: (r["account"], -stake[decision(r)], decision(r), r["id"]))
    return rows


def cmd_pending(args: argparse.Namespace) -> int:
    settings = load_settings()
    account = configured(settings, args.account)
    place, ledger = _read(settings)
    if ledger is None:
        return 0
    queued = pd.concat([approvals.queue(ledger, status, account) for status in ("pending", "approved")], ignore_index=True)
    rows = pending_rows(queued)
    print_rows(rows, args.format, PENDING_COLUMNS, "(no pending actions)", header=f"pending and approved actions · {place.describe()}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    settings = load_settings()
    ledger = Place.of(settings).open_ledger()
    decided = approvals.decide(ledger, args.ids, args.command, args.by, getattr(args, "reason", None), settings.approval_ttl_hours)
    print_rows(ledger_rows(decided), args.format, LEDGER_COLUMNS, "(none)")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    settings = load_settings()
    place = Place.of(settings)
    ledger = place.open_ledger()
    run_id = resolve_run(ledger, args.run_id)
    rows = ledger_rows(ledger.cycle_actions(run_id))
    undone = ledger_rows(ledger.rollbacks(of_run=run_id))
    rolled_back_by = {}
    for restore in undone:
        rolled_back_by.setdefault(restore["undoes"], []).append(restore["cycle_run_id"])
    for row in rows:
        row["rolled_back_by"] = rolled_back_by.get(row["id"], [])
    runs = sorted({r["cycle_run_id"] for r in undone})
    note = f"; rolled back by {', '.join(runs)}" if runs else ""
    print_rows(rows, args.format, LEDGER_COLUMNS, "(no actions)", header=f"run {run_id}{note} · {place.describe()}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """The cycle list: Dagster's run storage (status, times, tags) and the ledger's counts, with
    each rollback as a row of its own pointing at the cycle it undid, and each stored mode or
    automation switch (``meta-ads mode``, ``pause-automation``) as a row of its own."""
    settings = load_settings()
    account = configured(settings, args.account)
    place, ledger = _read(settings)
    if ledger is None:
        return 0
    from dagster import RunsFilter

    from ..instance import InstanceError, open_instance
    from ..jobs import ACCOUNT_TAG, CYCLE_JOB_NAME

    os.environ["DAGSTER_HOME"] = str(place.home)
    runs = RunsFilter(job_name=CYCLE_JOB_NAME, tags={ACCOUNT_TAG: account} if account else None)
    try:
        instance = open_instance()
    except InstanceError as exc:
        raise CliError(str(exc)) from None
    with instance:
        records = instance.get_run_records(runs, limit=args.limit)
    rows = []
    for record in records:
        run = record.dagster_run
        counts = ledger.cycle_actions(run.run_id)["verdict"].value_counts()
        rows.append(_history_row(
            run.run_id, "cycle", run.tags.get(ACCOUNT_TAG), run.status.value,
            datetime.fromtimestamp(record.start_time, timezone.utc).isoformat() if record.start_time else None,
            run.tags.get("meta/triggered_by"), run.tags.get("meta/mode"), run.tags.get("meta/auto_mode"), counts, None,
        ))
    for run_id, restores in ledger.rollbacks(account=account).groupby("cycle_run_id", sort=False):
        first = restores.iloc[0]
        recorded = pd.Timestamp(first["recorded_at"])
        recorded = recorded.tz_localize("UTC") if recorded.tzinfo is None else recorded
        counts = restores["verdict"].value_counts()
        rows.append(_history_row(run_id, "rollback", first["account_id"], "SUCCESS" if not counts.get("failed") else "FAILURE",
                                 recorded.isoformat(), first["actor"], None, None, counts, first["rollback_of_run"]))
    for change in controls.history(ledger, account, limit=args.limit):  # the operator's switches, between the cycles they steered
        rows.append(_history_row(None, change.control, change.account_id, change.value, change.changed_at.isoformat(),
                                 change.changed_by, None, change.value if change.control == controls.MODE else None, None, None))
    rows.sort(key=lambda r: r["started"] or "", reverse=True)
    print_rows(rows[: args.limit], args.format, HISTORY_COLUMNS, "(no cycles yet)", header=f"cycles and rollbacks · {place.describe()}")
    return 0


def _history_row(run_id, kind, account, status, started, triggered_by, mode, auto_mode, counts, undoes) -> dict:
    return {
        # The keys every listing's JSON rows carry, for a run: the run is the row's id.
        "id": run_id, "type": kind, "entity_type": "account", "entity_id": account, "account": account,
        "current_budget_usd": None, "new_budget_usd": None, "reasons": [], "actor": triggered_by, "cycle_run_id": run_id,
        "run_id": run_id, "kind": kind, "status": status, "started": started, "triggered_by": triggered_by,
        "mode": mode, "auto_mode": auto_mode, "undoes": undoes,
        **{f"actions_{v}": int(counts.get(v, 0)) if counts is not None else None for v in ("executed", "queued", "failed")},
    }


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..resources import meta_client
    from ..store.rollback import rollback_cycle_run

    settings = load_settings()
    place = Place.of(settings)
    ledger = place.open_ledger()
    run_id = resolve_run(ledger, args.run_id)
    os.environ["DAGSTER_HOME"] = str(place.home)  # the stub keeps its accounts under it
    report = rollback_cycle_run(ledger, meta_client(settings), settings, run_id, f"cli-rollback-{uuid.uuid4().hex[:12]}", args.by, args.force)
    if args.format == "json":
        print_rows(report.as_dict(), "json", (), "")
    else:
        restored = len(report.restored)
        print_rows(report.rows, "table", ROLLBACK_COLUMNS, "(nothing to restore)",
                   header=f"rollback {report.rollback_run_id} of run {run_id}: {restored} restored, {len(report.skipped)} skipped, "
                          f"{len(report.refused)} refused, {len(report.forced)} forced, {len(report.failed)} failed")
    return 1 if report.failed else 0


def register(commands, formats: argparse.ArgumentParser) -> None:
    pending = commands.add_parser("pending", parents=[formats], help="queued actions waiting for a person, and approvals not yet carried out",
                                  description="Queued actions and approvals a cycle has not carried out yet, by account, the most "
                                  "money at stake first.")
    pending.add_argument("--account", type=ad_account, help="only this configured ad account (2002 or act_2002)")
    pending.set_defaults(handler=cmd_pending)

    approve = commands.add_parser("approve", parents=[formats], help="approve queued actions (the next cycle carries them out)")
    approve.add_argument("ids", nargs="+", metavar="ID", help="action ids, as `meta-ads pending` shows them")
    approve.add_argument("--by", required=True, metavar="NAME", help="the reviewer (recorded as the actor)")
    approve.set_defaults(handler=cmd_review)

    reject = commands.add_parser("reject", parents=[formats], help="reject queued actions")
    reject.add_argument("ids", nargs="+", metavar="ID", help="action ids, as `meta-ads pending` shows them")
    reject.add_argument("--by", required=True, metavar="NAME", help="the reviewer (recorded as the actor)")
    reject.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the ledger)")
    reject.set_defaults(handler=cmd_review)

    history = commands.add_parser("history", parents=[formats], help="the cycle list, newest first, rollbacks and mode/automation switches included")
    history.add_argument("--limit", type=positive_int, default=20, help="how many rows at most (default 20)")
    history.add_argument("--account", type=ad_account, help="only this configured ad account's runs (2002 or act_2002)")
    history.set_defaults(handler=cmd_history)

    log = commands.add_parser("log", parents=[formats], help="one run's actions (a cycle or a rollback)")
    log.add_argument("run_id", metavar="RUN_ID", help="a run id, or its first characters (the 8 `meta-ads cycle` prints)")
    log.set_defaults(handler=cmd_log)

    rollback = commands.add_parser("rollback", parents=[formats], help="restore the budgets and statuses a cycle changed",
                                   description="Restore what a cycle changed, through the guard rails as they stand now.")
    rollback.add_argument("run_id", metavar="RUN_ID", help="the cycle's run id, or its first characters")
    rollback.add_argument("--force", action="store_true", help="restore entities changed since the cycle, and past the guard rails, too (logged as forced)")
    rollback.add_argument("--by", default="cli", metavar="NAME", help="who asks (recorded as the actor; default cli)")
    rollback.set_defaults(handler=cmd_rollback)
