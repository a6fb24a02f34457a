"""``meta-ads``: the small command line beside the Dagster UI.

- ``meta-ads plan --snapshot FILE --mode suggest|auto --format json|table``: a pure dry run of one
  cycle over a snapshot file (SNAPSHOT.md); writes nothing. Exit 2 when the snapshot is rejected.
- ``meta-ads cycle``: run one cycle now (the manual "run now"), recorded in the Dagster instance
  at DAGSTER_HOME (./.dagster_home when unset, created with telemetry off), and say where to look.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .engine.cycle import SUMMARY_COLUMNS, plan_document
from .engine.snapshot import SnapshotError, load_snapshot_text
from .settings import SettingsError, dagster_home, load_settings

INSTANCE_YAML = Path(__file__).with_name("instance.yaml")


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
        text = Path(args.snapshot).read_text()
    except OSError as exc:
        return _fail(f"cannot read snapshot {args.snapshot}: {exc.strerror}")
    try:
        settings = load_settings().with_mode(args.mode)
        document = plan_document(load_snapshot_text(text), settings)
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
    from dagster import DagsterInstance, DagsterInvalidConfigError

    from .jobs import CYCLE_JOB_NAME

    try:
        # Importing definitions builds the module-level ``defs`` too: both refuse what the
        # settings cannot run (e.g. META_API_MODE=live) with a SettingsError.
        from .definitions import build_definitions

        job = build_definitions(settings).get_job_def(CYCLE_JOB_NAME)
    except SettingsError as exc:
        return _fail(str(exc))
    with DagsterInstance.get() as instance:
        try:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        except DagsterInvalidConfigError as exc:  # e.g. a live secret's EnvVar is not set
            print(f"meta-ads: the cycle could not start: {exc.errors[0].message if exc.errors else exc}", file=sys.stderr)
            return 1
        actions = result.output_for_node("optimization_cycle") if result.success else None
    print(f"\ncycle run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'} "
          f"({settings.meta_api_mode} mode, {settings.meta_auto_mode})")
    for event in result.all_events if not result.success else []:
        if event.is_failure and event.event_specific_data is not None and getattr(event.event_specific_data, "error", None):
            print(f"  {event.step_key or 'run'}: {event.event_specific_data.error.message.strip()}")
    if actions is not None:
        from .engine.cycle import contract_actions

        print(format_table(contract_actions(actions), SUMMARY_COLUMNS) if len(actions) else "(no actions)")
    print(
        "\nWhere to look:\n"
        f"  DAGSTER_HOME={home} dagster dev      (then open http://127.0.0.1:3000)\n"
        f"  Runs → {result.run_id[:8]}: the cycle's event log, one 'action {{...}}' line per action\n"
        "  Assets → optimization_cycle: the action table and the stats plotted over cycles\n"
        "  Lineage: account_snapshot → insights → roas_metrics / ab_tests / spikes / creative_fatigue → optimization_cycle"
    )
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meta-ads", description="Meta Ads autopilot on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="dry run: what would one cycle do with this snapshot?")
    plan.add_argument("--snapshot", required=True, help="account snapshot JSON file (SNAPSHOT.md)")
    plan.add_argument("--mode", choices=("suggest", "auto"), default="suggest")
    plan.add_argument("--format", choices=("json", "table"), default="json")
    plan.set_defaults(handler=cmd_plan)

    cycle = commands.add_parser("cycle", help="run one cycle now (stub mode by default) and record it")
    cycle.set_defaults(handler=cmd_cycle)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
