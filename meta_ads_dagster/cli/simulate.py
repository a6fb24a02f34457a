"""``meta-ads simulate``: policies run over the simulated market (``meta_ads_dagster/market``) and
compared on the profit they earned and the guard rails they broke. Touches no ledger or Dagster
instance of the project: each run keeps its own ledger in a temporary folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import CliError, format_table, int_between

MAX_CAMPAIGNS = 10_000
MAX_DAYS = 90
FOOTNOTE = (
    "profit = the market's true, eventual revenue − spend over the simulated days; vs_*: profit gained over that baseline, "
    "in % of its profit; actions: writes the market accepted; breaches: writes the independent checker "
    "(meta_ads_dagster/audit/guard_rails.py) finds breaking a guard rail.\n"
    "plain_rules runs the seeds' table once a simulated day, at the day's first decision, like a daily automated rule in Ads Manager "
    "(every 30 minutes it would compound +30 % on the same 7-day ROAS); the engine decides every 30 minutes."
)


def writable_folder(path: Path) -> Path:
    """``path`` created if need be, refused in one line when it cannot take the output files
    (checked before the simulation, which may run for minutes)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {path}: cannot create it: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"--out {path}: not writable")
    return path


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..simulate.report import TABLE_COLUMNS, comparison, table_rows, write_chart, write_table
    from ..simulate.run import POLICY_NAMES, SPEND_CAP_OVER_STARTING_BUDGET, compare

    out = writable_folder(Path(args.out or f"simulation-{args.seed}"))
    names = POLICY_NAMES if args.compare else (args.policy,)
    market = f"{args.campaigns} campaigns, {args.days} days, seed {args.seed}"
    mode = f"; engine in {args.mode} mode" if "engine" in names else ""
    print(f"simulating {', '.join(names)} on {market}{mode}", file=sys.stderr)

    def on_day(policy: str, day: int) -> None:
        print(f"  {policy}: day {day}/{args.days}", file=sys.stderr)

    try:
        runs = compare(names, args.campaigns, args.days, args.seed, args.mode, on_day)
    except ValueError as exc:  # a market the model cannot draw (its parameters say why)
        raise CliError(f"simulate: {exc}") from None
    rails = runs[0].guard_rails
    rows = comparison(runs)
    print(
        f"simulated market: {market}{mode}; MAX_DAILY_SPEND_USD {rails['max_daily_spend_usd']:,.2f} "
        f"({SPEND_CAP_OVER_STARTING_BUDGET:g} × the starting daily budgets, {rails['starting_daily_budget_usd']:,.2f})"
    )
    print(format_table(table_rows(rows), TABLE_COLUMNS))
    print(FOOTNOTE)
    setup = {"campaigns": args.campaigns, "days": args.days, "seed": args.seed, "mode": args.mode, "guard_rails": rails}
    try:
        table = write_table(rows, setup, out)
        chart = write_chart(runs, f"Cumulative profit: {market}", out)
    except OSError as exc:
        raise CliError(f"--out {out}: cannot write the results: {exc.strerror}") from None
    print(f"table: {table}")
    print(f"chart: {chart}")
    return 0


def register(commands) -> None:
    simulate = commands.add_parser(
        "simulate", help="compare the engine with plain rules and doing nothing on a simulated market",
        description="Run policies over a seeded simulated ad account (one decision every 30 simulated minutes) and "
        "compare their true profit, actions, learning resets and guard-rail breaches. The same seed gives the same numbers.",
    )
    simulate.add_argument("--campaigns", type=int_between(1, MAX_CAMPAIGNS), default=200, help="campaigns at the start (default 200)")
    simulate.add_argument("--days", type=int_between(1, MAX_DAYS), default=14, help="simulated days (default 14)")
    simulate.add_argument("--seed", type=int_between(0, 2**32 - 1), default=7, help="the market's seed (default 7)")
    which = simulate.add_mutually_exclusive_group()
    which.add_argument("--policy", choices=("engine", "plain_rules", "do_nothing"), default="engine", help="the one policy to run (default engine)")
    which.add_argument("--compare", action="store_true", help="run all three on the same market seed and compare them")
    simulate.add_argument(
        "--mode", choices=("suggest", "auto"), default="suggest",
        help="the engine's mode: suggest (default; a simulated reviewer approves every queued action) or auto",
    )
    simulate.add_argument("--out", metavar="DIR", help="where the JSON table and the PNG chart go (default ./simulation-SEED)")
    simulate.set_defaults(handler=cmd_simulate)
