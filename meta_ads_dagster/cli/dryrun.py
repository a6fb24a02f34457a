"""``meta-ads plan``: a pure dry run of one cycle over a snapshot file; writes nothing, never needs Dagster."""

from __future__ import annotations

import argparse
import json

from ..engine.cycle import SUMMARY_COLUMNS, plan_document
from .common import add_snapshot_arguments, format_table, read_snapshot, settings_in_mode


def cmd_plan(args: argparse.Namespace) -> int:
    settings = settings_in_mode(args.mode)  # first: a bad setting is named whatever the file holds
    document = plan_document(read_snapshot(args.snapshot), settings)
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
    add_snapshot_arguments(plan, "the mode to plan in")
    plan.set_defaults(handler=cmd_plan)
