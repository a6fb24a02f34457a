"""``meta-ads cycle``: run one cycle per configured account now, recorded in the Dagster instance."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from ..engine.cycle import SUMMARY_COLUMNS
from ..settings import dagster_home, load_settings
from .common import CliError, ad_account, format_table

INSTANCE_YAML = Path(__file__).resolve().parents[1] / "instance.yaml"


def ensure_dagster_home() -> Path:
    """A persistent DAGSTER_HOME (without one Dagster keeps nothing), created on first use: its
    instance config written once, under the home's lock, so a second `meta-ads cycle` started at
    the same moment never reads a half-written file."""
    from ..instance import LOCK_FILE
    from ..store.filelock import file_lock

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    with file_lock(home / LOCK_FILE):
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(INSTANCE_YAML.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def quiet_console():
    """The run's console logger for people: the ops' own warnings (the sanity check, a refused
    restore), nothing of Dagster's event stream. The summary after the run says the rest."""
    from dagster import logger

    class OwnWarnings(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            meta = getattr(record, "dagster_meta", None) or {}
            message = meta.get("orig_message") or record.getMessage()
            if record.levelno < logging.WARNING or meta.get("dagster_event") is not None or message.endswith("Not executing."):
                return False  # Dagster's own stream; a step skipped after a failure is said by the summary
            record.msg, record.args = message, ()
            return True

    class ToStderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            print(self.format(record), file=sys.stderr)  # whatever sys.stderr is now

    @logger(description="Warnings of the cycle's own steps, one line each.")
    def own_warnings(_context):
        log = logging.getLogger("meta_ads_dagster.cli.cycle")
        log.setLevel(logging.WARNING)
        if not log.handlers:
            handler = ToStderr()
            handler.setFormatter(logging.Formatter("  warning: %(message)s"))
            handler.addFilter(OwnWarnings())
            log.addHandler(handler)
        log.propagate = False
        return log

    return own_warnings


def failure_reasons(result) -> list[str]:
    """The one-line reason of each failed step: the op's own exception, not Dagster's wrapper."""
    lines = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_step_failure else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            message = error.message.strip().splitlines()
            # "dagster._core.definitions.events.Failure: snapshot rejected: …": the reason, not the class.
            last = re.sub(r"^[\w.]*\.\w+: ", "", message[-1]) if message else error.cls_name
            lines.append(f"{event.step_key}: {last}")
    # A blocking check that stopped the run: Dagster's error names it, its evaluation says why.
    lines += [f"check {e.check_name}: {e.description}" for e in result.get_asset_check_evaluations() if not e.passed and e.blocking]
    return lines


def run_account_cycle(job, instance, account: str, settings, verbose: bool):
    """One cycle of ``account`` in this process; prints its outcome and returns the run's result."""
    from dagster import DagsterInvalidConfigError

    from ..jobs import AUTO_MODE_TAG

    # Naming the logger in the run config is what makes Dagster use it instead of its console one.
    run_config = None if verbose else {"loggers": {"console": {}}}
    try:
        result = job.execute_in_process(instance=instance, partition_key=account, raise_on_error=False, run_config=run_config)
    except DagsterInvalidConfigError as exc:  # e.g. a live secret's EnvVar is not set
        message = exc.errors[0].message if exc.errors else str(exc)
        unset = re.search(r'environment variable "(\w+)"', message)
        reason = f"environment variable {unset.group(1)} is not set" if unset else message.strip().splitlines()[0]
        raise CliError(f"the cycle could not start: {reason}") from None
    # The mode the run worked in: its tag, which the run set from the operator's stored mode, if any.
    auto_mode = instance.get_run_by_id(result.run_id).tags.get(AUTO_MODE_TAG, settings.meta_auto_mode)
    print(f"\ncycle run {result.run_id} of {account}: {'SUCCESS' if result.success else 'FAILURE'} "
          f"({settings.meta_api_mode} mode, {auto_mode})")
    for line in failure_reasons(result) if not result.success else []:
        print(f"  {line}")
    if result.success:
        from ..engine.cycle import contract_actions

        actions = result.output_for_node("optimization_cycle")
        print(format_table(contract_actions(actions), SUMMARY_COLUMNS) if len(actions) else "(no actions)")
    return result


def cmd_cycle(args: argparse.Namespace) -> int:
    settings = load_settings()  # before anything is created: a bad setting changes nothing
    home = ensure_dagster_home()
    # Imported here: `meta-ads plan` and the review commands must not pay for (or need) Dagster.
    from ..definitions import build_definitions
    from ..instance import InstanceError, open_instance
    from ..jobs import CYCLE_JOB_NAME

    if not args.verbose:
        warnings.filterwarnings("ignore", category=UserWarning)  # Dagster's preview notices, not the person's business
    job = build_definitions(settings).resolve_job_def(CYCLE_JOB_NAME)
    if not args.verbose:
        job = job.with_logger_defs({"console": quiet_console()})
    accounts = job.partitions_def.get_partition_keys()
    if args.account and args.account not in accounts:
        raise CliError(f"--account: {args.account} is not one of the configured accounts ({', '.join(accounts)})")
    run_ids, failed = [], 0
    try:
        instance = open_instance()  # once, before any run: a new home's storage is created by one process
    except InstanceError as exc:
        raise CliError(str(exc)) from None
    with instance:
        # Accounts are independent: one account's failed cycle does not stop the others'.
        for account in [args.account] if args.account else accounts:
            result = run_account_cycle(job, instance, account, settings, args.verbose)
            run_ids.append(result.run_id)
            failed += not result.success
    print(
        "\nWhere to look:\n"
        f"  DAGSTER_HOME={home} {Path(sys.executable).parent / 'dagster'} dev -m meta_ads_dagster"
        "   (then open http://127.0.0.1:3000)\n"
        f"  Runs → {', '.join(run_id[:8] for run_id in run_ids)}: each cycle's event log, one 'action {{...}}' line per action\n"
        "  Assets → cycle_plan: what the cycle decided, checked before any write\n"
        "  Assets → optimization_cycle: the action table (Events tab) and the stats plotted over cycles (Overview → Plots; one partition per account)\n"
        "  Assets → pending_approvals: what waits for a person\n"
        "  Lineage: account_snapshot → insights → roas_metrics / ab_tests / spikes / creative_fatigue → cycle_plan → optimization_cycle → pending_approvals\n"
        f"  Review: meta-ads pending · meta-ads log {run_ids[0][:8] if run_ids else 'RUN'} · meta-ads history"
    )
    return 1 if failed else 0


def register(commands) -> None:
    cycle = commands.add_parser(
        "cycle", help="run one cycle per configured ad account now and record it",
        description="Run one cycle per configured ad account now (stub mode by default), recorded in the Dagster "
        "instance at DAGSTER_HOME (./.dagster_home when unset, created on first use) like a scheduled one.",
    )
    cycle.add_argument("--account", type=ad_account, help="only this ad account (2002 or act_2002)")
    cycle.add_argument("--verbose", action="store_true", help="print Dagster's whole event log, not just warnings and the summary")
    cycle.set_defaults(handler=cmd_cycle)
