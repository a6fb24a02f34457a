"""Issue 11 #5: the first use of a brand-new DAGSTER_HOME by processes started at once.

Two cycles started together on a new home crashed 4 of 11 pairs; one way was Dagster's own SQLite
storage: "UNIQUE constraint failed: alembic_version". Here four processes open the instance of one
new home at once (``meta_ads_dagster.instance.open_instance``, what ``meta-ads cycle`` must open):
every one succeeds, and the storage is made once. The ledger's side is in
store/test_migrations.py.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from meta_ads_dagster.instance import InstanceError, open_instance

from ..at_once import run_at_once


def test_processes_opening_a_new_home_at_once_all_get_the_instance(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    failures = run_at_once(
        "from meta_ads_dagster.instance import open_instance\n",
        "with open_instance() as instance:\n    instance.get_runs(limit=1)\n",
        tmp_path / "race", 4, env={"DAGSTER_HOME": str(home)},
    )
    assert failures == []
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs(limit=1) == []


def test_a_storage_error_is_one_line(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (home / "history").write_text("")  # where Dagster's run storage must make a folder
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with pytest.raises(InstanceError) as error:
        open_instance()
    assert str(error.value).startswith(f"Dagster's storage at {home} could not be opened: ")
    assert "\n" not in str(error.value)


def test_two_meta_ads_cycles_started_at_once_on_a_new_home_both_succeed(tmp_path):
    """What the issue saw: `meta-ads cycle` twice at once on a home that does not exist yet (one
    account each, so neither waits for the other's write lock)."""
    home = tmp_path / "new_home"  # not created: the first command creates it
    failures = run_at_once(
        "from meta_ads_dagster.cli import main\n",
        # Process n (its start-line file is ready-n) cycles the n-th account.
        "sys.exit(main(['cycle', '--account', ARGS[int(pathlib.Path(sys.argv[2]).name.split('-')[1])]]))\n",
        tmp_path / "race", 2, "act_1001", "act_2002",
        env={"DAGSTER_HOME": str(home), "META_AD_ACCOUNT_IDS": "act_1001,act_2002"},
    )
    assert failures == []
    assert (home / "dagster.yaml").read_text().startswith("# The embedded instance")
    with DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2
