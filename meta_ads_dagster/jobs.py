"""The cycle job: one run = one cycle (collection assets + the cycle graph asset)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from .settings import Settings

CYCLE_JOB_NAME = "meta_ads_cycle"


ACCOUNT_TAG = "meta/account"  # dagster.yaml limits running cycles to one per value of this tag


def cycle_tags(settings: Settings, triggered_by: str) -> dict[str, str]:
    """Run tags that make run history the cycle log (filterable in the UI's run list)."""
    return {
        "meta/mode": settings.meta_api_mode,
        "meta/auto_mode": settings.meta_auto_mode,
        "meta/triggered_by": triggered_by,
        ACCOUNT_TAG: (settings.account_ids or ["default"])[0],
    }


def cycle_job(settings: Settings):
    return define_asset_job(
        CYCLE_JOB_NAME,
        selection=AssetSelection.groups("collection", "cycle"),
        description="One optimization cycle over the ad account: collect, decide, guard, execute, finalize.",
        # A run launched by hand (UI "Materialize", `dagster job execute`) is a manual cycle;
        # the schedule overrides this tag with "schedule".
        tags=cycle_tags(settings, "manual"),
    )
