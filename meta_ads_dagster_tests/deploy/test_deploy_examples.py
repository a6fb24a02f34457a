"""docs/examples: the deployment files of docs/deploy.md parse and validate.

- The Kubernetes and Docker instance files validate against Dagster's own instance config schema
  (``dagster_instance_config``, what ``DagsterInstance`` loads) and keep the production
  ``dagster.yaml``'s storage, queue limit, run monitoring, retries and telemetry.
- Their ``run_launcher.config`` validates against ``K8sRunLauncher`` / ``DockerRunLauncher``'s
  config schema only where dagster-k8s / dagster-docker are importable. They are deliberately not
  dependencies of this package, so without them that test skips, naming what was not checked.
- The gRPC workspace validates against Dagster's workspace schema, has the ``grpc_server`` shape,
  and loads: a code server started from this package serves the job it names.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
BIN = Path(sys.executable).parent
LAUNCHERS = {
    "dagster.k8s.yaml": ("dagster_k8s", "K8sRunLauncher"),
    "dagster.docker.yaml": ("dagster_docker", "DockerRunLauncher"),
}
# No connection is made: the values only have to resolve.
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "meta_ads",
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def pg_env(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_instance_example_validates_against_dagster_instance_schema(name, pg_env, tmp_path):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres import DagsterPostgresStorage

    shutil.copy(EXAMPLES / name, tmp_path / "dagster.yaml")
    config, custom_instance_class = dagster_instance_config(str(tmp_path))  # raises on any schema error
    assert custom_instance_class is None

    # The storage section against dagster-postgres's own schema (a dependency), env resolved.
    storage = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert storage.success, [error.message for error in storage.errors]
    postgres = storage.value["postgres_db"]
    assert (postgres["hostname"], postgres["port"], postgres["username"], postgres["password"], postgres["db_name"]) == (
        "postgres.example", 5432, "dagster", "secret", "meta_ads",
    )
    assert postgres["scheme"] == "postgresql+psycopg2"
    module, cls = LAUNCHERS[name]
    assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == (module, cls)


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_instance_example_keeps_the_production_settings(name):
    production, example = _yaml(REPO / "dagster.yaml"), _yaml(EXAMPLES / name)
    assert example["storage"] == production["storage"]  # same env variables, same psycopg2 scheme
    assert example["run_coordinator"] == production["run_coordinator"]
    per_account, parallel = example["concurrency"]["runs"]["tag_concurrency_limits"]
    assert per_account == production["concurrency"]["runs"]["tag_concurrency_limits"][0]
    assert per_account == {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    # Accounts cycling at once: sized per launcher, below the runs limit so reviews never wait behind cycles.
    assert parallel["key"] == "meta/cycle" and 0 < parallel["limit"] < example["concurrency"]["runs"]["max_concurrent_runs"]
    assert example["run_monitoring"]["enabled"] is True
    assert 0 < example["run_monitoring"]["max_runtime_seconds"] < 30 * 60
    assert example["run_retries"]["enabled"] is True and example["run_retries"]["max_retries"] >= 1
    assert example["telemetry"] == {"enabled": False}


def test_instance_schema_refuses_a_misspelt_key(pg_env, tmp_path):
    """The validation above has teeth: an unknown key in an example would fail it."""
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    broken = _yaml(EXAMPLES / "dagster.k8s.yaml")
    broken["run_monitoring"]["max_runtime"] = broken["run_monitoring"].pop("max_runtime_seconds")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DagsterInvalidConfigError, match="max_runtime"):
        dagster_instance_config(str(tmp_path))


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_validates_against_the_launcher_schema(name, pg_env):
    from dagster._config import process_config

    module, cls = LAUNCHERS[name]
    launcher_module = pytest.importorskip(
        module,
        reason=f"{module} is not installed (deliberately not a dependency): {name}'s run_launcher.config "
        "was checked against Dagster's instance schema only",
    )
    launcher = getattr(launcher_module, cls)
    result = process_config(launcher.config_type(), _yaml(EXAMPLES / name)["run_launcher"]["config"])
    assert result.success, [error.message for error in result.errors]


def test_grpc_workspace_example_shape():
    from dagster._core.workspace.config_schema import process_workspace_config

    config = _yaml(EXAMPLES / "workspace.grpc.yaml")
    result = process_workspace_config(config)
    assert result.success, [error.message for error in result.errors]
    (entry,) = config["load_from"]
    assert list(entry) == ["grpc_server"]
    server = entry["grpc_server"]
    assert isinstance(server["host"], str) and server["host"]
    assert isinstance(server["port"], int) and 0 < server["port"] < 65536
    assert "socket" not in server  # a network server, reachable from other pods / containers
    # The same location name as pyproject's [tool.dagster] and the local workspace.yaml.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert server["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]
    (local,) = _yaml(REPO / "workspace.yaml")["load_from"]
    assert local["python_module"]["location_name"] == server["location_name"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_grpc_workspace_example_loads_from_a_code_server(tmp_path):
    """The example, pointed at 127.0.0.1, loads the job from a code server run from this package."""
    from dagster._grpc.client import DagsterGrpcClient

    config = _yaml(EXAMPLES / "workspace.grpc.yaml")
    port = _free_port()
    config["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(config))
    location = config["load_from"][0]["grpc_server"]["location_name"]

    env = {**os.environ, "DAGSTER_HOME": os.environ["DAGSTER_HOME"], "META_CYCLE_AUTO_START": "false"}
    log = tmp_path / "code-server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
             "-m", "meta_ads_dagster.definitions", "--location-name", location],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        client, deadline = DagsterGrpcClient(port=port, host="127.0.0.1"), time.monotonic() + 60
        while True:
            try:
                client.ping("ready?")
                break
            except Exception as exc:  # not listening yet
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"code server not serving on port {port} ({exc})\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.5)
        listed = subprocess.run(
            [str(BIN / "dagster"), "job", "list", "-w", str(workspace)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
        )
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert "meta_ads_cycle" in listed.stdout, listed.stdout
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(server.pid, sig)
                server.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
