"""``meta-ads backtest``: replay the engine day by day over a snapshot file's own history; writes
nothing, never needs Dagster."""

from __future__ import annotations

import argparse
import json

from ..backtest import CAVEAT, REPORT_COLUMNS, backtest_document, replay_days
from ..engine.metrics import WINDOW_DAYS
from .common import CliError, add_snapshot_arguments, format_table, positive_int, read_snapshot, settings_in_mode


def cmd_backtest(args: argparse.Namespace) -> int:
    settings = settings_in_mode(args.mode)  # first: a bad setting is named whatever the file holds
    snapshot = read_snapshot(args.snapshot)
    available = replay_days(snapshot)
    if available == 0:
        raise CliError(f"--snapshot: a backtest needs {WINDOW_DAYS} full days of insights before its first day; "
                       f"{args.snapshot} has none to replay")
    if args.days is not None and args.days > available:
        raise CliError(f"--days: {args.days} is more than this snapshot's history allows: at most {available} "
                       f"(each replayed day needs {WINDOW_DAYS} full days of insights before it)")
    document = backtest_document(snapshot, settings, args.days, args.approve_all)
    if args.format == "json":
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    first, last = document["days"][0], document["days"][-1]
    queued = "queued = approved at once, carried out by the next cycle after re-validation" if args.approve_all else "queued = would have waited for a person, not applied"
    print(f"backtest of {document['account']} over {len(document['days'])} day(s), {first['day']} to {last['day']}, "
          f"deciding at {first['decided_at'][11:16]} account time, in {document['mode']} mode ({queued}); "
          f"money in {document['currency']}")
    print(f"note: {CAVEAT}")
    print(format_table(document["actions"], REPORT_COLUMNS) if document["actions"] else "(no actions)")
    totals = document["totals"]
    print(f"totals: {totals['actions']} action(s), {totals['applied']} applied; daily spend moved by the applied ones: "
          f"+{totals['daily_spend_moved_up']:,.2f} / {totals['daily_spend_moved_down']:,.2f}")
    for kind, verdicts in totals["by_type_and_verdict"].items():
        print(f"  {kind}: " + ", ".join(f"{verdict} {count}" for verdict, count in verdicts.items()))
    return 0


def register(commands, formats: argparse.ArgumentParser) -> None:
    backtest = commands.add_parser(
        "backtest", parents=[formats], help="what the engine would have done, day by day, over a snapshot's own history",
        description="Replay the engine day by day over the snapshot's own insights: each day is decided at the "
        "snapshot's time of day, seeing only the full days before it, with the budgets, statuses and cooldowns "
        "its own earlier decisions left. Prints each day's actions with the daily spend they would move. The "
        "insights stay those of the real budgets: it shows what the rules would have done and when, not how "
        "delivery would have answered. Writes nothing.",
    )
    add_snapshot_arguments(backtest, "the mode to replay in")
    backtest.add_argument("--days", type=positive_int, metavar="N",
                          help=f"replay the last N days (default: every day with {WINDOW_DAYS} full days of insights before it)")
    backtest.add_argument("--approve-all", action="store_true",
                          help="approve every queued action at once: the next cycle re-validates and carries it out (default: only executed actions "
                          "change the replayed account, as when nobody reviews the queue)")
    backtest.set_defaults(handler=cmd_backtest)
