"""The operator's seat: ``status``, ``policies``, ``mode``, ``pause-automation``, ``resume-automation``
(the seed's /status, /policies, /toggle-mode, /stop, /start).

``status`` reads the ledger and the Dagster instance under DAGSTER_HOME and creates nothing; the
three switches store a change in the app database (``store/controls.py``) with who made it, and
the account's next cycle works under it.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..settings import OVERRIDABLE, Settings, load_settings
from ..store import controls
from ..store.ledger import Ledger, actions_table
from .common import CliError, Place, ad_account, configured, format_table, print_rows

# The seed's /policies keys first, in its order, then the other guard rails an account may override.
SEED_POLICIES = (
    "max_daily_change_pct", "max_auto_change_pct", "hard_stop_roas", "hard_stop_confidence", "min_impressions", "min_spend_usd",
    "min_age_hours", "creative_embargo_hours", "min_spain_percentage", "max_single_country_pct", "require_human_approval_creatives",
)  # fmt: skip
POLICIES = SEED_POLICIES + tuple(sorted(OVERRIDABLE - set(SEED_POLICIES)))
# The seed's "Today's Stats": the cycles' own proposals by verdict (deferred: what the kill switch
# or the per-tick limit held back), and approvals a cycle carried out.
TODAY_VERDICTS = ("executed", "queued", "policy_blocked", "safety_blocked", "deferred", "failed")
OWN_ACTOR = "autonomous"  # ledger.Ledger.record_cycle's actor for a cycle's own proposals
HEARTBEAT_FRESH = timedelta(minutes=5)  # an older scheduler heartbeat: the daemon is not running
CHANGE_COLUMNS = ("account", "control", "before", "after", "changed_by", "changed_at")


def accounts_of(settings: Settings, account: str | None) -> list[str]:
    """``--account`` (checked against the configured accounts), else every configured account."""
    return [configured(settings, account)] if account else settings.cycle_accounts()


# --- status ------------------------------------------------------------------------------------------
def today_counts(ledger: Ledger, account: str, since: datetime) -> dict[str, int]:
    """The ledger's count of ``account``'s cycle rows since ``since``: the cycles' own proposals
    (generated) by verdict, and the approvals they carried out. Rollbacks are not cycles."""
    c = actions_table.c
    query = (
        sa.select(c.verdict, c.actor, sa.func.count())
        .where(c.account_id == account, c.recorded_at >= since, c.rollback_of_run.is_(None))
        .group_by(c.verdict, c.actor)
    )
    with ledger.engine.connect() as conn:
        rows = conn.execute(query).all()
    own = {verdict: n for verdict, actor, n in rows if actor == OWN_ACTOR}
    return {
        "generated": sum(own.values()),
        **{verdict: own.get(verdict, 0) for verdict in TODAY_VERDICTS},
        "approvals_executed": sum(n for verdict, actor, n in rows if actor != OWN_ACTOR and verdict == "executed"),
    }


def open_approvals(ledger: Ledger, account: str, now: datetime) -> dict[str, int]:
    """Queued actions waiting for a person, and approvals no cycle has carried out yet (read
    only: rows past their deadline count as expired, as ``meta-ads pending`` would mark them)."""
    c = actions_table.c
    query = (
        sa.select(c.status, sa.func.count())
        .where(c.account_id == account, c.status.in_(("pending", "approved")), sa.or_(c.expires_at.is_(None), c.expires_at >= now))
        .group_by(c.status)
    )
    with ledger.engine.connect() as conn:
        counts = dict(conn.execute(query).all())
    return {"pending": counts.get("pending", 0), "approved": counts.get("approved", 0)}


def next_tick(now: datetime, interval_minutes: int) -> datetime:
    """The schedule's next tick after ``now``: cron ``*/N`` (N dividing 60) in UTC."""
    step = timedelta(minutes=interval_minutes)
    hour = now.replace(minute=0, second=0, microsecond=0)
    return hour + ((now - hour) // step + 1) * step


def schedule_state(instance, settings: Settings) -> tuple[bool, str]:
    """Whether the cycle schedule is on, and why: switched in the instance (UI, ``dagster
    schedule start|stop``), else its default in code (META_CYCLE_ENABLED, META_CYCLE_AUTO_START)."""
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    from ..schedules import SCHEDULE_NAME

    states = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE) if s.name == SCHEDULE_NAME]
    switched = [s.status for s in states if s.status in (InstigatorStatus.RUNNING, InstigatorStatus.STOPPED)]
    if switched:
        return switched[0] == InstigatorStatus.RUNNING, "switched in the instance"
    on = settings.meta_cycle_enabled and settings.meta_cycle_auto_start
    return on, "default: META_CYCLE_ENABLED and META_CYCLE_AUTO_START" if on else "default: META_CYCLE_ENABLED or META_CYCLE_AUTO_START is false"


def scheduler_heartbeat(instance, now: datetime) -> datetime | None:
    """The scheduler daemon's last heartbeat, when recent (no daemon: no scheduled cycle runs)."""
    beat = instance.get_daemon_heartbeats().get("SCHEDULER")
    if beat is None:
        return None
    at = datetime.fromtimestamp(beat.timestamp, timezone.utc)
    return at if now - at <= HEARTBEAT_FRESH else None


def cycle_records(instance, account: str, since: datetime) -> tuple[dict | None, dict]:
    """The account's last cycle run, and what its cycles since ``since`` recorded on the
    ``optimization_cycle`` asset: campaigns evaluated (summed) and the newest spend today."""
    from dagster import AssetKey, AssetRecordsFilter, RunsFilter

    from ..jobs import ACCOUNT_TAG, CYCLE_JOB_NAME

    last = None
    for record in instance.get_run_records(RunsFilter(job_name=CYCLE_JOB_NAME, tags={ACCOUNT_TAG: account}), limit=1):
        started = datetime.fromtimestamp(record.start_time, timezone.utc).isoformat() if record.start_time else None
        last = {"run_id": record.dagster_run.run_id, "status": record.dagster_run.status.value, "started": started}
    materializations = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("optimization_cycle"), asset_partitions=[account], after_timestamp=since.timestamp()),
        limit=10_000,
    ).records  # newest first
    metadata = [record.asset_materialization.metadata for record in materializations]
    evaluated = sum(int(m["campaigns_evaluated"].value) for m in metadata if "campaigns_evaluated" in m)
    spend = next((float(m["total_spend_today"].value) for m in metadata if "total_spend_today" in m), None)
    return last, {"evaluated": evaluated, "spend_today": spend}


def account_status(settings: Settings, account: str, stored: controls.Controls, ledger: Ledger, instance, schedule_on: bool, now: datetime) -> dict:
    since = now.replace(hour=0, minute=0, second=0, microsecond=0)  # today, UTC
    account_settings = stored.apply(settings.for_account(account))
    paused = stored.paused
    last, recorded = cycle_records(instance, account, since)
    cap = account_settings.max_daily_spend_usd
    spend = recorded["spend_today"]
    stopped = account_settings.stop_reason
    return {
        "account": account,
        "mode": account_settings.meta_auto_mode,
        "mode_set_by": stored.mode.changed_by if stored.mode else None,
        "mode_set_at": stored.mode.changed_at.isoformat() if stored.mode else None,
        "automation": "paused" if stopped else "running",
        "stopped_because": stopped,
        "paused_by": paused.changed_by if paused else None,
        "paused_at": paused.changed_at.isoformat() if paused else None,
        "schedule_on": schedule_on,
        "last_cycle": last,
        "next_cycle": next_tick(now, settings.meta_cycle_interval_minutes).isoformat() if schedule_on and not stopped else None,
        "today": {"evaluated": recorded["evaluated"], **today_counts(ledger, account, since)},
        "spend_today": spend,
        "max_daily_spend_usd": cap,
        "spend_pct": round(100 * spend / cap, 1) if spend is not None else None,
        "open_approvals": open_approvals(ledger, account, now),
    }


def _when(iso: str | None) -> str:
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC" if iso else "—"


def status_lines(status: dict, schedule_why: str) -> list[str]:
    """The seed's dashboard widget, one block per account."""
    mode = status["mode"] + (f" (set by {status['mode_set_by']} at {_when(status['mode_set_at'])})" if status["mode_set_by"] else " (META_AUTO_MODE)")
    automation = "running" if status["automation"] == "running" else f"stopped: {status['stopped_because']}"
    last = status["last_cycle"]
    last_text = f"{_when(last['started'])}, {last['status']} (run {last['run_id'][:8]})" if last else "none yet"
    today = status["today"]
    counts = " · ".join(f"{key.replace('_', ' ')} {today[key]}" for key in ("evaluated", "generated", *TODAY_VERDICTS, "approvals_executed"))
    spend = status["spend_today"]
    spend_text = (f"{spend:,.2f} / {status['max_daily_spend_usd']:,.2f} MAX_DAILY_SPEND_USD ({status['spend_pct']} %)"
                  if spend is not None else f"no cycle today / {status['max_daily_spend_usd']:,.2f} MAX_DAILY_SPEND_USD")
    approvals = status["open_approvals"]
    return [
        status["account"],
        f"  mode            {mode}",
        f"  automation      {automation}",
        f"  schedule        {'on' if status['schedule_on'] else 'off'} ({schedule_why})",
        f"  last cycle      {last_text}",
        f"  next cycle      {_when(status['next_cycle']) if status['next_cycle'] else '— (no scheduled cycle for this account)'}",
        f"  today (UTC)     {counts}",
        f"  spend today     {spend_text}",
        f"  open approvals  {approvals['pending']} pending · {approvals['approved']} approved, not yet carried out",
    ]


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    accounts = accounts_of(settings, args.account)
    place = Place.of(settings)
    missing = place.nothing_yet()
    if missing:
        print(missing)
        return 0
    from ..instance import InstanceError, open_instance

    ledger = place.open_ledger()
    os.environ["DAGSTER_HOME"] = str(place.home)
    try:
        instance = open_instance()
    except InstanceError as exc:
        raise CliError(str(exc)) from None
    now = datetime.now(timezone.utc)
    try:
        with instance:
            schedule_on, schedule_why = schedule_state(instance, settings)
            heartbeat = scheduler_heartbeat(instance, now)
            stored = controls.current(ledger, accounts)
            statuses = [account_status(settings, a, stored.get(a, controls.Controls()), ledger, instance, schedule_on, now) for a in accounts]
    finally:
        ledger.dispose()
    daemon = f"scheduler daemon: heartbeat at {heartbeat:%H:%M:%S} UTC" if heartbeat else "scheduler daemon: no recent heartbeat (scheduled cycles need `dagster-daemon run`)"
    if args.format == "json":
        print_rows([s | {"scheduler_heartbeat": heartbeat.isoformat() if heartbeat else None} for s in statuses], "json", (), "")
        return 0
    print(f"status · {place.describe()}")
    print(daemon)
    for status in statuses:
        print("\n".join(status_lines(status, schedule_why)))
    return 0


# --- policies ----------------------------------------------------------------------------------------
def cmd_policies(args: argparse.Namespace) -> int:
    settings = load_settings()
    accounts = accounts_of(settings, args.account)
    effective = {account: settings.for_account(account) for account in accounts}
    overridden = {account: sorted(set(settings.account_overrides(account)) & set(POLICIES)) for account in accounts}
    if args.format == "json":
        print_rows([
            {"account": account, "policies": {key: getattr(effective[account], key) for key in POLICIES}, "overridden": overridden[account]}
            for account in accounts
        ], "json", (), "")
        return 0
    rows = [
        {"variable": key.upper(), **{account: f"{getattr(effective[account], key)}{' *' if key in overridden[account] else ''}" for account in accounts}}
        for key in POLICIES
    ]
    print(format_table(rows, ("variable", *accounts)))
    if any(overridden.values()):
        print(f"* overridden for that account in META_ACCOUNTS_FILE ({settings.meta_accounts_file})")
    return 0


# --- the switches --------------------------------------------------------------------------------------
def _store(args: argparse.Namespace, control: str, value: str) -> int:
    settings = load_settings()
    accounts = accounts_of(settings, args.account)
    place = Place.of(settings)
    if place.sqlite_file is not None:
        place.sqlite_file.parent.mkdir(parents=True, exist_ok=True)  # a switch may come before the first cycle
    ledger = Ledger(place.ledger_url)
    try:
        before = controls.current(ledger, accounts)
        changes = controls.record(ledger, accounts, control, value, args.by)
    finally:
        ledger.dispose()
    rows = []
    for change in changes:
        stored = before.get(change.account_id, controls.Controls())
        if control == controls.MODE:
            was = stored.mode_or(settings.meta_auto_mode)
        else:
            was = controls.PAUSED if stored.paused is not None else controls.RUNNING
        rows.append({**change.as_dict(), "before": was, "after": change.value})
    note = "takes effect on each account's next cycle"
    if control == controls.AUTOMATION and value == controls.RUNNING and not settings.meta_auto_enabled:
        note += "; META_AUTO_ENABLED is false, so nothing is written until it is true as well"
    print_rows(rows, args.format, CHANGE_COLUMNS, "", header=f"{control} changed · {note}")
    return 0


def cmd_mode(args: argparse.Namespace) -> int:
    return _store(args, controls.MODE, args.mode)


def cmd_pause(args: argparse.Namespace) -> int:
    return _store(args, controls.AUTOMATION, controls.PAUSED)


def cmd_resume(args: argparse.Namespace) -> int:
    return _store(args, controls.AUTOMATION, controls.RUNNING)


def register(commands, formats: argparse.ArgumentParser) -> None:
    account_help = "only this configured ad account (2002 or act_2002); default: every configured account"
    status = commands.add_parser("status", parents=[formats], help="per account: mode, schedule, kill switch, last and next cycle, today's counts, spend, approvals",
                                 description="The seed's status widget per account, from the ledger and the Dagster instance at DAGSTER_HOME. Creates nothing.")
    status.add_argument("--account", type=ad_account, help=account_help)
    status.set_defaults(handler=cmd_status)

    policies = commands.add_parser("policies", parents=[formats], help="the guard rails in force per account, META_ACCOUNTS_FILE overrides marked",
                                   description="The guard rails each account's cycle works under: the environment's (or the defaults), "
                                   "with the account's META_ACCOUNTS_FILE overrides marked *.")
    policies.add_argument("--account", type=ad_account, help=account_help)
    policies.set_defaults(handler=cmd_policies)

    def switch(name: str, handler, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[formats], help=text, description=f"{text[0].upper()}{text[1:]}; stored with who and when.")
        parser.add_argument("--by", required=True, metavar="NAME", help="who (recorded with the change)")
        parser.add_argument("--account", type=ad_account, help=account_help)
        parser.set_defaults(handler=handler)
        return parser

    mode = switch("mode", cmd_mode, "switch the mode each account's next cycle works in, instead of META_AUTO_MODE")
    mode.add_argument("mode", choices=controls.VALUES[controls.MODE], help="suggest (queue for people; hard stops execute) or auto (execute the safety matrix)")
    switch("pause-automation", cmd_pause, "stop the autonomous system: each account's next cycle writes nothing and the schedule skips it")
    switch("resume-automation", cmd_resume, "undo pause-automation: the next cycles write again")
