"""The production instance (top-level dagster.yaml) with real processes against real PostgreSQL.

One deployment per module: a fresh PostgreSQL database (conftest's ``fresh_postgres_database``),
DAGSTER_HOME = a temporary folder holding a copy of the production ``dagster.yaml`` (connection
values from DAGSTER_PG_*), and three processes started from the repository root with
``-w workspace.yaml``: ``dagster-daemon run``, ``dagster-webserver`` (admins) and
``dagster-webserver --read-only`` (managers). Everything is driven through the webservers' GraphQL
API; PostgreSQL is then read directly. The app tables (META_ADS_DATABASE_URL) live in the same
database, in the schema ``meta_ads`` (see docs/deploy.md: both Dagster and the ledger keep an
Alembic ``alembic_version`` table, so they must not share a schema).

Every wait is bounded and fails with the run's status and the tails of the processes' logs; the
processes are started with ``start_new_session=True`` and stopped by process group at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from meta_ads_dagster_tests.conftest import SETTINGS_VARIABLES, fresh_postgres_database

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "meta_ads_dagster"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # a Definitions object's repository
JOB = "meta_ads_cycle"
SCHEDULE = "meta_ads_cycle_schedule"
ASSETS = {"account_snapshot", "insights", "roas_metrics", "ab_tests", "spikes", "creative_fatigue", "optimization_cycle"}
ACCOUNTS = ("act_1001", "act_2002")  # two demo accounts (stub mode): one partition each
ACCOUNT = ACCOUNTS[0]
APP_SCHEMA = "meta_ads"

STARTUP_TIMEOUT = 60  # seconds until a webserver serves the loaded code location
RUN_TIMEOUT = 120  # seconds until launched cycles have finished
IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}"""

RUNS = """
query Runs($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on Error { message }
  }
}"""

SCHEDULE_DRY_RUN = """
mutation DryRun($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey tags { key value } } skipReason error { message } }
    }
    ... on Error { message }
  }
}"""

START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) { __typename ... on Error { message } }
}"""

REPOSITORY_CONTENTS = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        schedules { name cronSchedule scheduleState { status } }
        assetNodes { assetKey { path } }
      }
    }
    ... on Error { message }
  }
}"""


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    popen: subprocess.Popen
    log: Path
    port: int | None = None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return f"--- {self.name} ({self.log}), last {len(text)} lines:\n" + "\n".join(text)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server's process group (it, its code server, run and step workers) by PID."""
        family = _descendants(self.popen.pid)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for pid in family:  # anything that left the group but is still ours
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _descendants(root: int) -> list[int]:
    """PIDs below ``root`` (from /proc; empty where /proc is not available)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(name: str, args: list[str], env: dict, logs: Path, port: int | None = None) -> Server:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor: output can never block it
        popen = subprocess.Popen(
            args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, popen, log, port)


# --- the deployment --------------------------------------------------------------------------------


@dataclass
class Deployment:
    database_url: str  # Dagster's storage and, in schema meta_ads, the app tables
    daemon: Server
    admin: Server
    read_only: Server
    servers: list[Server] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(server.tail() for server in self.servers)

    def gql(self, server: Server, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"http://127.0.0.1:{server.port}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        assert response.status_code == 200, f"{server.name} answered HTTP {response.status_code}: {response.text[:500]}"
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors from {server.name}: {body['errors']}"
        return body["data"]

    def launch(self, server: Server, account: str = ACCOUNT) -> dict:
        """Launch one cycle of ``account`` as the UI's launchpad does: the partition is a run tag."""
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB},
            "runConfigData": {},  # the job's defaults, as the schedule launches it
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": account}]},
        }
        return self.gql(server, LAUNCH, {"params": params})["launchRun"]

    def runs(self, server: Server, run_ids: list[str] | None = None) -> dict[str, dict]:
        result = self.gql(server, RUNS, {"ids": run_ids})["runsOrError"]
        assert result["__typename"] == "Runs", f"runsOrError on {server.name}: {result}"
        return {run["runId"]: run for run in result["results"]}

    def wait_finished(self, run_ids: list[str], timeout: float = RUN_TIMEOUT, on_poll=None) -> dict[str, dict]:
        """Poll until every run has finished; ``on_poll(runs)`` sees each observation."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(self.admin, run_ids)
            if on_poll:
                on_poll(runs)
            if len(runs) == len(run_ids) and all(run["status"] in FINISHED for run in runs.values()):
                return runs
            if time.monotonic() > deadline:
                statuses = {run_id: run["status"] for run_id, run in runs.items()}
                pytest.fail(
                    f"runs not finished after {timeout:.0f} s (QUEUED means the daemon did not dequeue them): "
                    f"{statuses}\n{self.logs()}"
                )
            for server in (self.daemon, self.admin):
                if server.popen.poll() is not None:
                    pytest.fail(f"{server.name} exited with {server.popen.returncode}\n{self.logs()}")
            time.sleep(0.5)

    def sql(self, statement: str, **params) -> list:
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(statement), params))
        finally:
            engine.dispose()


def _wait_serving(deployment: Deployment, server: Server) -> None:
    """Until ``server`` answers GraphQL with the code location loaded (bounded)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            pytest.fail(f"{server.name} exited with {server.popen.returncode} while starting\n{deployment.logs()}")
        try:
            result = deployment.gql(server, REPOSITORY_CONTENTS)["repositoriesOrError"]
            if result["__typename"] == "RepositoryConnection" and result["nodes"]:
                return
            last = str(result)
        except (requests.RequestException, AssertionError) as exc:
            last = str(exc)
        time.sleep(0.5)
    pytest.fail(f"{server.name} did not serve the code location within {STARTUP_TIMEOUT} s ({last})\n{deployment.logs()}")


def _server_env(home: Path, database_url: str) -> dict:
    url = sa.make_url(database_url)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and not k.startswith("DAGSTER_")}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_PG_HOST=url.host or "127.0.0.1",
        DAGSTER_PG_PORT=str(url.port or 5432),
        DAGSTER_PG_USER=url.username or "postgres",
        DAGSTER_PG_PASSWORD=url.password or "",
        DAGSTER_PG_DB=url.database,
        # The ledger in the same database, in its own schema (docs/deploy.md).
        META_ADS_DATABASE_URL=url.update_query_dict({"options": f"-csearch_path={APP_SCHEMA}"}).render_as_string(hide_password=False),
        META_AD_ACCOUNT_IDS=",".join(ACCOUNTS),
        # Schedule listed but stopped: no wall-clock tick may add a cycle to the ones launched here.
        META_CYCLE_AUTO_START="false",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with fresh_postgres_database() as database_url:
        engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{APP_SCHEMA}"'))
        engine.dispose()

        root = tmp_path_factory.mktemp("production")
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        env = _server_env(home, database_url)
        workspace = ["-w", str(REPO / "workspace.yaml")]
        servers: list[Server] = []
        try:
            servers.append(_start("daemon", [str(BIN / "dagster-daemon"), "run", *workspace], env, root))
            for name, extra in (("webserver", []), ("webserver-read-only", ["--read-only"])):
                port = _free_port()
                args = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *workspace, *extra]
                servers.append(_start(name, args, env, root, port))
            deployment = Deployment(database_url, *servers, servers=servers)
            _wait_serving(deployment, deployment.admin)
            _wait_serving(deployment, deployment.read_only)
            yield deployment
        finally:
            for server in reversed(servers):
                server.stop()


# --- tests ---------------------------------------------------------------------------------------------


def test_instance_is_postgres_with_queue_monitoring_and_retries(tmp_path, monkeypatch, deployment):
    """The same dagster.yaml, loaded in-process with the deployment's variables."""
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    for name, value in _server_env(tmp_path, deployment.database_url).items():
        if name.startswith("DAGSTER_PG_"):
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
    assert schedules[SCHEDULE]["cronSchedule"] == "*/30 * * * *"
    assert schedules[SCHEDULE]["scheduleState"]["status"] == "STOPPED"  # META_CYCLE_AUTO_START=false
    assert ASSETS <= {"/".join(node["assetKey"]["path"]) for node in repo["assetNodes"]}


def test_the_schedule_asks_for_one_cycle_per_account(deployment):
    """The deployed schedule, evaluated by the code server through GraphQL (a dry-run tick: a real
    tick is up to 30 minutes away; tests/dagster/test_cycle_runs.py also runs the requested cycles)."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": SCHEDULE}
    tick = deployment.gql(deployment.admin, SCHEDULE_DRY_RUN, {"selector": selector, "timestamp": time.time()})["scheduleDryRun"]
    assert tick["__typename"] == "DryRunInstigationTick", tick
    result = tick["evaluationResult"]
    assert result["error"] is None and result["skipReason"] is None, result
    requests = {r["runKey"]: {t["key"]: t["value"] for t in r["tags"]} for r in result["runRequests"]}
    assert sorted(requests) == sorted(ACCOUNTS)
    for account, tags in requests.items():
        assert tags["dagster/partition"] == account and tags["meta/triggered_by"] == "schedule" and tags["meta/cycle"] == "true"


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
        launched = deployment.launch(deployment.admin)
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
    refused = deployment.launch(deployment.read_only)
    assert refused["__typename"] == "UnauthorizedError", refused
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": SCHEDULE}
    started = deployment.gql(deployment.read_only, START_SCHEDULE, {"selector": selector})["startSchedule"]
    assert started["__typename"] == "UnauthorizedError", started
    assert deployment.runs(deployment.admin).keys() == before.keys()  # nothing was queued
    # Managers still see the run history (the same instance) and the schedule, still stopped.
    assert deployment.runs(deployment.read_only).keys() == before.keys()
    repos = deployment.gql(deployment.read_only, REPOSITORY_CONTENTS)["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: s["scheduleState"]["status"] for repo in repos for s in repo["schedules"]}
    assert schedules[SCHEDULE] == "STOPPED"


def test_ledger_shares_a_schema_with_dagster(postgres_url, tmp_path, monkeypatch):
    from dagster import DagsterInstance

    from meta_ads_dagster.store.ledger import Ledger

    for name, value in _server_env(tmp_path, postgres_url).items():
        if name.startswith("DAGSTER_PG_"):
            monkeypatch.setenv(name, value)
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)):
        pass  # Dagster's tables and its alembic_version, in the public schema
    ledger = Ledger(postgres_url)  # the same schema: the ledger keeps its revision in its own table
    ledger.dispose()
    ledger = Ledger(postgres_url)  # and opens again without confusing the two
    ledger.dispose()
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        dagster_revision = conn.execute(sa.text("select version_num from alembic_version")).scalar_one()
    engine.dispose()
    assert {"runs", "event_logs", "meta_actions", "meta_ads_alembic_version"} <= tables
    assert dagster_revision != "0002"  # Dagster's revision is Dagster's
