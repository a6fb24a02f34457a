"""``meta-ads plan``: a pure dry run of one cycle over a snapshot file; writes nothing, never needs Dagster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..engine.cycle import SUMMARY_COLUMNS, plan_document
from ..engine.snapshot import load_snapshot_text
from ..settings import load_settings
from .common import CliError, format_table


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        data = Path(args.snapshot).read_bytes()  # bytes: the loader says where a file is not UTF-8
    except OSError as exc:
        raise CliError(f"cannot read snapshot {args.snapshot}: {exc.strerror}") from None
    settings = load_settings()
    document = plan_document(load_snapshot_text(data), settings.with_mode(args.mode) if args.mode else settings)
    if args.format == "json":
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(f"plan as of {document['as_of']} in {document['mode']} mode")
        print(format_table(document["actions"], SUMMARY_COLUMNS) if document["actions"] else "(no actions)")
        print("stats: " + ", ".join(f"{k}={v}" for k, v in document["stats"].items()))
    return 0


def register(commands, formats: argparse.ArgumentParser) -> None:
    plan = commands.add_parser(
        "plan", parents=[formats], help="dry run: what one cycle would do with a snapshot file (writes nothing)",
        description="Run one cycle over an account snapshot (docs/snapshot-format.md) up to execution: rules, "
        "policy, safety, routing. Reads cooldowns from the file's recent_actions only and writes nothing.",
    )
    plan.add_argument("--snapshot", required=True, metavar="FILE", help="the account snapshot, a JSON file (docs/snapshot-format.md)")
    plan.add_argument("--mode", choices=("suggest", "auto"), help="the mode to plan in (default: META_AUTO_MODE, suggest when unset)")
    plan.set_defaults(handler=cmd_plan)
