"""A production deployment on this machine, for the deploy tests and the scale benchmark.

A fresh PostgreSQL database is the instance (the top-level ``dagster.yaml`` copied into a new
DAGSTER_HOME, connection values from DAGSTER_PG_*) and, in the schema ``meta_ads``, the app tables.
Three processes start from the repository root with ``-w workspace.yaml``: ``dagster-daemon run``,
``dagster-webserver`` (admins) and ``dagster-webserver --read-only`` (managers), each in its own
session, stopped by process group on exit. Everything is driven through the webservers' GraphQL API;
every wait is bounded and fails with the runs' statuses and the tails of the processes' logs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from meta_ads_dagster.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "meta_ads_dagster"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # a Definitions object's repository
JOB = "meta_ads_cycle"
SCHEDULE = "meta_ads_cycle_schedule"
SCHEDULE_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": SCHEDULE}
APP_SCHEMA = "meta_ads"
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}  # never inherited from the host

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
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status creationTime startTime endTime tags { key value } } }
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

STOP_SCHEDULE = """
mutation Stop($selector: ScheduleSelector!) {
  resetSchedule(scheduleSelector: $selector) { __typename ... on Error { message } }
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

    def launch(self, server: Server, account: str) -> dict:
        """Launch one cycle of ``account`` as the UI's launchpad does: the partition is a run tag."""
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB},
            "runConfigData": {},  # the job's defaults, as the schedule launches it
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": account}]},
        }
        return self.gql(server, LAUNCH, {"params": params})["launchRun"]

    def runs(self, server: Server, run_ids: list[str] | None = None, tags: dict[str, str] | None = None) -> dict[str, dict]:
        """Runs by id and/or tags (all runs without either)."""
        runs_filter = {"runIds": run_ids, "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()] or None}
        result = self.gql(server, RUNS, {"filter": runs_filter})["runsOrError"]
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

    def wait_scheduled(self, count: int, timeout: float) -> dict[str, dict]:
        """Poll until the cycle schedule has created ``count`` runs (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(self.admin, tags={"dagster/schedule_name": SCHEDULE})
            if len(runs) >= count:
                return runs
            if time.monotonic() > deadline:
                pytest.fail(f"the schedule created {len(runs)} of {count} runs within {timeout:.0f} s\n{self.logs()}")
            if self.daemon.popen.poll() is not None:
                pytest.fail(f"daemon exited with {self.daemon.popen.returncode}\n{self.logs()}")
            time.sleep(1)

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


def pg_env(database_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables dagster.yaml reads, for ``database_url``."""
    url = sa.make_url(database_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }


def server_env(home: Path, database_url: str, settings: dict[str, str]) -> dict[str, str]:
    """The processes' environment: this one's minus any META_* / Dagster variable, plus the
    instance's, the ledger's (same database, schema meta_ads: docs/deploy.md) and ``settings``."""
    url = sa.make_url(database_url)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and not k.startswith("DAGSTER_")}
    env.update(pg_env(database_url))
    env.update(
        DAGSTER_HOME=str(home),
        META_ADS_DATABASE_URL=url.update_query_dict({"options": f"-csearch_path={APP_SCHEMA}"}).render_as_string(hide_password=False),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


@contextmanager
def production_deployment(
    root: Path, database_url: str, settings: dict[str, str], instance: Callable[[str], str] = lambda text: text
) -> Iterator[Deployment]:
    """Daemon + webserver + read-only webserver on ``database_url`` (an empty database), with the
    cycle settings ``settings`` (e.g. META_AD_ACCOUNT_IDS) and ``instance(dagster.yaml's text)`` as
    the instance file."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{APP_SCHEMA}"'))
    engine.dispose()
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance((REPO / "dagster.yaml").read_text()))
    env = server_env(home, database_url, settings)
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
