"""The production instance (top-level dagster.yaml) with real processes against real PostgreSQL.

One deployment per module (``deployment.py``): a fresh PostgreSQL database, daemon, webserver and
read-only webserver, two ad accounts of the stub's demo, the schedule stopped so that only the
schedule test's own tick adds cycles. Everything is driven through the webservers' GraphQL API;
PostgreSQL is then read directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from meta_ads_dagster_tests.conftest import fresh_postgres_database

from .deployment import (
    APP_SCHEMA, FINISHED, IN_PROGRESS, JOB, LOCATION, REPO, REPOSITORY, REPOSITORY_CONTENTS, RUN_TIMEOUT, SCHEDULE,
    SCHEDULE_SELECTOR, START_SCHEDULE, STOP_SCHEDULE, pg_env, production_deployment,
)

ASSETS = {"account_snapshot", "insights", "roas_metrics", "ab_tests", "spikes", "creative_fatigue", "cycle_plan", "optimization_cycle"}
ACCOUNTS = ("act_1001", "act_2002")  # two demo accounts (stub mode): one partition each
ACCOUNT = ACCOUNTS[0]
SETTINGS = {
    "META_AD_ACCOUNT_IDS": ",".join(ACCOUNTS),
    # Listed but stopped: no tick adds cycles until the schedule test starts it. Every minute, so
    # that test waits for one real tick of the daemon's scheduler, not 30 minutes.
    "META_CYCLE_AUTO_START": "false",
    "META_CYCLE_INTERVAL_MINUTES": "1",
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with fresh_postgres_database() as database_url:
        with production_deployment(tmp_path_factory.mktemp("production"), database_url, SETTINGS) as running:
            yield running


# --- tests ---------------------------------------------------------------------------------------------


def test_instance_is_postgres_with_queue_monitoring_and_retries(tmp_path, monkeypatch, deployment):
    """The same dagster.yaml, loaded in-process with the deployment's variables."""
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    for name, value in pg_env(deployment.database_url).items():
        monkeypatch.setenv(name, value)
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},  # one cycle per account
            {"key": "meta/cycle", "limit": 10},  # accounts cycling at once
        ]
        assert instance.run_monitoring_enabled
        assert 0 < instance.run_monitoring_max_runtime_seconds < 30 * 60  # shorter than the interval
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert not instance.telemetry_enabled


def test_unset_connection_variable_is_named(tmp_path, monkeypatch):
    """The production file has no fallback: a missing DAGSTER_PG_* stops the instance, naming it."""
    from dagster import DagsterInstance
    from dagster._core.errors import DagsterInvalidConfigError

    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "x" if name != "DAGSTER_PG_PORT" else "5432")
    monkeypatch.delenv("DAGSTER_PG_HOST")
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_HOST"):
        DagsterInstance.from_config(str(tmp_path))


def test_job_schedule_and_assets_are_listed(deployment):
    repos = deployment.gql(deployment.admin, REPOSITORY_CONTENTS)["repositoriesOrError"]["nodes"]
    (repo,) = [r for r in repos if r["location"]["name"] == LOCATION]
    assert repo["name"] == REPOSITORY
    assert JOB in {job["name"] for job in repo["jobs"]}
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert schedules[SCHEDULE]["cronSchedule"] == "*/1 * * * *"  # META_CYCLE_INTERVAL_MINUTES=1 here (default */30)
    assert schedules[SCHEDULE]["scheduleState"]["status"] == "STOPPED"  # META_CYCLE_AUTO_START=false
    assert ASSETS <= {"/".join(node["assetKey"]["path"]) for node in repo["assetNodes"]}


def test_cycles_of_two_accounts_run_side_by_side_and_are_recorded_in_postgres(deployment):
    run_ids = {}
    for account in ACCOUNTS:
        launched = deployment.launch(deployment.admin, account)
        assert launched["__typename"] == "LaunchRunSuccess", launched
        # The queued coordinator: the webserver only enqueues, the daemon launches.
        assert launched["run"]["status"] in {"QUEUED", *IN_PROGRESS, *FINISHED}
        run_ids[account] = launched["run"]["runId"]

    runs = deployment.wait_finished(list(run_ids.values()))
    for account, run_id in run_ids.items():
        run = runs[run_id]
        assert run["status"] == "SUCCESS", f"run {run_id} of {account} ended {run['status']}\n{deployment.logs()}"
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert tags["dagster/partition"] == account and tags["meta/triggered_by"] == "manual"
    # Different accounts are not held back by each other: the queue let both run at once.
    first, second = sorted((runs[r] for r in run_ids.values()), key=lambda run: run["startTime"])
    assert second["startTime"] < first["endTime"], f"the two accounts' cycles ran one after the other: {first} {second}"

    for account, run_id in run_ids.items():
        # Dagster's own tables in PostgreSQL: the run with its account, its events ...
        (status,) = deployment.sql("SELECT status FROM runs WHERE run_id = :r", r=run_id)[0]
        assert status == "SUCCESS"
        (partition,) = deployment.sql("SELECT value FROM run_tags WHERE run_id = :r AND key = 'dagster/partition'", r=run_id)[0]
        assert partition == account
        events = {row[0] for row in deployment.sql("SELECT dagster_event_type FROM event_logs WHERE run_id = :r", r=run_id)}
        assert {"ASSET_MATERIALIZATION", "STEP_SUCCESS", "ASSET_CHECK_EVALUATION"} <= events, events
        assert events & {"RUN_SUCCESS", "PIPELINE_SUCCESS"}, events  # stored under its legacy name
        materialized = deployment.sql(
            "SELECT count(*) FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = :p",
            r=run_id, p=account,
        )
        assert materialized[0][0] >= len(ASSETS), f"{account}: materializations not recorded under its partition"
        # ... and the ledger in the same database (schema meta_ads): this cycle's rows, of this account only.
        accounts = deployment.sql(f"SELECT DISTINCT account_id FROM {APP_SCHEMA}.meta_actions WHERE cycle_run_id = :r", r=run_id)
        assert [row[0] for row in accounts] == [account], f"ledger rows of cycle {run_id}: {accounts}"


def test_two_cycles_for_one_account_never_run_at_once(deployment):
    run_ids = []
    for _ in range(2):
        launched = deployment.launch(deployment.admin, ACCOUNT)
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_ids.append(launched["run"]["runId"])

    overlaps, waited = [], []

    def observe(runs: dict[str, dict]) -> None:
        statuses = sorted(run["status"] for run in runs.values())
        if all(status in IN_PROGRESS for status in statuses):
            overlaps.append(statuses)
        if any(status in IN_PROGRESS for status in statuses) and "QUEUED" in statuses:
            waited.append(statuses)

    runs = deployment.wait_finished(run_ids, timeout=RUN_TIMEOUT, on_poll=observe)
    assert not overlaps, f"both cycles of {ACCOUNT} were in progress at once: {overlaps[:3]}"  # dagster/partition limit
    assert waited, "never saw one cycle queued while the other ran"
    assert {run["status"] for run in runs.values()} == {"SUCCESS"}, f"{runs}\n{deployment.logs()}"
    first, second = sorted(runs.values(), key=lambda run: run["startTime"])
    assert second["startTime"] >= first["endTime"], f"the runs' times overlap: {first} {second}"


def test_read_only_webserver_refuses_to_launch_but_lists_runs(deployment):
    before = deployment.runs(deployment.admin)
    refused = deployment.launch(deployment.read_only, ACCOUNT)
    assert refused["__typename"] == "UnauthorizedError", refused
    started = deployment.gql(deployment.read_only, START_SCHEDULE, {"selector": SCHEDULE_SELECTOR})["startSchedule"]
    assert started["__typename"] == "UnauthorizedError", started
    assert deployment.runs(deployment.admin).keys() == before.keys()  # nothing was queued
    # Managers still see the run history (the same instance) and the schedule, still stopped.
    assert deployment.runs(deployment.read_only).keys() == before.keys()
    repos = deployment.gql(deployment.read_only, REPOSITORY_CONTENTS)["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: s["scheduleState"]["status"] for repo in repos for s in repo["schedules"]}
    assert schedules[SCHEDULE] == "STOPPED"


def test_a_schedule_tick_launches_one_cycle_per_account(deployment):
    """Start the schedule, let the daemon tick it for real (every minute here), stop it: the tick's
    runs are one per account, queued like any other, and all succeed."""
    started = deployment.gql(deployment.admin, START_SCHEDULE, {"selector": SCHEDULE_SELECTOR})["startSchedule"]
    assert started["__typename"] == "ScheduleStateResult", started
    try:
        scheduled = deployment.wait_scheduled(len(ACCOUNTS), timeout=150)  # the next minute, plus the daemon's loop
    finally:
        stopped = deployment.gql(deployment.admin, STOP_SCHEDULE, {"selector": SCHEDULE_SELECTOR})["resetSchedule"]
        assert stopped["__typename"] == "ScheduleStateResult", stopped
    tags = {run_id: {t["key"]: t["value"] for t in run["tags"]} for run_id, run in scheduled.items()}
    first_tick = min(int(t["dagster/tick"]) for t in tags.values())
    tick_runs = {run_id: t for run_id, t in tags.items() if int(t["dagster/tick"]) == first_tick}
    assert sorted(t["dagster/partition"] for t in tick_runs.values()) == sorted(ACCOUNTS)
    for t in tick_runs.values():
        assert t["dagster/run_key"] == t["dagster/partition"] and t["meta/triggered_by"] == "schedule" and t["meta/cycle"] == "true"
        assert t["dagster/max_runtime"] == "50"  # five sixths of the 1-minute interval: monitoring's limit for this run
    runs = deployment.wait_finished(list(tick_runs))
    assert {run["status"] for run in runs.values()} == {"SUCCESS"}, f"{runs}\n{deployment.logs()}"


@pytest.mark.parametrize("first", ["dagster", "ledger"])
def test_ledger_shares_a_database_and_schema_with_dagster(postgres_url, monkeypatch, first):
    """The documented setup (README, dagster.yaml, docs/deploy.md): META_ADS_DATABASE_URL is the
    very database (and schema) of Dagster's storage. Whichever creates its tables first, both
    migrate, a cycle runs with its run in Dagster's tables and its actions in the ledger's, and
    Dagster's own migration (`dagster instance migrate`) leaves the ledger alone."""
    from dagster import DagsterInstance

    from meta_ads_dagster.definitions import build_definitions
    from meta_ads_dagster.jobs import CYCLE_JOB_NAME
    from meta_ads_dagster.settings import load_settings
    from meta_ads_dagster.store.ledger import VERSION_TABLE, Ledger, _head_revision

    for name, value in pg_env(postgres_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("META_ADS_DATABASE_URL", postgres_url)  # no search_path: the same schema
    home = Path(os.environ["DAGSTER_HOME"])
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")

    if first == "ledger":
        Ledger(postgres_url).dispose()
    with DagsterInstance.get() as instance:  # creates (or finds) Dagster's tables and its alembic_version
        result = build_definitions(load_settings()).resolve_job_def(CYCLE_JOB_NAME).execute_in_process(instance=instance, partition_key="act_1001")
        assert result.success
        instance.upgrade()  # what `dagster instance migrate` runs

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())  # the default schema: public
            dagster_revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            ledger_revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
            (run_status,) = conn.execute(sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": result.run_id}).one()
            recorded = conn.execute(sa.text("SELECT count(*) FROM meta_actions WHERE cycle_run_id = :r"), {"r": result.run_id}).scalar_one()
    finally:
        engine.dispose()
    assert {"runs", "event_logs", "alembic_version"} | {"meta_actions", "meta_cycle_locks", "meta_campaign_evaluations", VERSION_TABLE} <= tables
    assert ledger_revision == _head_revision() and dagster_revision != ledger_revision  # each its own
    assert run_status == "SUCCESS" and recorded == len(result.output_for_node("optimization_cycle")) > 0
    Ledger(postgres_url).dispose()  # opens again at its head, whatever Dagster's table says
