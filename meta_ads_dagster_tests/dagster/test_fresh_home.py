"""Issue 11 #5: the first use of a brand-new DAGSTER_HOME by processes started at once.

Two cycles started together on a new home crashed 4 of 11 pairs; one way was Dagster's own SQLite
storage: "UNIQUE constraint failed: alembic_version". Here four processes open the instance of one
new home at once (``meta_ads_dagster.instance.open_instance``, what ``meta-ads cycle`` must open):
every one succeeds, and the storage is made once. The ledger's side is in
store/test_migrations.py.
"""

from __future__ import annotations

from dagster import DagsterInstance

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
