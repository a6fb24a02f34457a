"""``meta-ads``: the small command line beside the Dagster UI.

- ``meta-ads plan --snapshot FILE --mode suggest|auto --format json|table``: a pure dry run of one
  cycle over a snapshot file (SNAPSHOT.md); writes nothing. Exit 2 when the snapshot is rejected.
- ``meta-ads cycle``: run one cycle now (the manual "run now"), recorded in the Dagster instance
  at DAGSTER_HOME (./.dagster_home when unset, created with telemetry off), and say where to look.
- ``meta-ads pending | approve ID... --by NAME | reject ID... --by NAME --reason TEXT``: the queue.
- ``meta-ads history [--limit N] | log RUN_ID``: the cycle list and one cycle's actions.
- ``meta-ads rollback RUN_ID [--force]``: undo a cycle.
Listing commands take ``--format table|json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .engine.actions import optional_float
from .engine.cycle import SUMMARY_COLUMNS, plan_document
from .engine.snapshot import SnapshotError, load_snapshot_text
from .input_rules import ad_account_id
from .settings import SettingsError, dagster_home, load_settings
from .store import approvals
from .store.ledger import Ledger

INSTANCE_YAML = Path(__file__).with_name("instance.yaml")


def ad_account(value: str) -> str:
    """An ``--account`` value in the Graph API's form: ``2002`` and ``act_2002`` are one account."""
    try:
        return ad_account_id(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fail(message: str) -> int:
    print(f"meta-ads: {message}", file=sys.stderr)
    return 2


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """A plain fixed-width table for people (reasons on their own indented lines)."""
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    for row, cell in zip(rows, cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(cell, widths)))
        lines.extend(f"    - {reason}" for reason in row.get("reasons", []))
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        data = Path(args.snapshot).read_bytes()  # bytes: the loader says where a file is not UTF-8
    except OSError as exc:
        return _fail(f"cannot read snapshot {args.snapshot}: {exc.strerror}")
    try:
        settings = load_settings().with_mode(args.mode)
        document = plan_document(load_snapshot_text(data), settings)
    except (SnapshotError, SettingsError) as exc:
        return _fail(str(exc))
    if args.format == "json":
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(f"plan as of {document['as_of']} in {document['mode']} mode")
        print(format_table(document["actions"], SUMMARY_COLUMNS) if document["actions"] else "(no actions)")
        print("stats: " + ", ".join(f"{k}={v}" for k, v in document["stats"].items()))
    return 0


def ensure_dagster_home() -> Path:
    """A persistent DAGSTER_HOME (without one Dagster keeps nothing), created on first use."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_cycle(args: argparse.Namespace) -> int:
    home = ensure_dagster_home()
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _fail(str(exc))
    # Imported here: `meta-ads plan` must not pay for (or need) Dagster.
    from dagster import DagsterInstance

    from .jobs import CYCLE_JOB_NAME

    try:
        # Importing definitions builds the module-level ``defs`` too: both refuse what the
        # settings cannot run (e.g. live mode without META_AD_ACCOUNT_IDS) with a SettingsError.
        from .definitions import build_definitions

        job = build_definitions(settings).get_job_def(CYCLE_JOB_NAME)
    except SettingsError as exc:
        return _fail(str(exc))
    accounts = job.partitions_def.get_partition_keys()
    if args.account and args.account not in accounts:
        return _fail(f"--account: {args.account} is not one of the configured accounts ({', '.join(accounts)})")
    run_ids, failed = [], 0
    with DagsterInstance.get() as instance:
        # Accounts are independent: one account's failed cycle does not stop the others'.
        for account in [args.account] if args.account else accounts:
            result = run_account_cycle(job, instance, account, settings)
            if result is None:  # the run could not start: no account's would
                return 1
            run_ids.append(result.run_id)
            failed += not result.success
    print(
        "\nWhere to look:\n"
        f"  DAGSTER_HOME={home} {Path(sys.executable).parent / 'dagster'} dev -m meta_ads_dagster.definitions"
        "   (then open http://127.0.0.1:3000)\n"
        f"  Runs → {', '.join(run_id[:8] for run_id in run_ids)}: each cycle's event log, one 'action {{...}}' line per action\n"
        "  Assets → optimization_cycle: the action table and the stats plotted over cycles (one partition per account)\n"
        "  Lineage: account_snapshot → insights → roas_metrics / ab_tests / spikes / creative_fatigue → optimization_cycle"
    )
    return 1 if failed else 0


def run_account_cycle(job, instance, account: str, settings):
    """One cycle of ``account`` in this process; prints its outcome and returns the run's result
    (None when the run could not start)."""
    from dagster import DagsterInvalidConfigError

    try:
        result = job.execute_in_process(instance=instance, partition_key=account, raise_on_error=False)
    except DagsterInvalidConfigError as exc:  # e.g. a live secret's EnvVar is not set
        print(f"meta-ads: the cycle could not start: {exc.errors[0].message if exc.errors else exc}", file=sys.stderr)
        return None
    print(f"\ncycle run {result.run_id} of {account}: {'SUCCESS' if result.success else 'FAILURE'} "
          f"({settings.meta_api_mode} mode, {settings.meta_auto_mode})")
    for event in result.all_events if not result.success else []:
        error = getattr(event.event_specific_data, "error", None) if event.is_step_failure else None
        while error is not None and error.cause is not None:  # the op's own exception, not Dagster's wrapper
            error = error.cause
        if error is not None:
            print(f"  {event.step_key}: {error.message.strip()}")
    if result.success:
        from .engine.cycle import contract_actions

        actions = result.output_for_node("optimization_cycle")
        print(format_table(contract_actions(actions), SUMMARY_COLUMNS) if len(actions) else "(no actions)")
    return result


LEDGER_COLUMNS = ("id", "type", "entity_type", "entity_id", "status", "current_budget_usd", "new_budget_usd", "actor", "age_hours", "cycle_run_id")


def ledger_rows(frame) -> list[dict]:
    """Ledger rows as the JSON the listing commands print (scripts read these keys)."""
    now = approvals.now_utc()
    rows = []
    for r in frame.itertuples(index=False):
        per_unit = r.minor_per_unit if r.minor_per_unit and r.minor_per_unit == r.minor_per_unit else 100
        recorded = r.recorded_at if r.recorded_at.tzinfo else r.recorded_at.replace(tzinfo=timezone.utc)
        rows.append({
            "id": r.action_id, "type": r.type, "entity_type": r.entity_type, "entity_id": r.entity_id,
            "status": r.status, "verdict": r.verdict, "rule": r.rule,
            "current_budget_usd": optional_float(r.current_budget_minor / per_unit if r.current_budget_minor is not None else None, 2),
            "new_budget_usd": optional_float(r.new_budget_minor / per_unit if r.new_budget_minor is not None else None, 2),
            "reasons": list(r.reasons), "actor": r.actor, "decided_by": r.decided_by if isinstance(r.decided_by, str) else None,
            "cycle_run_id": r.cycle_run_id, "recorded_at": recorded.isoformat(),
            "age_hours": round((now - recorded).total_seconds() / 3600, 2),
            "error_message": r.error_message if isinstance(r.error_message, str) else None,
        })
    return rows


def _print_rows(rows: list[dict], fmt: str, columns: tuple[str, ...] = LEDGER_COLUMNS, empty: str = "(none)") -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(format_table(rows, columns) if rows else empty)


def _ledger(settings=None) -> Ledger:
    return Ledger((settings or load_settings()).database_url())


def cmd_pending(args: argparse.Namespace) -> int:
    _print_rows(ledger_rows(approvals.queue(_ledger(), "pending", args.account)), args.format, empty="(no pending actions)")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        decided = approvals.decide(_ledger(settings), args.ids, args.command, args.by, getattr(args, "reason", None), settings.approval_ttl_hours)
    except approvals.ReviewError as exc:
        return _fail(str(exc))
    _print_rows(ledger_rows(decided), args.format)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    rows = _ledger().cycle_actions(args.run_id)
    if rows.empty:
        return _fail(f"run_id: no actions recorded for run {args.run_id}")
    _print_rows(ledger_rows(rows), args.format)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """The cycle list: Dagster's run storage (status, times, tags) plus the ledger's counts."""
    ensure_dagster_home()
    from dagster import DagsterInstance, RunsFilter

    from .jobs import ACCOUNT_TAG, CYCLE_JOB_NAME

    ledger = _ledger()
    runs = RunsFilter(job_name=CYCLE_JOB_NAME, tags={ACCOUNT_TAG: args.account} if args.account else None)
    with DagsterInstance.get() as instance:
        records = instance.get_run_records(runs, limit=args.limit)
    rows = []
    for record in records:
        run = record.dagster_run
        counts = ledger.cycle_actions(run.run_id)["verdict"].value_counts()
        rows.append({
            # The keys every listing's JSON rows carry, for a cycle: the run is the row's id.
            "id": run.run_id, "type": "cycle", "entity_type": "account", "entity_id": run.tags.get(ACCOUNT_TAG), "account": run.tags.get(ACCOUNT_TAG),
            "current_budget_usd": None, "new_budget_usd": None, "reasons": [],
            "actor": run.tags.get("meta/triggered_by"), "cycle_run_id": run.run_id,
            "run_id": run.run_id, "status": run.status.value,
            "started": datetime.fromtimestamp(record.start_time, timezone.utc).isoformat() if record.start_time else None,
            "triggered_by": run.tags.get("meta/triggered_by"), "mode": run.tags.get("meta/mode"),
            "auto_mode": run.tags.get("meta/auto_mode"),
            **{f"actions_{v}": int(counts.get(v, 0)) for v in ("executed", "queued", "failed")},
        })
    _print_rows(rows, args.format, ("run_id", "account", "status", "started", "triggered_by", "auto_mode", "actions_executed", "actions_queued", "actions_failed"), "(no cycles yet)")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    from .resources import meta_client
    from .store.locks import AccountLocked
    from .store.rollback import rollback_cycle_run

    settings = load_settings()
    try:
        report = rollback_cycle_run(
            _ledger(settings), meta_client(settings), settings, args.run_id, f"cli-rollback-{uuid.uuid4().hex[:12]}", args.by, args.force
        )
    except (LookupError, AccountLocked, SnapshotError) as exc:
        return _fail(str(exc))
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meta-ads", description="Meta Ads autopilot on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="dry run: what would one cycle do with this snapshot?")
    plan.add_argument("--snapshot", required=True, help="account snapshot JSON file (SNAPSHOT.md)")
    plan.add_argument("--mode", choices=("suggest", "auto"), default="suggest")
    plan.add_argument("--format", choices=("json", "table"), default="json")
    plan.set_defaults(handler=cmd_plan)

    cycle = commands.add_parser("cycle", help="run one cycle per ad account now (stub mode by default) and record them")
    cycle.add_argument("--account", type=ad_account, help="only this ad account (act_...)")
    cycle.set_defaults(handler=cmd_cycle)

    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument("--format", choices=("table", "json"), default="table")
    pending = commands.add_parser("pending", parents=[formats], help="list queued actions waiting for a person")
    pending.add_argument("--account", type=ad_account, help="only this ad account (act_...)")
    pending.set_defaults(handler=cmd_pending)
    approve = commands.add_parser("approve", parents=[formats], help="approve queued actions (the next cycle carries them out)")
    approve.add_argument("ids", nargs="+", metavar="ID")
    approve.add_argument("--by", required=True, metavar="NAME", help="the reviewer (recorded as the actor)")
    approve.set_defaults(handler=cmd_review)
    reject = commands.add_parser("reject", parents=[formats], help="reject queued actions")
    reject.add_argument("ids", nargs="+", metavar="ID")
    reject.add_argument("--by", required=True, metavar="NAME")
    reject.add_argument("--reason", required=True, metavar="TEXT")
    reject.set_defaults(handler=cmd_review)
    history = commands.add_parser("history", parents=[formats], help="the cycle list (Dagster runs + ledger counts)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--account", type=ad_account, help="only this ad account's cycles (act_...)")
    history.set_defaults(handler=cmd_history)
    log = commands.add_parser("log", parents=[formats], help="one cycle's actions")
    log.add_argument("run_id")
    log.set_defaults(handler=cmd_log)
    rollback = commands.add_parser("rollback", help="restore the budgets and statuses a cycle changed")
    rollback.add_argument("run_id")
    rollback.add_argument("--force", action="store_true", help="restore entities changed since the cycle, and past the guard rails, too (logged as forced)")
    rollback.add_argument("--by", default="cli", metavar="NAME", help="who asks (recorded as the actor)")
    rollback.set_defaults(handler=cmd_rollback)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
