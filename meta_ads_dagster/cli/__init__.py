"""``meta-ads``: the small command line beside the Dagster UI, by command family.

- dry run (``dryrun.py``): ``plan``;
- replay (``replay.py``): ``backtest``;
- operate (``operate.py``): ``cycle``;
- control (``control.py``): ``status``, ``policies``, ``mode``, ``pause-automation``, ``resume-automation``;
- review (``review.py``): ``pending``, ``approve``, ``reject``, ``history``, ``log``, ``rollback``;
- data (``data.py``): ``import-csv``;
- simulate (``simulate.py``): ``simulate`` (policies compared on the simulated market).

Every error a person can cause is answered in one line on stderr with exit status 2, never with a
traceback: a bad setting, a bad snapshot or CSV file, a bad id, a locked account, an unreachable
database.
"""

from __future__ import annotations

import argparse
import sys

from ..engine.snapshot import SnapshotError
from ..settings import SettingsError
from ..store.approvals import ReviewError
from ..store.controls import ControlError
from .common import CliError, fail

EPILOG = """examples:
  meta-ads plan --snapshot examples/seed_worked_examples.json --mode auto
  meta-ads backtest --snapshot examples/demo_account.json --approve-all
  meta-ads cycle && meta-ads pending
  meta-ads status && meta-ads mode auto --by alice --account act_1001
  meta-ads pause-automation --by alice   (resume-automation --by alice to undo)
  meta-ads approve 44a63fb191a2045e --by alice && meta-ads cycle
  meta-ads import-csv export.csv --out account.json && meta-ads plan --snapshot account.json
  meta-ads simulate --campaigns 200 --days 14 --seed 7 --compare

settings come from environment variables (META_AUTO_MODE, MAX_DAILY_CHANGE_PCT, …): see the
settings table in README.md. Data lives under DAGSTER_HOME (./.dagster_home when unset)."""


class OneLineErrors(argparse.ArgumentParser):
    """A usage error (a missing --by, a mode that is not one) in one line on stderr, exit 2; the
    subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import control, data, dryrun, operate, replay, review, simulate

    parser = OneLineErrors(
        prog="meta-ads", description="Meta Ads autopilot on Dagster: import data, plan, backtest, run and review optimization cycles; simulate policies on a market model.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument("--format", choices=("table", "json"), default="table", help="table for people (default) or json for scripts")
    dryrun.register(commands, formats)
    replay.register(commands, formats)
    operate.register(commands)
    control.register(commands, formats)
    review.register(commands, formats)
    data.register(commands)
    simulate.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, SettingsError, SnapshotError, ReviewError, ControlError, LookupError) as exc:
        return fail(str(exc).removeprefix("Value error, "))
    except Exception as exc:  # noqa: BLE001 - storage and lock errors reach a person as one line
        from sqlalchemy.exc import SQLAlchemyError

        from ..store.locks import AccountLocked

        if isinstance(exc, AccountLocked):
            return fail(str(exc))
        if isinstance(exc, SQLAlchemyError):
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            return fail(f"the database could not be used: {first}")
        raise


if __name__ == "__main__":
    sys.exit(main())
