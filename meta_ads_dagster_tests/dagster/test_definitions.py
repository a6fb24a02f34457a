"""definitions.py: the code location loads, with the job, the schedule, the assets and their lineage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DefaultScheduleStatus, Definitions, EnvVar

from meta_ads_dagster.definitions import build_definitions
from meta_ads_dagster.jobs import CYCLE_JOB_NAME
from meta_ads_dagster.meta.live import LiveMetaAdsClient
from meta_ads_dagster.schedules import SCHEDULE_NAME
from meta_ads_dagster.settings import SettingsError, load_settings

COLLECTION = ["account_snapshot", "insights", "roas_metrics", "ab_tests", "spikes", "creative_fatigue"]


def _defs() -> Definitions:
    return build_definitions(load_settings())


def test_module_defs_load_and_validate():
    from meta_ads_dagster.definitions import defs

    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(CYCLE_JOB_NAME)
    assert job.name == CYCLE_JOB_NAME
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.job_name == CYCLE_JOB_NAME


def test_job_schedule_and_tags_by_default():
    defs = _defs()
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(CYCLE_JOB_NAME)
    assert job.run_tags == {
        "dagster/max_runtime": "1500", "meta/cycle": "true", "meta/mode": "stub", "meta/auto_mode": "suggest", "meta/triggered_by": "manual",
        "dagster/partition": "act_1001",  # the one account: a run launched without a partition is its cycle
    }
    # One partition per account: the stub's demo account when META_AD_ACCOUNT_IDS is unset.
    assert job.partitions_def.get_partition_keys() == ["act_1001"]
    assert job.executor_def.name == "in_process"  # one process (pod) per cycle, not per step

    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "*/30 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == CYCLE_JOB_NAME


@pytest.mark.parametrize("variable", ["META_CYCLE_ENABLED", "META_CYCLE_AUTO_START"])
def test_schedule_stopped_when_disabled(monkeypatch, variable):
    monkeypatch.setenv(variable, "false")
    schedule = _defs().resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.default_status == DefaultScheduleStatus.STOPPED


def test_interval_and_mode_reach_schedule_and_tags(monkeypatch):
    monkeypatch.setenv("META_CYCLE_INTERVAL_MINUTES", "15")
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    defs = _defs()
    assert defs.resolve_schedule_def(SCHEDULE_NAME).cron_schedule == "*/15 * * * *"
    assert defs.resolve_job_def(CYCLE_JOB_NAME).run_tags["dagster/max_runtime"] == "750"  # before the next cycle is due
    assert defs.resolve_job_def(CYCLE_JOB_NAME).run_tags["meta/auto_mode"] == "auto"


def test_assets_and_lineage():
    defs = _defs()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {*COLLECTION, "cycle_plan", "optimization_cycle", "pending_approvals"}

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(AssetKey(name)).parent_keys}

    assert parents("account_snapshot") == set()
    assert parents("insights") == {"account_snapshot"}
    for name in ("roas_metrics", "ab_tests", "spikes", "creative_fatigue"):
        assert parents(name) == {"account_snapshot", "insights"}
    assert parents("cycle_plan") == {"account_snapshot", "roas_metrics", "ab_tests", "spikes", "creative_fatigue"}
    # Execute reads the plan, never the decision frames: what it writes is what the checks judged.
    assert parents("optimization_cycle") == {"account_snapshot", "roas_metrics", "spikes", "cycle_plan"}

    assert graph.get(AssetKey("account_snapshot")).group_name == "collection"
    assert parents("pending_approvals") == {"optimization_cycle"}  # the queue as the cycle left it
    assert {graph.get(AssetKey(name)).group_name for name in ("cycle_plan", "optimization_cycle", "pending_approvals")} == {"cycle"}

    # The job runs every asset: one run is one whole cycle.
    job = defs.resolve_job_def(CYCLE_JOB_NAME)
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == keys

    blocking = {key.name for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    assert blocking == {"insights_are_fresh", "insight_rows_are_possible", "planned_actions_within_guard_rails", "plan_holds_on_tracking_outage"}


def test_every_account_is_a_partition_of_the_assets_checks_and_job(monkeypatch):
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,2002,act_3003")
    defs = _defs()
    Definitions.validate_loadable(defs)
    accounts = ["act_1001", "act_2002", "act_3003"]
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def.get_partition_keys() == accounts, key
    # The checks are evaluated in their assets' steps, so on each run's account too.
    assert {key.name: key.asset_key.to_user_string() for key in graph.asset_check_keys} == {
        "roas_metrics_are_sane": "roas_metrics", "executed_actions_within_guard_rails": "optimization_cycle",
        "insights_are_fresh": "insights", "insight_rows_are_possible": "insights", "no_tracking_outage": "insights",
        "planned_actions_within_guard_rails": "cycle_plan", "plan_holds_on_tracking_outage": "cycle_plan",
    }
    job = defs.resolve_job_def(CYCLE_JOB_NAME)
    assert job.partitions_def.get_partition_keys() == accounts
    assert "dagster/partition" not in job.run_tags  # no default among several: a run must name its account


def test_live_mode_without_accounts_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("META_API_MODE", "live")
    with pytest.raises(SettingsError, match="META_AD_ACCOUNT_IDS"):
        build_definitions(load_settings())


def test_live_mode_loads_without_secrets_and_keeps_them_as_env_vars(monkeypatch):
    monkeypatch.setenv("META_API_MODE", "live")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001")
    monkeypatch.setenv("META_ACCESS_TOKEN", "EAAG-secret-token")
    defs = build_definitions(load_settings())  # the code location loads whatever the secrets
    client = defs.resources["meta_client"]
    assert isinstance(client, LiveMetaAdsClient)
    # The token is an EnvVar reference, resolved only when a run starts: never a stored value.
    assert client.access_token == EnvVar("META_ACCESS_TOKEN")
    assert "EAAG-secret-token" not in repr(client)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MAX_AUTO_CHANGE_PCT", "2"), ("META_CYCLE_INTERVAL_MINUTES", "7"), ("META_AUTO_MODE", "yolo")],
)
def test_invalid_setting_is_refused_at_build_time(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        build_definitions()
    with pytest.raises(SettingsError, match=variable):
        load_settings()


@pytest.mark.parametrize("config", ["dagster.yaml", "meta_ads_dagster/instance.yaml"])
def test_instance_configs_load_with_one_cycle_per_account(request, monkeypatch, tmp_path, config):
    """The production file (PostgreSQL, from DAGSTER_PG_*) and the embedded one (SQLite) both
    queue runs with one running cycle per account (partition) and a cap on accounts at once."""
    import shutil
    from pathlib import Path

    import sqlalchemy as sa
    from dagster import DagsterInstance

    if config == "dagster.yaml":  # connects: give it a fresh PostgreSQL database
        url = sa.make_url(request.getfixturevalue("postgres_url"))
        for name, value in {"HOST": url.host, "PORT": str(url.port or 5432), "USER": url.username,
                            "PASSWORD": url.password or "", "DB": url.database}.items():
            monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    shutil.copy(Path(__file__).resolve().parents[2] / config, tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "meta/cycle", "limit": 10 if config == "dagster.yaml" else 4},
    ]


# --- the code location through Dagster's own command line (issue 10) ------------------------------
DAGSTER = Path(sys.executable).parent / "dagster"


def dagster_job_execute(home: Path, module: str, *extra: str, **env: str) -> subprocess.CompletedProcess:
    """``dagster job execute -m MODULE -j meta_ads_cycle`` as a person types it, outside the
    repository (so only the installed package is found), recording into ``home``."""
    return subprocess.run(
        [str(DAGSTER), "job", "execute", "-m", module, "-j", CYCLE_JOB_NAME, *extra],
        cwd=home.parent, env={**os.environ, "DAGSTER_HOME": str(home), **env}, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("module", ["meta_ads_dagster.definitions", "meta_ads_dagster"])
def test_dagster_job_execute_without_a_partition_cycles_the_one_account(module):
    from dagster import DagsterInstance, DagsterRunStatus

    home = Path(os.environ["DAGSTER_HOME"])
    done = dagster_job_execute(home, module)
    assert done.returncode == 0, done.stderr[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == "act_1001"  # a partitioned run: the account's history, queue limit and storage
        event = instance.get_latest_materialization_event(AssetKey("optimization_cycle"))
        assert event.run_id == run.run_id and event.dagster_event.partition == "act_1001"


def test_dagster_job_execute_without_a_partition_among_several_accounts_names_the_tag_to_add():
    from dagster import DagsterInstance

    home = Path(os.environ["DAGSTER_HOME"])
    done = dagster_job_execute(home, "meta_ads_dagster.definitions", META_AD_ACCOUNT_IDS="act_1001,act_2002")
    assert done.returncode == 1
    expected = (
        "dagster/partition: this run names no ad account and several are configured (act_1001, act_2002): "
        """add --tags '{"dagster/partition": "act_1001"}' to `dagster job execute`, or pick the account as the partition in the UI"""
    )
    assert f"Failure: {expected}\n" in done.stderr  # one line, in the step's failure event
    assert not (home / "stub_state").exists()  # no account read
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_latest_materialization_event(AssetKey("account_snapshot")) is None

    # The tag it names is what the command needs.
    tagged = dagster_job_execute(home, "meta_ads_dagster.definitions", "--tags", '{"dagster/partition": "act_2002"}', META_AD_ACCOUNT_IDS="act_1001,act_2002")
    assert tagged.returncode == 0, tagged.stderr[-3000:]
    assert (home / "stub_state" / "stub_act_2002.json").is_file() and not (home / "stub_state" / "stub_act_1001.json").exists()


def test_the_package_imports_without_dagster_and_plan_stays_light(tmp_path):
    """``defs`` on the package is built on first use: importing the engine or running
    ``meta-ads plan`` neither imports Dagster nor builds the definitions."""
    from ..repo_files import SEED_SNAPSHOT_PATH

    script = f"""
import sys
import meta_ads_dagster, meta_ads_dagster.engine.cycle
from meta_ads_dagster.cli import main
assert main(["plan", "--snapshot", {str(SEED_SNAPSHOT_PATH)!r}]) == 0
loaded = sorted(name for name in sys.modules if name == "dagster" or name.startswith(("dagster.", "meta_ads_dagster.definitions")))
print("LOADED", loaded, file=sys.stderr)
sys.exit(1 if loaded else 0)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("package", ["scipy", "alembic"])
def test_loading_the_definitions_leaves_heavy_packages_unimported(tmp_path, package):
    """scipy (the ROAS confidence's normal CDF) is imported where a confidence is computed, and
    Alembic (with Mako and Pygments) where the ledger's schema is checked, not by every process
    that loads the definitions (issue 14: each a quarter of a second of every start)."""
    script = f"""
import sys
import meta_ads_dagster.definitions
loaded = sorted(name for name in sys.modules if name.split(".")[0] == {package!r})
print("LOADED", loaded[:5], file=sys.stderr)
sys.exit(1 if loaded else 0)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
