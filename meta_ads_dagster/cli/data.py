"""``meta-ads import-csv``: real data in. A CSV of ad performance (an Ads Manager export, or the
public KAG data set) becomes an account snapshot file that ``plan`` and the stub read. Never needs
Dagster or the ledger; writes the one file it is asked for, whole or not at all."""

from __future__ import annotations

import argparse
import json
import math
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..engine.snapshot import SnapshotError
from ..importing import FORMATS, CsvImportError, import_csv, write_json_atomically
from .common import CliError, ad_account


def cmd_import_csv(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        imported = import_csv(
            data, file_format=args.format, value_per_conversion=args.value_per_conversion, currency=args.currency,
            country=args.country, as_of=args.as_of, account_id=args.account, timezone_name=args.timezone,
        )
    except (CsvImportError, SnapshotError) as exc:
        raise CliError(f"{args.file}: {exc}") from None
    out = Path(args.out)
    try:
        write_json_atomically(json.dumps(imported.document, indent=1, ensure_ascii=False) + "\n", out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None
    print(f"imported {args.file}: {imported.summary()}")
    print(f"wrote {out}")
    return 0


# --- argument types: argparse turns their errors into one usage line and exit 2 ---------------------
def _matching(pattern: str, what: str):
    def parse(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return value
    return parse


def _money(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"{value!r} must be a finite number, 0 or more")
    return number


def _time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time with a UTC offset (2026-11-20T10:00:00+00:00)")
    return moment


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} is not an IANA time zone (Europe/Madrid)") from None
    return value


def register(commands) -> None:
    imports = commands.add_parser(
        "import-csv", help="real data in: an Ads Manager export (or the public KAG data) → a snapshot file",
        description="Turn a CSV of ad performance into an account snapshot (docs/snapshot-format.md) for "
        "`meta-ads plan --snapshot` or META_STUB_SNAPSHOT. What a performance export does not say (ids, "
        "budgets, creation times) is assumed as README.md's \"Real data in\" describes; the summary says so. "
        "A bad row is one error naming its row and column, and then nothing is written.",
    )
    imports.add_argument("file", metavar="FILE", help="the CSV file: an Ads Manager export or the KAG data set")
    imports.add_argument("--out", required=True, metavar="FILE", help="the snapshot file to write (replaced when it exists)")
    imports.add_argument("--format", choices=FORMATS, help="the file's format (default: told by its header)")
    imports.add_argument("--value-per-conversion", type=_money, metavar="AMOUNT",
                         help="KAG data only, and required there: the value of one approved conversion (it has no revenue)")
    imports.add_argument("--currency", type=_matching(r"[A-Z]{3}", "an ISO 4217 currency code (EUR)"),
                         help="the KAG data's currency (default USD); an export names its own in \"Amount spent (EUR)\", "
                         "which this must match")
    imports.add_argument("--country", type=_matching(r"[A-Z]{2}", "a two-letter country code in capitals (ES)"),
                         help="the country of every row of a file without a Country column (default ES)")
    imports.add_argument("--as-of", type=_time, metavar="TIME",
                         help="the snapshot's moment, ISO 8601 with offset (default 10:00 UTC the day after the last day)")
    imports.add_argument("--timezone", type=_time_zone, default="UTC", metavar="ZONE",
                         help="the ad account's IANA time zone, in which Ads Manager reports days (default UTC)")
    imports.add_argument("--account", type=ad_account, help="the ad account id, act_<digits> (default: derived from the campaign ids)")
    imports.set_defaults(handler=cmd_import_csv)
