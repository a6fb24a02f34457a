"""What every ``meta-ads`` command family shares: one-line errors, tables, argument types, where
the data lives, run ids by prefix."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..engine.snapshot import AccountSnapshot, load_snapshot_file
from ..input_rules import ad_account_id
from ..settings import Settings, dagster_home, load_settings
from ..store.ledger import Ledger


class CliError(Exception):
    """Something a person asked for cannot be done: one line on stderr, exit 2."""


def fail(message: str) -> int:
    print(f"meta-ads: {message}", file=sys.stderr)
    return 2


def read_snapshot(path: str) -> AccountSnapshot:
    """The snapshot in the file at ``path``, or one line saying why not (unreadable: CliError;
    not UTF-8, not JSON or rejected: the parser's SnapshotError)."""
    try:
        return load_snapshot_file(path)  # from the file: the loader says where it is not UTF-8
    except OSError as exc:
        raise CliError(f"cannot read snapshot {path}: {exc.strerror}") from None


def settings_in_mode(mode: str | None) -> Settings:
    """The settings from the environment, in ``--mode`` when given (else META_AUTO_MODE's)."""
    settings = load_settings()
    return settings.with_mode(mode) if mode else settings


# --- argument types: argparse turns their errors into one usage line and exit 2 ---------------------
def add_snapshot_arguments(parser: argparse.ArgumentParser, mode_help: str) -> None:
    """``--snapshot FILE`` and ``--mode``: what the commands that work from a snapshot file take."""
    parser.add_argument("--snapshot", required=True, metavar="FILE", help="the account snapshot, a JSON file (docs/snapshot-format.md)")
    parser.add_argument("--mode", choices=("suggest", "auto"), help=f"{mode_help} (default: META_AUTO_MODE, suggest when unset)")


def ad_account(value: str) -> str:
    """An ``--account`` value in the Graph API's form: ``2002`` and ``act_2002`` are one account."""
    try:
        return ad_account_id(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def positive_int(value: str) -> int:
    number = whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


def int_between(low: int, high: int):
    """An argument type: a whole number from ``low`` to ``high``."""

    def parse(value: str) -> int:
        number = whole_number(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value!r} must be from {low:,} to {high:,}")
        return number

    return parse


# --- output ------------------------------------------------------------------------------------------
def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """A plain fixed-width table for people (reasons on their own indented lines)."""
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for row, cell in zip(rows, cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(cell, widths)).rstrip())
        lines.extend(f"    - {reason}" for reason in row.get("reasons", []))
    return "\n".join(lines)


def print_rows(rows: list[dict], fmt: str, columns: tuple[str, ...], empty: str, header: str | None = None) -> None:
    """JSON for machines (the rows only), a table for people (after an optional header line)."""
    if fmt == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    if header:
        print(header)
    print(format_table(rows, columns) if rows else empty)


# --- where the data lives ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Place:
    """DAGSTER_HOME (or its documented default) and the ledger's database, resolved one way for
    every command."""

    home: Path
    home_from_env: bool
    ledger_url: str

    @classmethod
    def of(cls, settings: Settings) -> "Place":
        import os

        return cls(dagster_home(), bool(os.environ.get("DAGSTER_HOME")), settings.database_url())

    @property
    def sqlite_file(self) -> Path | None:
        url = sa.make_url(self.ledger_url)
        return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None

    def describe(self) -> str:
        where = "DAGSTER_HOME" if self.home_from_env else "DAGSTER_HOME unset: the default ./.dagster_home"
        ledger = self.sqlite_file or sa.make_url(self.ledger_url).render_as_string(hide_password=True)
        return f"home {self.home} ({where}); ledger {ledger}"

    def nothing_yet(self) -> str | None:
        """Why there is nothing to read here yet (None when there is a home and a ledger to read)."""
        if not self.home.is_dir():
            return f"nothing recorded yet: {self.home} does not exist (set DAGSTER_HOME, or run `meta-ads cycle` first)"
        if self.sqlite_file is not None and not self.sqlite_file.exists():
            return f"nothing recorded yet in {self.home} (no ledger at {self.sqlite_file}); run `meta-ads cycle` first"
        return None

    def open_ledger(self) -> Ledger:
        """The ledger, for a command that needs one: refused in one line where nothing was recorded."""
        missing = self.nothing_yet()
        if missing:
            raise CliError(missing)
        return Ledger(self.ledger_url)


def configured(settings: Settings, account: str | None) -> str | None:
    """``--account`` must name a configured account (one of the cycle's partitions)."""
    if account is not None:
        accounts = settings.cycle_accounts()
        if account not in accounts:
            raise CliError(f"--account: {account} is not one of the configured accounts ({', '.join(accounts)})")
    return account


def resolve_run(ledger: Ledger, run_id: str) -> str:
    """A run id, or the prefix of one (the 8 characters `meta-ads cycle` prints)."""
    matches = ledger.run_ids_starting_with(run_id)
    if run_id in matches:
        return run_id
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"run_id: no actions recorded for run {run_id}")
    raise CliError(f"run_id: {run_id} matches {len(matches)} runs: {', '.join(sorted(matches))}; give more of it")
