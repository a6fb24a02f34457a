"""The cycle job: one run = one cycle of one ad account (collection assets + the cycle graph asset)."""

from dagster import AssetSelection, AssetsDefinition, StaticPartitionsDefinition, define_asset_job, in_process_executor, map_asset_specs

from .settings import Settings

CYCLE_JOB_NAME = "meta_ads_cycle"
# A cycle run's account is its partition key, so Dagster's own partition tag names it on every
# run however it was launched (schedule, UI, CLI, API, backfill); dagster.yaml limits running
# cycles to one per value of this tag, and the UI filters run history by it.
ACCOUNT_TAG = "dagster/partition"
CYCLE_TAG = "meta/cycle"  # on every cycle run: dagster.yaml caps how many accounts cycle at once
AUTO_MODE_TAG = "meta/auto_mode"  # the mode the run works in (an operator's stored one, or META_AUTO_MODE)


def account_partitions(settings: Settings) -> StaticPartitionsDefinition:
    """One partition per ad account (``Settings.cycle_accounts``).

    Static, not dynamic: the accounts are configuration (META_AD_ACCOUNT_IDS, validated with
    their META_ACCOUNTS_FILE overrides when the code location loads), so the partitions are
    exactly the configured accounts, in every process, the moment the location loads. Dynamic
    partitions live in the instance database instead: a second list to keep in step, where an
    account removed from the settings would go on cycling until someone also deleted its
    partition. Adding an account is a settings change plus a code-location reload (the UI's
    "Reload" button, or a restart of the gRPC server).
    """
    return StaticPartitionsDefinition(settings.cycle_accounts())


def per_account(assets: list[AssetsDefinition], accounts: StaticPartitionsDefinition) -> list[AssetsDefinition]:
    """The cycle's assets partitioned by account: each account's values, materializations and
    stored outputs are its own (two accounts cycling at once never share an asset file)."""
    return list(map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=accounts), assets))


def cycle_tags(settings: Settings, triggered_by: str) -> dict[str, str]:
    """Run tags that make run history the cycle log (filterable in the UI's run list), and the
    cycle's max runtime for run monitoring (``Settings.cycle_max_runtime``)."""
    return {
        "dagster/max_runtime": str(int(settings.cycle_max_runtime.total_seconds())),
        CYCLE_TAG: "true",
        "meta/mode": settings.meta_api_mode,
        AUTO_MODE_TAG: settings.meta_auto_mode,
        "meta/triggered_by": triggered_by,
    }


def cycle_job(settings: Settings, accounts: StaticPartitionsDefinition):
    # A run launched by hand (UI "Materialize", `dagster job execute`) is a manual cycle; the
    # schedule overrides this tag with "schedule".
    tags = cycle_tags(settings, "manual")
    configured = accounts.get_partition_keys()
    if len(configured) == 1:
        # `dagster job execute -j meta_ads_cycle` has no --partition option: a run launched without
        # `--tags '{"dagster/partition": ...}'` names no account. With one account configured it is
        # that account's cycle, a partitioned run like any other (its own partition tag, when it
        # has one, wins over the job's). With several, account_snapshot refuses to guess.
        tags[ACCOUNT_TAG] = configured[0]
    return define_asset_job(
        CYCLE_JOB_NAME,
        selection=AssetSelection.groups("collection", "cycle"),
        partitions_def=accounts,
        # The whole cycle in its run worker: its steps run one after the other anyway, and a
        # process per step cost ~60 s per cycle against ~3 s on the 2-core box (docs/deploy.md).
        # Scale comes from running accounts side by side, one run (process / pod) per account.
        executor_def=in_process_executor,
        description="One optimization cycle over one ad account (the run's partition): collect, decide, guard, execute, finalize.",
        tags=tags,
    )
