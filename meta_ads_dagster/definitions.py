"""Assembles the code location; resources are chosen from the settings in resources.py."""

from dagster import Definitions, load_assets_from_modules

from .alerts.sensors import make_cycle_alert_sensors, make_cycle_watch_sensor
from .assets import approvals, collection
from .cycle.graph import cycle_plan, optimization_cycle
from .jobs import account_partitions, cycle_job, per_account
from .resources import build_resources
from .review import purge_audit_ledger, purge_schedule, review_actions, rollback_cycle
from .schedules import cycle_schedule
from .settings import load_settings


def build_definitions(settings=None) -> Definitions:
    settings = settings or load_settings()
    accounts = account_partitions(settings)
    job = cycle_job(settings, accounts)
    schedule = cycle_schedule(job, accounts, settings)
    return Definitions(
        assets=per_account([*load_assets_from_modules([collection]), cycle_plan, optimization_cycle, approvals.pending_approvals], accounts),
        jobs=[job, review_actions, rollback_cycle, purge_audit_ledger],
        schedules=[schedule, purge_schedule],
        sensors=[*make_cycle_alert_sensors(settings), make_cycle_watch_sensor(settings, schedule, accounts.get_partition_keys())],
        resources=build_resources(settings),
    )


defs = build_definitions()
