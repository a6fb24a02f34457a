"""Assembles the code location; resources are chosen from the settings in resources.py."""

from dagster import Definitions, load_assets_from_modules

from .assets import collection
from .checks import executed_actions_within_guard_rails, roas_metrics_are_sane
from .cycle.graph import optimization_cycle
from .jobs import cycle_job
from .resources import build_resources
from .review import purge_audit_ledger, purge_schedule, review_actions, rollback_cycle
from .schedules import cycle_schedule
from .settings import load_settings


def build_definitions(settings=None) -> Definitions:
    settings = settings or load_settings()
    job = cycle_job(settings)
    return Definitions(
        assets=[*load_assets_from_modules([collection]), optimization_cycle],
        asset_checks=[roas_metrics_are_sane, executed_actions_within_guard_rails],
        jobs=[job, review_actions, rollback_cycle, purge_audit_ledger],
        schedules=[cycle_schedule(job, settings), purge_schedule],
        resources=build_resources(settings),
    )


defs = build_definitions()
