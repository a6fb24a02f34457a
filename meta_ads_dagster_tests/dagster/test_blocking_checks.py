"""The checks that stop bad data before money moves (issue 13).

Each blocking check passes and fails on crafted data, first as a plain function, then in a whole
cycle run over the stub (META_STUB_SNAPSHOT): a failing one stops the run before ``execute``, so the
stub records no write and the ledger no row, and the run names the check and why. A tracking
outage is a warning: the run goes on, the plan holds what the outage makes doubtful.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, DagsterInstance

from meta_ads_dagster.checks import (
    insight_rows_are_possible,
    insights_are_fresh,
    no_tracking_outage,
    plan_holds_on_tracking_outage,
    planned_actions_within_guard_rails,
)
from meta_ads_dagster.cycle import steps
from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings

from ..engine.factories import campaign, campaign_id, make_snapshot
from ..engine.test_outage import PIT, WINNER, account
from .test_cycle_runs import Cycle

AUTO = load_settings(meta_auto_mode="auto")


def healthy() -> dict:
    """A money pit (a hard stop) and a winner (a raise in auto mode)."""
    return make_snapshot([campaign(roas=0.5, spend=200, purchases=20), campaign(roas=4.0, spend=200, purchases=20)])


def stale(document: dict, days: int = 3) -> dict:
    """``document`` read ``days`` later, with no newer insights."""
    document["as_of"] = (pd.Timestamp(document["as_of"]) + pd.Timedelta(days=days)).isoformat()
    return document


def revenue_without_purchases(document: dict) -> dict:
    document["insights"][0]["actions"] = []
    return document


# --- the check bodies, as plain functions -----------------------------------------------------------


def test_insights_are_fresh_until_the_newest_day_is_older_than_the_setting():
    fresh = parse_snapshot(healthy())
    assert insights_are_fresh(AUTO, fresh, fresh.insights).passed
    # as_of is 10:30 the day after the newest row: 10.5 h old. A day later it is 34.5 h old.
    day_later = parse_snapshot(stale(healthy(), 1))
    result = insights_are_fresh(AUTO, day_later, day_later.insights)
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["age_hours"].value == pytest.approx(34.5) and "MAX_INSIGHTS_AGE_HOURS 24" in result.description
    assert insights_are_fresh(load_settings(max_insights_age_hours=48), day_later, day_later.insights).passed
    # An account that delivers nothing cannot be stale; one that delivers and reports nothing is.
    idle = parse_snapshot(stale(make_snapshot([campaign(status="PAUSED")]), 5))
    assert insights_are_fresh(AUTO, idle, idle.insights).passed
    blind = parse_snapshot(make_snapshot([campaign()]) | {"insights": []})
    assert not insights_are_fresh(AUTO, blind, blind.insights).passed


def test_insight_rows_are_possible_names_the_first_impossible_row():
    snapshot = parse_snapshot(healthy())
    assert insight_rows_are_possible(snapshot, snapshot.insights).passed
    # The parser lets revenue without purchases through (each field is valid alone); the check does not.
    broken = parse_snapshot(revenue_without_purchases(healthy()))
    result = insight_rows_are_possible(broken, broken.insights)
    assert not result.passed and result.metadata["revenue_without_purchases"].value == 1
    assert result.description.startswith(f"impossible insights rows: revenue_without_purchases (1 row(s), first: ad {broken.insights['ad_id'][0]}")
    # What the parser refuses in a document, the check refuses in a frame that came another way.
    frame = snapshot.insights.copy()
    frame.loc[3, "spend"] = -1.0
    frame.loc[4, "clicks"] = frame.loc[4, "impressions"] + 1
    counts = {k: v.value for k, v in insight_rows_are_possible(snapshot, frame).metadata.items()}
    assert counts == {"negative_or_not_finite": 1, "clicks_exceed_impressions": 1, "purchases_exceed_impressions": 0,
                      "revenue_without_purchases": 0, "dated_after_today": 0}
    # More purchases than clicks is possible (view-through and delayed click purchases).
    frame = snapshot.insights.assign(clicks=0)
    assert insight_rows_are_possible(snapshot, frame).passed


def test_the_plan_is_checked_against_the_guard_rails_with_the_checkers_own_arithmetic():
    snapshot = parse_snapshot(healthy())
    actions, _ = plan_cycle(snapshot, AUTO)
    assert set(actions.loc[actions["verdict"] == "executed", "entity_id"]) == {campaign_id(0), campaign_id(1)}
    assert planned_actions_within_guard_rails(AUTO, actions, snapshot).passed

    raise_row = actions.index[actions["type"] == "scale_up"][0]
    too_far = actions.copy()
    too_far.loc[raise_row, "new_budget_minor"] = too_far.loc[raise_row, "current_budget_minor"] * 1.5
    result = planned_actions_within_guard_rails(AUTO, too_far, snapshot)
    assert not result.passed and result.metadata["over_change_limit"].value == 1 and "over_change_limit: 1" in result.description

    # A raise of an entity inside its embargo: the check reads the creation time from the snapshot.
    young = parse_snapshot(make_snapshot([campaign(roas=4.0, spend=200, purchases=20, age_hours=10)]))
    planned = actions.loc[[raise_row]].assign(entity_id=campaign_id(0), campaign_id=campaign_id(0), current_budget_minor=50000.0, new_budget_minor=55000.0)
    assert planned_actions_within_guard_rails(AUTO, planned, young).metadata["written_in_embargo"].value == 1
    # ... but a hard stop may pause it.
    pause = planned.assign(type="pause", rule="hard_stop", new_budget_minor=float("nan"))
    assert planned_actions_within_guard_rails(AUTO, pause, young).passed


def test_on_an_outage_the_plan_may_write_only_hard_stops_and_a_persons_protective_approvals():
    snapshot = parse_snapshot(account(dark=1))
    actions, _ = plan_cycle(snapshot, AUTO)  # the engine held the rest
    assert plan_holds_on_tracking_outage(actions, snapshot).passed
    leaked = actions.copy()
    leaked.loc[leaked["entity_id"] == WINNER, "verdict"] = "executed"
    result = plan_holds_on_tracking_outage(leaked, snapshot)
    assert not result.passed and result.metadata["not_held"].value == 1 and result.description.startswith("tracking outage on ")
    # Without an outage the same raise is the plan's to write.
    normal = parse_snapshot(account())
    assert plan_holds_on_tracking_outage(leaked, normal).passed

    warning = no_tracking_outage(snapshot)
    assert not warning.passed and warning.severity == AssetCheckSeverity.WARN
    assert no_tracking_outage(normal).passed


# --- whole runs: a failing blocking check stops every write ------------------------------------------


def use_snapshot(document: dict, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "account.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))


@pytest.fixture
def auto_cycle(tmp_path, monkeypatch):
    """A cycle in auto mode over the document handed in; returns (cycle, result)."""
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    monkeypatch.setenv("META_ADS_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")

    def run(document: dict):
        use_snapshot(document, tmp_path, monkeypatch)
        cycle = Cycle()
        with DagsterInstance.get() as instance:
            result = cycle.run(instance, raise_on_error=False)
            materialized = {key for key in ("cycle_plan", "optimization_cycle")
                            if instance.get_latest_materialization_event(AssetKey(key)) is not None}
        return cycle, result, materialized

    return run


def written(cycle: Cycle) -> list[str]:
    return [w["method"] for w in cycle.stub_writes() if w["method"] != "sync_insights"]


def assert_stopped_by(result, step: str, check: str) -> str:
    """The run failed in ``step`` because the blocking ``check`` failed; returns the check's description."""
    assert not result.success
    failures = result.get_step_failure_events()
    assert [event.step_key for event in failures] == [step]
    assert check in failures[0].step_failure_data.error.message and "blocking asset check" in failures[0].step_failure_data.error.message
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == check)
    assert not evaluation.passed and evaluation.blocking and evaluation.severity == AssetCheckSeverity.ERROR
    started = {event.step_key for event in result.all_events if event.event_type == DagsterEventType.STEP_START}
    assert not any(key.startswith("optimization_cycle.") for key in started), started  # execute never ran
    return evaluation.description


def test_a_healthy_account_passes_every_check_and_is_written(auto_cycle):
    cycle, result, materialized = auto_cycle(healthy())
    assert result.success and materialized == {"cycle_plan", "optimization_cycle"}
    assert sorted(written(cycle)) == ["pause", "update_budget"]
    blocking = [e for e in result.get_asset_check_evaluations() if e.blocking]
    assert len(blocking) == 4 and all(e.passed for e in blocking)


@pytest.mark.parametrize(
    "document, check, why",
    [
        (stale(healthy()), "insights_are_fresh", "stale insights: the newest row is of "),
        (revenue_without_purchases(healthy()), "insight_rows_are_possible", "impossible insights rows: revenue_without_purchases"),
    ],
)
def test_a_failing_input_check_stops_the_run_before_anything_is_decided_or_written(auto_cycle, document, check, why):
    cycle, result, materialized = auto_cycle(document)
    assert assert_stopped_by(result, "insights", check).startswith(why)
    assert written(cycle) == [] and materialized == set()
    assert cycle.ledger().cycle_actions(result.run_id).empty


def test_a_plan_past_the_guard_rails_is_materialized_and_shown_but_never_written(auto_cycle, monkeypatch):
    """An engine bug that lets a raise past its limit: the plan check catches it before the write."""
    limit = steps.limit

    def overshooting(snapshot, actions, settings):
        limited = limit(snapshot, actions, settings)
        raises = limited["type"].eq("scale_up")
        limited.loc[raises, "new_budget_minor"] = limited.loc[raises, "current_budget_minor"] * 2
        return limited

    monkeypatch.setattr(steps, "limit", overshooting)
    cycle, result, materialized = auto_cycle(healthy())
    assert "over_change_limit: 1" in assert_stopped_by(result, "cycle_plan.check_planned_guard_rails", "planned_actions_within_guard_rails")
    # Nothing at all is written, the hard stop included: the plan as a whole is not trusted.
    assert written(cycle) == [] and materialized == {"cycle_plan"}
    assert cycle.ledger().cycle_actions(result.run_id).empty


def test_a_plan_that_does_not_hold_on_an_outage_is_never_written(auto_cycle, monkeypatch):
    """An engine that forgot the outage: the plan check sees the raise it would write."""
    monkeypatch.setattr(steps, "hold_actions_on_outage", lambda actions, snapshot, settings: (actions, None))
    cycle, result, materialized = auto_cycle(account(dark=1))
    assert "tracking outage on " in assert_stopped_by(result, "cycle_plan.check_outage_hold", "plan_holds_on_tracking_outage")
    assert written(cycle) == [] and materialized == {"cycle_plan"}


def test_on_a_tracking_outage_the_run_warns_and_writes_only_the_hard_stop_it_does_not_explain(auto_cycle):
    cycle, result, materialized = auto_cycle(account(dark=1))
    assert result.success and materialized == {"cycle_plan", "optimization_cycle"}
    warning = next(e for e in result.get_asset_check_evaluations() if e.check_name == "no_tracking_outage")
    assert not warning.passed and warning.severity == AssetCheckSeverity.WARN and warning.description.startswith("tracking outage on ")
    assert [(w["method"], w["entity_id"]) for w in cycle.stub_writes() if w["method"] != "sync_insights"] == [("pause", PIT)]
    actions = result.output_for_node("optimization_cycle").set_index("entity_id")
    assert actions.loc[WINNER, "verdict"] == "queued" and "tracking outage" in actions.loc[WINNER, "reasons"][-1]
    with DagsterInstance.get() as instance:
        plan = instance.get_latest_materialization_event(AssetKey("cycle_plan")).asset_materialization.metadata
    assert plan["tracking_outage"].value.startswith("tracking outage on ") and plan["to_execute"].value == 1


def test_run_cycle_stops_on_the_same_checks(tmp_path):
    """Without Dagster (the CLI's simulator, the property tests): the same checks, the same refusal."""
    from meta_ads_dagster.meta.stub import StubMetaAdsClient
    from meta_ads_dagster.store.ledger import Ledger

    path = tmp_path / "account.json"
    path.write_text(json.dumps(stale(healthy())))
    client = StubMetaAdsClient(state_dir=str(tmp_path / "stub"), snapshot_path=str(path), account_id="act_1001")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with pytest.raises(steps.PlanRefused, match=r"nothing written: insights_are_fresh: stale insights"):
        steps.run_cycle(ledger, client, AUTO, "run-1")
    assert [w["method"] for w in client.writes] == ["sync_insights"]
    assert ledger.cycle_actions("run-1").empty
    ledger.dispose()


def test_meta_ads_cycle_says_which_check_stopped_the_cycle_and_why(capsys, tmp_path, monkeypatch):
    from meta_ads_dagster.cli import main

    use_snapshot(revenue_without_purchases(healthy()), tmp_path, monkeypatch)
    assert main(["cycle"]) == 1
    out = capsys.readouterr().out
    assert "FAILURE" in out and "  insights: insights: insight_rows_are_possible" in out
    assert "  check insight_rows_are_possible: impossible insights rows: revenue_without_purchases (1 row(s)" in out
