"""The alert sensors over real stub cycle runs: each alert reaches a real webhook on 127.0.0.1
once when its condition starts to hold, not otherwise, and not again until it cleared."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from dagster import AssetCheckResult, AssetCheckSeverity, DagsterRun, DagsterRunStatus, build_run_status_sensor_context, build_sensor_context, instance_for_test

from meta_ads_dagster.alerts import sensors
from meta_ads_dagster.alerts.notifier import Notifier
from meta_ads_dagster.jobs import ACCOUNT_TAG, CYCLE_JOB_NAME
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.schedules import cycle_schedule
from meta_ads_dagster.settings import load_settings

from ..dagster.test_cycle_runs import Cycle
from .servers import Webhook

HARD_STOPPED = "1001016"  # the static demo's hard stop


@pytest.fixture
def database_file(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("META_ADS_DATABASE_URL", url)
    monkeypatch.setenv("MAX_DAILY_SPEND_USD", "1000000")  # far from the cap unless a test says otherwise
    return url


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


def judge(cycle: Cycle, instance, result, webhook: Webhook, settings=None) -> list[str]:
    """Run the sensor that Dagster would run for this finished run; return the alerts it sent."""
    before = len(webhook.received)
    run = instance.get_run_by_id(result.run_id)
    sensor_defs = {s.name: s for s in sensors.make_cycle_alert_sensors(settings or cycle.settings)}
    resources = {"notifier": Notifier(webhook_url=webhook.url), "ledger": cycle.resources["ledger"]}
    if result.success:
        event, sensor_def = result.get_run_success_event(), sensor_defs["meta_ads_cycle_outcome_alert"]
    else:
        event, sensor_def = result.get_run_failure_event(), sensor_defs["meta_ads_cycle_failed_alert"]
    with build_run_status_sensor_context(sensor_def.name, event, instance, run, resources=resources, partition_key=cycle.account) as context:
        sensor_def(context.for_run_failure() if not result.success else context)
    return webhook.texts[before:]


def titles(texts: list[str]) -> list[str]:
    return sorted(text.splitlines()[0] for text in texts)


def test_a_cycles_hard_stop_and_queued_actions_alert_once(database_file, webhook):
    cycle = Cycle()
    with instance_for_test() as instance:
        first = cycle.run(instance)
        sent = judge(cycle, instance, first, webhook)
        assert titles(sent) == [
            "[meta-ads] act_1001: actions queued for review (meta-ads pending; approve or reject)",
            "[meta-ads] act_1001: hard stop triggered",
        ]
        hard_stop = next(t for t in sent if "hard stop" in t)
        assert f"({HARD_STOPPED}) paused" in hard_stop and f"Run: http://localhost:3000/runs/{first.run_id}" in hard_stop
        digest = next(t for t in sent if "queued" in t)
        assert digest.count("\n• ") == 5  # the five proposals waiting for a person, one line each

        # The next cycle proposes the same again (the queue's rows are replaced) and has nothing
        # to hard-stop: nothing new, nothing sent.
        second = cycle.run(instance)
        assert judge(cycle, instance, second, webhook) == []


def test_spend_near_the_cap_alerts_once_until_it_clears(database_file, webhook):
    cycle = Cycle()
    near_cap = load_settings(max_daily_spend_usd=1.0)  # whatever the demo spent today is above 90 % of 1
    with instance_for_test() as instance:
        judge(cycle, instance, cycle.run(instance), webhook)  # the first cycle's own alerts (hard stop, queue)
        second = cycle.run(instance)
        assert titles(judge(cycle, instance, second, webhook, near_cap)) == ["[meta-ads] act_1001: spend above 90% of the daily cap"]
        assert judge(cycle, instance, second, webhook, near_cap) == []  # still above: not again
        assert judge(cycle, instance, second, webhook, cycle.settings) == []  # below: clears, nothing sent
        sent = judge(cycle, instance, second, webhook, near_cap)  # above again: alerts again
        assert titles(sent) == ["[meta-ads] act_1001: spend above 90% of the daily cap"]
        assert "of the daily cap 1.00 (MAX_DAILY_SPEND_USD)" in sent[0]


def test_a_failed_cycle_alerts_once_until_a_cycle_succeeds(tmp_path, monkeypatch, database_file, webhook):
    broken = demo_snapshot()
    broken["insights"][5]["clicks"] = str(int(broken["insights"][5]["impressions"]) + 10)
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "good.json").write_text(json.dumps(demo_snapshot()))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(tmp_path / "broken.json"))
    failing = Cycle()
    with instance_for_test() as instance:
        first = failing.run(instance, raise_on_error=False)
        assert not first.success
        [sent] = judge(failing, instance, first, webhook)
        assert sent.startswith("[meta-ads] act_1001: cycle failure\n• step account_snapshot failed: ")
        assert "snapshot rejected" in sent and f"/runs/{first.run_id}" in sent
        assert judge(failing, instance, failing.run(instance, raise_on_error=False), webhook) == []  # still failing

        monkeypatch.setenv("META_STUB_SNAPSHOT", str(tmp_path / "good.json"))
        good = Cycle()
        assert "cycle failure" not in "".join(judge(good, instance, good.run(instance), webhook))  # clears
        monkeypatch.setenv("META_STUB_SNAPSHOT", str(tmp_path / "broken.json"))
        again = failing.run(instance, raise_on_error=False)
        assert titles(judge(failing, instance, again, webhook)) == ["[meta-ads] act_1001: cycle failure"]


def test_failed_meta_writes_alert_the_error_rate_and_the_failed_hard_stop(database_file, webhook):
    cycle = Cycle()
    used = cycle.resources["meta_client"]
    cycle.resources["meta_client"] = StubMetaAdsClient(state_dir=used.state_dir, account_id=cycle.account, fail_writes_for=[HARD_STOPPED])
    with instance_for_test() as instance:
        sent = judge(cycle, instance, cycle.run(instance), webhook)
    error_rate = next(t for t in sent if "Meta API error rate" in t)
    assert "1 of 1 writes failed (100%)" in error_rate
    hard_stop = next(t for t in sent if "hard stop triggered" in t)
    assert f"({HARD_STOPPED}) pause failed" in hard_stop


def test_a_failed_asset_check_alerts_naming_the_check(database_file, webhook, monkeypatch):
    from meta_ads_dagster.cycle import graph

    def failing_check(settings, optimization_cycle, account_snapshot):
        return AssetCheckResult(check_name="executed_actions_within_guard_rails", passed=False, severity=AssetCheckSeverity.ERROR,
                                metadata={"over_tick_limit": 3, "over_change_limit": 0})

    real_check = graph.executed_actions_within_guard_rails
    cycle = Cycle()
    with instance_for_test() as instance:
        monkeypatch.setattr(graph, "executed_actions_within_guard_rails", failing_check)
        failed = cycle.run(instance)
        sent = [t for t in judge(cycle, instance, failed, webhook) if "asset check" in t]
        assert len(sent) == 1
        assert sent[0].startswith("[meta-ads] act_1001: asset check executed_actions_within_guard_rails on optimization_cycle failed (ERROR)")
        assert "over_tick_limit=3" in sent[0] and "over_change_limit" not in sent[0]
        assert not [t for t in judge(cycle, instance, cycle.run(instance), webhook) if "asset check" in t]  # still failing
        monkeypatch.setattr(graph, "executed_actions_within_guard_rails", real_check)
        assert not [t for t in judge(cycle, instance, cycle.run(instance), webhook) if "asset check" in t]  # passes: clears


# --- the schedule-aware sensor -------------------------------------------------------------------

def watch(cycle: Cycle, instance, webhook: Webhook, cursor: str | None, settings=None) -> tuple[list[str], str]:
    settings = settings or cycle.settings
    sensor_def = sensors.make_cycle_watch_sensor(settings, cycle_schedule(cycle.job, cycle.job.partitions_def, settings), [cycle.account])
    before = len(webhook.received)
    with build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": Notifier(webhook_url=webhook.url)}) as context:
        sensor_def(context)
        return webhook.texts[before:], context.cursor


def hours_ago(hours: float) -> str:
    return json.dumps({"watching_since": (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat(), "active": {}})


def test_no_successful_cycle_in_an_hour_alerts_once_while_the_schedule_runs(database_file, webhook):
    cycle = Cycle()
    with instance_for_test() as instance:
        sent, cursor = watch(cycle, instance, webhook, None)
        assert sent == [] and json.loads(cursor)["watching_since"]  # starts watching now

        sent, cursor = watch(cycle, instance, webhook, hours_ago(2))  # watched for 2 h, no cycle at all
        assert titles(sent) == ["[meta-ads] act_1001: no successful cycle in 1 hour"]
        assert watch(cycle, instance, webhook, cursor)[0] == []  # not again

        cycle.run(instance)  # a successful cycle clears it
        sent, cursor = watch(cycle, instance, webhook, cursor)
        assert sent == [] and json.loads(cursor)["active"] == {"act_1001": []}


def test_no_overdue_alert_while_the_schedule_is_stopped_or_the_kill_switch_is_on(database_file, webhook):
    cycle = Cycle()
    with instance_for_test() as instance:
        for settings in (load_settings(meta_cycle_auto_start=False), load_settings(meta_auto_enabled=False)):
            sent, cursor = watch(cycle, instance, webhook, hours_ago(2), settings)
            assert sent == [] and json.loads(cursor)["watching_since"] is None


def test_a_cycle_running_longer_than_ten_minutes(database_file):
    cycle = Cycle()
    with instance_for_test() as instance:
        instance.add_run(DagsterRun(job_name=CYCLE_JOB_NAME, run_id="slow-run", status=DagsterRunStatus.STARTED, tags={ACCOUNT_TAG: cycle.account}))
        started = instance.get_run_record_by_id("slow-run").create_timestamp
        for minutes, fires in ((9, False), (11, True)):
            [(findings, run_id)] = sensors.watch_findings(instance, [cycle.account], None, started + timedelta(minutes=minutes)).values()
            slow = next(f for f in findings if f.kind == "slow_cycle")
            assert bool(slow.items) is fires and run_id == "slow-run"


def test_a_schedule_stopped_in_the_ui_silences_the_overdue_alert_and_started_again_rearms_it(database_file, webhook):
    """The schedule's stored state (what `dagster schedule stop|start` and the UI's toggle write)
    wins over its default in code."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, ScheduleInstigatorData

    from meta_ads_dagster.schedules import SCHEDULE_NAME

    cycle = Cycle()
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("meta_ads_dagster"), "__repository__"), SCHEDULE_NAME)
    state = InstigatorState(origin, InstigatorType.SCHEDULE, InstigatorStatus.STOPPED, ScheduleInstigatorData(cycle.settings.cycle_cron))
    with instance_for_test() as instance:
        sent, cursor = watch(cycle, instance, webhook, hours_ago(2))
        assert titles(sent) == ["[meta-ads] act_1001: no successful cycle in 1 hour"]
        instance.add_instigator_state(state)  # stopped: nothing is overdue, the alert clears
        sent, cursor = watch(cycle, instance, webhook, cursor)
        assert sent == [] and json.loads(cursor) == {"watching_since": None, "active": {"act_1001": []}}
        instance.update_instigator_state(state.with_status(InstigatorStatus.RUNNING))  # started again: counted from now
        sent, cursor = watch(cycle, instance, webhook, cursor)
        assert sent == [] and json.loads(cursor)["watching_since"] is not None


def test_a_canceled_cycle_alerts_like_a_failed_one(database_file, webhook):
    from dagster import DagsterEvent, DagsterEventType

    cycle = Cycle()
    [_, canceled_sensor, _] = sensors.make_cycle_alert_sensors(cycle.settings)
    resources = {"notifier": Notifier(webhook_url=webhook.url), "ledger": cycle.resources["ledger"]}
    with instance_for_test() as instance:
        run = instance.add_run(DagsterRun(job_name=CYCLE_JOB_NAME, run_id="stuck-run", status=DagsterRunStatus.CANCELED, tags={ACCOUNT_TAG: cycle.account}))
        event = DagsterEvent(DagsterEventType.RUN_CANCELED.value, CYCLE_JOB_NAME, message="Exceeded maximum runtime of 1500 seconds.")
        for _ in range(2):  # sent once: judged again, the run shows the same condition
            with build_run_status_sensor_context(canceled_sensor.name, event, instance, run, resources=resources) as context:
                canceled_sensor(context)
            assert len(webhook.texts) == 1
    assert webhook.texts[0].startswith("[meta-ads] act_1001: cycle canceled\n• Exceeded maximum runtime of 1500 seconds.")
    assert webhook.texts[0].endswith("/runs/stuck-run")


def test_the_alert_sensors_are_registered_running_with_a_log_only_notifier_by_default():
    from meta_ads_dagster.definitions import build_definitions

    defs = build_definitions(load_settings())
    names = {"meta_ads_cycle_failed_alert", "meta_ads_cycle_canceled_alert", "meta_ads_cycle_outcome_alert", "meta_ads_cycle_watch"}
    for name in names:
        assert defs.resolve_sensor_def(name).default_status.value == "RUNNING", name
    assert defs.resources["notifier"].channels == []


def test_one_daemon_tick_judges_every_cycle_finished_since_even_one_run_by_a_cli_process(database_file, webhook):
    """The sensor as the daemon evaluates it (its code location set, Dagster's own cursor): runs
    executed in process, as `meta-ads cycle` does, carry no code location and are judged too, and
    one tick judges all the runs that finished since the last one."""
    from dagster import DagsterEventType, SensorEvaluationContext
    from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorCursor
    from dagster._core.execution.build_resources import wrap_resources_for_execution
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin

    cycle = Cycle()
    [_, _, outcome_sensor] = sensors.make_cycle_alert_sensors(cycle.settings)
    resources = {"notifier": Notifier(webhook_url=webhook.url), "ledger": cycle.resources["ledger"]}

    def tick(instance, cursor):
        with SensorEvaluationContext(
            instance_ref=None, cursor=cursor, repository_name="__repository__", instance=instance, sensor_name=outcome_sensor.name,
            code_location_origin=RegisteredCodeLocationOrigin("meta_ads_dagster"), resources=wrap_resources_for_execution(resources),
        ) as context:
            return outcome_sensor.evaluate_tick(context).cursor

    with instance_for_test() as instance:
        cursor = tick(instance, None)  # the first tick only starts the cursor at the newest event
        runs = [cycle.run(instance), cycle.run(instance)]
        assert all(run.dagster_run.remote_job_origin is None for run in runs)
        cursor = tick(instance, cursor)
        assert titles(webhook.texts) == [
            "[meta-ads] act_1001: actions queued for review (meta-ads pending; approve or reject)",
            "[meta-ads] act_1001: hard stop triggered",
        ]
        assert all(f"/runs/{runs[0].run_id}" in text for text in webhook.texts)
        # ... and the second run was judged in the same tick (it sent nothing new): the cursor is past it.
        changes = instance.fetch_run_status_changes(DagsterEventType.RUN_SUCCESS, limit=10).records
        [second_done] = [record for record in changes if record.run_id == runs[1].run_id]
        assert RunStatusSensorCursor.from_json(cursor).record_id == second_done.storage_id
        tick(instance, cursor)
        assert len(webhook.texts) == 2  # nothing finished since
