"""Whole cycles as Dagster runs: one run = one cycle, recorded in the instance, the ledger and the stub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunsFilter,
    TableMetadataValue,
    build_schedule_context,
    materialize,
    instance_for_test,
)

from meta_ads_dagster.definitions import build_definitions
from meta_ads_dagster.jobs import CYCLE_JOB_NAME
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.resources import build_resources
from meta_ads_dagster.schedules import SCHEDULE_NAME
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store import approvals
from meta_ads_dagster.store.ledger import Ledger

COLLECTION = ["account_snapshot", "insights", "roas_metrics", "ab_tests", "spikes", "creative_fatigue"]
NUMERIC_METADATA = [
    "campaigns_active", "adsets_active", "ads_active", "total_spend_today", "avg_roas", "actions_taken",
    "actions_generated", "actions_policy_blocked", "actions_safety_blocked", "actions_queued",
    "actions_executed", "actions_failed", "campaigns_evaluated", "actions_deferred", "actions_superseded",
    "approvals_executed", "approvals_not_executed", "spikes_down_not_acted_on", "spend_vs_cap_pct", "cycle_duration_seconds",
]
LOG_KEYS = {"step", "action", "input_snapshot", "output_snapshot", "success", "error_message", "entity_type", "entity_id"}
BUDGET_ENTITIES = {("adset", "1001010"): "9000", ("campaign", "1001036"): "66000", ("campaign", "1001001"): "55000"}


class Cycle:
    """Settings, definitions and resources as one process would build them from the environment."""

    def __init__(self):
        self.settings = load_settings()
        self.resources = build_resources(self.settings)
        self.defs = build_definitions(self.settings)
        self.job = self.defs.resolve_job_def(CYCLE_JOB_NAME)
        self.account = self.job.partitions_def.get_partition_keys()[0]  # the first configured account

    def run(self, instance: DagsterInstance, partition_key: str | None = None, **kwargs):
        """One cycle run of ``partition_key`` (default: the first account)."""
        return self.job.execute_in_process(instance=instance, resources=self.resources, partition_key=partition_key or self.account, **kwargs)

    def client(self, account: str | None = None, **faults) -> StubMetaAdsClient:
        """A fresh stub client over an account's state file (what another process would see)."""
        used = self.resources["meta_client"]
        return StubMetaAdsClient(state_dir=used.state_dir, snapshot_path=used.snapshot_path, account_id=account or self.account, **faults)

    def stub_writes(self, account: str | None = None) -> list[dict]:
        return self.client(account).writes

    def ledger(self) -> Ledger:
        return Ledger(self.settings.database_url())


def action_logs(instance: DagsterInstance, run_id: str) -> list[dict]:
    messages = [entry.user_message for entry in instance.all_logs(run_id) if entry.user_message.startswith("action {")]
    return [json.loads(message.removeprefix("action ")) for message in messages]


@pytest.fixture
def database_file(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("META_ADS_DATABASE_URL", url)
    return url


def test_one_cycle_end_to_end(database_file):
    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    with instance_for_test() as instance:
        result = cycle.run(instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert {k: run.tags[k] for k in ("meta/mode", "meta/auto_mode", "meta/triggered_by")} == {
            "meta/mode": "stub", "meta/auto_mode": "suggest", "meta/triggered_by": "manual",
        }

        # Every asset of the cycle was materialized by this run.
        for name in [*COLLECTION, "cycle_plan", "optimization_cycle", "pending_approvals"]:
            event = instance.get_latest_materialization_event(AssetKey(name))
            assert event is not None and event.run_id == result.run_id, name
        plan = instance.get_latest_materialization_event(AssetKey("cycle_plan")).asset_materialization.metadata
        assert plan["to_execute"].value == 1 and plan["tracking_outage"].value == "none"
        assert (plan["verdict_queued"].value, plan["verdict_policy_blocked"].value, plan["verdict_deferred"].value) == (5, 1, 0)

        metadata = instance.get_latest_materialization_event(AssetKey("optimization_cycle")).asset_materialization.metadata
        for key in NUMERIC_METADATA:
            assert isinstance(metadata[key].value, (int, float)) and not isinstance(metadata[key].value, bool), key
        values = {key: metadata[key].value for key in NUMERIC_METADATA}
        assert values["campaigns_active"] == 8 and values["adsets_active"] == 9 and values["ads_active"] == 11
        assert values["total_spend_today"] > 0 and 1.5 < values["avg_roas"] < 4
        assert values["actions_generated"] == 7  # "New launch" is inside its embargo: not evaluated
        assert values["campaigns_evaluated"] == 7
        assert values["actions_executed"] == values["actions_taken"] == 1  # the hard stop, even in suggest mode
        assert (values["actions_queued"], values["actions_policy_blocked"], values["actions_safety_blocked"], values["actions_failed"]) == (5, 1, 0, 0)

        actions = result.output_for_node("optimization_cycle")
        table = metadata["actions"]
        assert isinstance(table, TableMetadataValue) and [c.name for c in table.schema.columns][:3] == ["id", "verdict", "type"]
        assert [record.data["id"] for record in table.records] == list(actions["id"])
        assert metadata["dagster/row_count"].value == len(actions) == 7
        assert 0 < metadata["spend_vs_cap_pct"].value < 100 and metadata["cycle_duration_seconds"].value > 0

        # After the cycle, the approval queue as a table: the five actions suggest mode queued.
        queue = instance.get_latest_materialization_event(AssetKey("pending_approvals"))
        assert queue.run_id == result.run_id and queue.asset_materialization.partition == cycle.account
        waiting = queue.asset_materialization.metadata
        assert waiting["dagster/row_count"].value == waiting["pending"].value == 5 and waiting["approved"].value == 0
        queued_ids = set(actions.loc[actions["verdict"] == "queued", "id"])
        assert {record.data["id"] for record in waiting["approvals"].records} == queued_ids

        # The event log: one "action {...}" line per action, with the seed's fields.
        logs = action_logs(instance, result.run_id)
        assert len(logs) == len(actions) == 7
        assert all(LOG_KEYS <= set(log) for log in logs)
        assert sorted(log["action_id"] for log in logs) == sorted(actions["id"])
        hard_stop = next(log for log in logs if log["action"] == "pause")
        assert hard_stop["step"] == "execute" and hard_stop["success"] is True and hard_stop["entity_id"] == "1001016"
        assert hard_stop["output_snapshot"]["method"] == "pause"
        assert all(log["success"] is None for log in logs if log is not hard_stop)

        # The asset checks ran and passed: on the inputs and the plan before the writes (blocking),
        # the audit after them.
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {
            "roas_metrics_are_sane", "insights_are_fresh", "insight_rows_are_possible", "no_tracking_outage",
            "planned_actions_within_guard_rails", "plan_holds_on_tracking_outage", "executed_actions_within_guard_rails",
        }
        assert all(e.passed for e in evaluations)
        assert {e.check_name for e in evaluations if e.blocking} == {
            "insights_are_fresh", "insight_rows_are_possible", "planned_actions_within_guard_rails", "plan_holds_on_tracking_outage",
        }

    # The ledger carries the run id; the stub saw the sync and the one executed write.
    ledger = cycle.ledger()
    rows = ledger.cycle_actions(result.run_id)
    ledger.dispose()
    assert len(rows) == 7 and (rows["cycle_run_id"] == result.run_id).all()
    assert rows.set_index("entity_id").loc["1001016", ["verdict", "status"]].tolist() == ["executed", "done"]
    assert (rows["status"] == "pending").sum() == 5
    assert [(w["method"], w.get("entity_id")) for w in cycle.stub_writes()] == [("sync_insights", None), ("pause", "1001016")]


def test_two_cycles_carry_state_over(monkeypatch, database_file):
    """The issue's test: cycle 2 sees cycle 1's budgets and respects its cooldowns."""
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    home = Path(os.environ["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:  # persistent: the conftest's DAGSTER_HOME in tmp_path
        assert not instance.is_ephemeral

        first_cycle = Cycle()
        first = first_cycle.run(instance)
        assert first.success
        assert instance.get_run_by_id(first.run_id).tags["meta/auto_mode"] == "auto"
        # Filesystem IO manager: the assets' values are files under DAGSTER_HOME/storage, one per account.
        assert (home / "storage" / "account_snapshot" / "act_1001").is_file()
        assert (home / "storage" / "optimization_cycle" / "act_1001").is_file()

        writes = first_cycle.stub_writes()
        budget_writes = {(w["entity_type"], w["entity_id"]): w["daily_budget"] for w in writes if w["method"] == "update_budget"}
        assert budget_writes == BUDGET_ENTITIES
        first_actions = first.output_for_node("optimization_cycle").set_index("entity_id")
        for (_, entity_id), budget in BUDGET_ENTITIES.items():
            assert first_actions.loc[entity_id, "verdict"] == "executed"
            assert int(first_actions.loc[entity_id, "new_budget_minor"]) == int(budget)

        # The second cycle is built from scratch, as the next scheduled run's process would be.
        second_cycle = Cycle()
        second = second_cycle.run(instance)
        assert second.success

    snap = second.output_for_node("account_snapshot")
    assert snap.as_of == pd.Timestamp("2026-11-20T10:30:00+00:00")  # one interval after cycle 1
    holders = pd.concat([snap.campaigns.assign(entity_type="campaign"), snap.adsets.assign(entity_type="adset")])
    budgets = holders.set_index(["entity_type", "id"])["daily_budget"]
    for key, budget in BUDGET_ENTITIES.items():
        assert budgets[key] == int(budget), key

    second_actions = second.output_for_node("optimization_cycle").set_index(["entity_type", "entity_id"])
    raised = {key for key in BUDGET_ENTITIES if first_actions.loc[key[1], "type"] == "scale_up"}
    assert raised and raised != set(BUDGET_ENTITIES)
    for key in raised:  # a raise waits for a full day since the last budget change: not proposed
        assert key not in second_actions.index, key
    for key in set(BUDGET_ENTITIES) - raised:
        row = second_actions.loc[key]
        # Changed half an hour ago: the day's change is used up (the cooldown would say no too).
        assert row["verdict"] == "policy_blocked", key
        assert any("rolling 24 h change limit reached" in reason for reason in row["reasons"]), row["reasons"]
        assert row["hours_since_last_action"] == pytest.approx(0.5)
        assert int(row["current_budget_minor"]) == int(BUDGET_ENTITIES[key])  # proposed from the new budget

    # Nothing executed twice: exactly one update_budget per entity, and cycle 2 wrote no budget at all.
    writes = second_cycle.stub_writes()
    updates = [(w["entity_type"], w["entity_id"]) for w in writes if w["method"] == "update_budget"]
    assert sorted(updates) == sorted(BUDGET_ENTITIES)
    assert [w["at"] for w in writes if w["method"] == "sync_insights"] == ["2026-11-20T10:00:00+00:00", "2026-11-20T10:30:00+00:00"]
    assert all(w["at"] == "2026-11-20T10:00:00+00:00" for w in writes if w["method"] != "sync_insights")

    ledger = second_cycle.ledger()
    first_rows = ledger.cycle_actions(first.run_id).set_index("entity_id")
    second_rows = ledger.cycle_actions(second.run_id).set_index("entity_id")
    ledger.dispose()
    for kind, entity_id in BUDGET_ENTITIES:
        assert first_rows.loc[entity_id, "status"] == "done"
        if (kind, entity_id) not in raised:
            assert second_rows.loc[entity_id, ["verdict", "status"]].tolist() == ["policy_blocked", "blocked"]
    assert len(second_rows) > 0 and (second_rows["verdict"] != "executed").all()


def test_schedule_requests_one_cycle_per_account(database_file, monkeypatch):
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,2002")
    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    tick = pd.Timestamp("2026-11-20T10:30:00Z").to_pydatetime()
    with instance_for_test() as instance:
        schedule = cycle.defs.resolve_schedule_def(SCHEDULE_NAME)
        assert schedule.cron_schedule == "*/30 * * * *" and schedule.job_name == CYCLE_JOB_NAME
        repository = cycle.defs.get_repository_def()
        with build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=repository) as context:
            requests = schedule.evaluate_tick(context).run_requests
        # One run per account, each keyed by its account: a tick evaluated twice launches no account twice.
        assert [(r.partition_key, r.run_key) for r in requests] == [("act_1001", "act_1001"), ("act_2002", "act_2002")]
        for request in requests:
            assert request.tags["meta/triggered_by"] == "schedule" and request.tags["meta/cycle"] == "true"
            assert request.tags["meta/mode"] == "stub" and request.tags["meta/auto_mode"] == "suggest"

        # The scheduler creates each run with {**job tags, **request tags, partition tag}; so does
        # execute_in_process: the schedule's "schedule" wins over the job's default "manual".
        assert cycle.job.run_tags["meta/triggered_by"] == "manual"
        results = [cycle.run(instance, partition_key=r.partition_key, tags=r.tags) for r in requests]
        assert all(result.success for result in results)
        runs = [instance.get_run_by_id(result.run_id) for result in results]
        assert [(run.tags["dagster/partition"], run.tags["meta/triggered_by"]) for run in runs] == [
            ("act_1001", "schedule"), ("act_2002", "schedule"),
        ]
        # Each account's cycle history is its own: runs, materializations, ledger rows and stub state.
        for account, result in zip(("act_1001", "act_2002"), results):
            assert [r.run_id for r in instance.get_runs(RunsFilter(tags={"dagster/partition": account}))] == [result.run_id]
            materialized = instance.get_latest_materialization_event(AssetKey("optimization_cycle"))
            assert materialized is not None
            by_partition = instance.get_materialized_partitions(AssetKey("optimization_cycle"))
            assert by_partition == {"act_1001", "act_2002"}
            ledger = cycle.ledger()
            rows = ledger.cycle_actions(result.run_id)
            ledger.dispose()
            assert len(rows) and set(rows["account_id"]) == {account}
            assert all(entity_id.startswith(account.removeprefix("act_")) for entity_id in rows["entity_id"])
            assert cycle.stub_writes(account)[0]["method"] == "sync_insights"


def test_schedule_skips_an_account_whose_previous_cycle_is_still_queued(database_file, monkeypatch):
    """More accounts than one interval can cycle: a tick adds no second run behind a queued one."""
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,act_2002")
    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    tick = pd.Timestamp("2026-11-20T11:00:00Z").to_pydatetime()
    with instance_for_test() as instance:
        # Created, not yet started (a queued run looks the same here; storing one needs a code location).
        instance.add_run(DagsterRun(job_name=CYCLE_JOB_NAME, run_id="waiting-1001", status=DagsterRunStatus.NOT_STARTED,
                                    tags={"dagster/partition": "act_1001"}))
        schedule = cycle.defs.resolve_schedule_def(SCHEDULE_NAME)
        with build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=cycle.defs.get_repository_def()) as context:
            result = schedule.evaluate_tick(context)
        assert [r.partition_key for r in result.run_requests] == ["act_2002"]

        instance.add_run(DagsterRun(job_name=CYCLE_JOB_NAME, run_id="running-2002", status=DagsterRunStatus.STARTED,
                                    tags={"dagster/partition": "act_2002"}))
        with build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=cycle.defs.get_repository_def()) as context:
            result = schedule.evaluate_tick(context)
        assert not result.run_requests and "still queued or running" in result.skip_message

        for run_id in ("waiting-1001", "running-2002"):
            instance.report_run_canceled(instance.get_run_by_id(run_id))
        with build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=cycle.defs.get_repository_def()) as context:
            result = schedule.evaluate_tick(context)
        assert [r.partition_key for r in result.run_requests] == ["act_1001", "act_2002"]


def test_the_kill_switch_skips_every_scheduled_tick_and_a_manual_cycle_writes_nothing(database_file, monkeypatch):
    """Issue 9 #10: META_AUTO_ENABLED=false stops the autonomous system (the seed's kill switch)."""
    monkeypatch.setenv("META_AUTO_ENABLED", "false")
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    tick = pd.Timestamp("2026-11-20T11:00:00Z").to_pydatetime()
    with instance_for_test() as instance:
        schedule = cycle.defs.resolve_schedule_def(SCHEDULE_NAME)
        with build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=cycle.defs.get_repository_def()) as context:
            result = schedule.evaluate_tick(context)
        assert not result.run_requests
        assert result.skip_message == "META_AUTO_ENABLED is false: the autonomous system is stopped, no cycle launched"

        manual = cycle.run(instance)
        assert manual.success
    assert [w["method"] for w in cycle.stub_writes()] == ["sync_insights"]  # read, evaluated, nothing written
    actions = manual.output_for_node("optimization_cycle")
    assert len(actions) and not actions["verdict"].eq("executed").any()
    assert actions["verdict"].eq("deferred").sum() == 5  # what auto mode would have written
    ledger = cycle.ledger()
    assert len(ledger.cycle_actions(manual.run_id)) == len(actions)  # recorded all the same
    ledger.dispose()


def test_a_run_of_an_account_that_is_not_configured_reads_nothing(database_file, monkeypatch):
    """A run tagged by hand (``dagster job execute --tags``) with an unknown account fails first."""
    cycle = Cycle()
    with instance_for_test() as instance:
        result = cycle.job.execute_in_process(
            instance=instance, resources=cycle.resources, tags={"dagster/partition": "act_9999"}, raise_on_error=False
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "account_snapshot"
    assert "dagster/partition: act_9999 is not a configured ad account" in failure.step_failure_data.error.message
    assert not list((Path(cycle.resources["meta_client"].state_dir)).glob("stub_act_9999*"))  # nothing read or created


def test_a_broken_snapshot_fails_the_run_and_writes_nothing(tmp_path, monkeypatch, database_file):
    """Issue 10: the rejected file is not stored, so pointing the variable at a good file works."""
    document = demo_snapshot()
    document["insights"][5]["clicks"] = str(int(document["insights"][5]["impressions"]) + 10)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))

    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    state_dir = Path(cycle.resources["meta_client"].state_dir)
    with instance_for_test() as instance:
        result = cycle.run(instance, raise_on_error=False)
        assert not result.success
        failures = result.get_step_failure_events()
        assert [event.step_key for event in failures] == ["account_snapshot"]
        message = failures[0].step_failure_data.error.message
        assert f"stub snapshot {path}: snapshot rejected: insights[5]" in message and "clicks" in message and "impressions" in message
        # A rejected document is not retried (it would never pass, and each try advances the stub clock).
        assert not result.filter_events(lambda e: e.event_type == DagsterEventType.STEP_UP_FOR_RETRY)
        assert instance.get_latest_materialization_event(AssetKey("optimization_cycle")) is None
        assert instance.get_latest_materialization_event(AssetKey("account_snapshot")) is None
    assert not list(state_dir.rglob("*"))  # nothing of the rejected file was stored

    ledger = cycle.ledger()
    assert ledger.cycle_actions(result.run_id).empty and ledger.pending().empty
    assert ledger.history("act_1001", pd.Timestamp("2026-01-01", tz="UTC")).empty
    ledger.dispose()

    good = tmp_path / "good.json"
    good.write_text(json.dumps(demo_snapshot()))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(good))
    cycle = Cycle()
    with instance_for_test() as instance:
        assert cycle.run(instance).success
    assert [w["method"] for w in cycle.stub_writes()] == ["sync_insights", "pause"]


def test_a_changed_snapshot_file_starts_the_account_over_and_the_run_log_says_so(tmp_path, monkeypatch, database_file):
    path = tmp_path / "account.json"
    path.write_text(json.dumps(demo_snapshot()))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))
    cycle = Cycle()
    with instance_for_test() as instance:
        first = cycle.run(instance)
        assert first.success
        assert not [e for e in instance.all_logs(first.run_id) if "starting over" in e.user_message]

        document = demo_snapshot()
        document["campaigns"][0]["daily_budget"] = "41000"
        path.write_text(json.dumps(document))
        second = cycle.run(instance)
        assert second.success
        (restart,) = [e for e in instance.all_logs(second.run_id) if "starting over" in e.user_message]
    assert restart.step_key == "account_snapshot" and str(path) in restart.user_message
    snapshot = second.output_for_node("account_snapshot")
    assert snapshot.as_of == first.output_for_node("account_snapshot").as_of  # the file's clock, not one interval on
    assert snapshot.campaigns.set_index("id").loc[document["campaigns"][0]["id"], "daily_budget"] == 41000


def reconstructable_cycle_job():
    """Module-level, so Dagster can rebuild the job in a re-execution (reconstructable)."""
    return build_definitions(load_settings()).resolve_job_def(CYCLE_JOB_NAME)


def test_reexecuting_the_execute_step_sends_nothing_twice(monkeypatch, database_file):
    from dagster import ReexecutionOptions, execute_job, reconstructable

    monkeypatch.setenv("META_AUTO_MODE", "auto")
    with DagsterInstance.get() as instance:
        first = Cycle().run(instance)
        assert first.success
        before = Cycle().stub_writes()
        options = ReexecutionOptions(parent_run_id=first.run_id, step_selection=["optimization_cycle.execute", "optimization_cycle.finalize"])
        # Re-executions keep the parent run's tags (its partition = account), as the UI's do.
        tags = instance.get_run_by_id(first.run_id).tags
        with execute_job(reconstructable(reconstructable_cycle_job), instance, tags=tags, reexecution_options=options) as again:
            assert again.success
            run_id = again.run_id

    assert Cycle().stub_writes() == before  # not one write more
    ledger = Cycle().ledger()
    replayed = ledger.cycle_actions(run_id).set_index("entity_id")
    ledger.dispose()
    for _, entity_id in BUDGET_ENTITIES:
        assert replayed.loc[entity_id, "verdict"] == "superseded"
        assert f"already sent by run {first.run_id}" in replayed.loc[entity_id, "reasons"][-1]


def test_writes_left_open_by_a_dead_run_are_reconciled_not_resent(monkeypatch, database_file):
    """A run died between the Meta write and the ledger update: the next cycle reads the account."""
    from meta_ads_dagster.engine.cycle import plan_cycle
    from meta_ads_dagster.engine.snapshot import parse_snapshot

    monkeypatch.setenv("META_AUTO_MODE", "auto")
    cycle = Cycle()
    client = cycle.client()
    snapshot = parse_snapshot(client.fetch_snapshot())
    actions, _ = plan_cycle(snapshot, cycle.settings)
    ledger = cycle.ledger()
    ledger.record_cycle(actions, "run-that-died", snapshot.account_id, snapshot.as_of)  # all "executing"
    client.update_budget("campaign", "1001001", 55000)  # this write reached Meta before the crash
    ledger.dispose()

    with DagsterInstance.get() as instance:
        result = Cycle().run(instance)
    assert result.success

    ledger = cycle.ledger()
    dead = ledger.cycle_actions("run-that-died").set_index("entity_id")
    ledger.dispose()
    assert dead.loc["1001001", ["verdict", "status"]].tolist() == ["executed", "done"]
    assert dead.loc["1001001", "reasons"][-1] == "reconciled: landed (daily budget now 55000)"
    assert dead.loc["1001036", ["verdict", "status"]].tolist() == ["failed", "failed"]  # never reached Meta
    # The landed raise counts: the next raise waits for a full day since it (not even proposed);
    # nothing was sent twice.
    now = result.output_for_node("optimization_cycle").set_index("entity_id")
    assert "1001001" not in now.index
    updates = [w["entity_id"] for w in cycle.stub_writes() if w["method"] == "update_budget"]
    assert updates.count("1001001") == 1


def test_pending_approvals_alone_refreshes_the_queue_after_a_review(database_file):
    """Materializing pending_approvals by itself lists the queue as a review left it."""
    cycle = Cycle()
    with instance_for_test() as instance:
        assert cycle.run(instance).success
        ledger = cycle.ledger()
        approved = ledger.pending(cycle.account)["action_id"].iloc[0]
        approvals.decide(ledger, [approved], "approve", "alice", None, 24)
        ledger.dispose()

        queue_asset = cycle.defs.resolve_assets_def(AssetKey("pending_approvals"))
        result = materialize([queue_asset], instance=instance, partition_key=cycle.account)  # its resources are bound
        assert result.success
        waiting = instance.get_latest_materialization_event(AssetKey("pending_approvals")).asset_materialization.metadata
        assert (waiting["pending"].value, waiting["approved"].value, waiting["dagster/row_count"].value) == (4, 1, 5)
        statuses = {record.data["id"]: record.data["status"] for record in waiting["approvals"].records}
        assert statuses[approved] == "approved" and list(statuses.values()).count("pending") == 4
