"""store/controls.py on SQLite and PostgreSQL: the stored mode and kill switch, their history, and the
settings a cycle works under (the environment's default where nothing is stored)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store import controls
from meta_ads_dagster.store.ledger import Ledger

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def ledger(database_url):
    ledger = Ledger(database_url)
    yield ledger
    ledger.dispose()


def test_nothing_stored_leaves_the_environment_in_charge(ledger):
    assert controls.current(ledger) == {}
    settings = load_settings(meta_auto_mode="auto")
    resolved = controls.cycle_settings(ledger, settings, "act_1001")
    assert resolved.meta_auto_mode == "auto" and resolved.stop_reason is None


def test_the_newest_change_is_the_state_and_every_change_is_kept(ledger):
    controls.record(ledger, ["act_1001", "act_2002"], "mode", "auto", "alice", now=T0)
    controls.record(ledger, ["act_1001"], "mode", "suggest", " bob ", now=T1)
    controls.record(ledger, ["act_2002"], "automation", "paused", "carol", now=T1)

    state = controls.current(ledger)
    assert state["act_1001"].mode == controls.Change("act_1001", "mode", "suggest", "bob", T1)
    assert state["act_1001"].automation is None and state["act_1001"].paused is None
    assert state["act_2002"].mode.value == "auto" and state["act_2002"].paused.changed_by == "carol"
    assert set(controls.current(ledger, ["act_2002"])) == {"act_2002"}

    assert [(c.account_id, c.value, c.changed_by) for c in controls.history(ledger)] == [
        ("act_2002", "paused", "carol"), ("act_1001", "suggest", "bob"), ("act_2002", "auto", "alice"), ("act_1001", "auto", "alice"),
    ]
    assert [c.value for c in controls.history(ledger, "act_1001")] == ["suggest", "auto"]
    assert len(controls.history(ledger, limit=1)) == 1


def test_a_stored_mode_and_pause_reach_the_cycle_settings(ledger):
    settings = load_settings()  # META_AUTO_MODE unset: suggest
    controls.record(ledger, ["act_1001"], "mode", "auto", "alice", now=T0)
    resolved = controls.cycle_settings(ledger, settings, "act_1001")
    assert resolved.meta_auto_mode == "auto" and resolved.budget_change_limit == settings.max_auto_change_pct
    assert controls.cycle_settings(ledger, settings, "act_2002").meta_auto_mode == "suggest"  # another account: the default

    controls.record(ledger, ["act_1001"], "automation", "paused", "bob", now=T1)
    paused = controls.cycle_settings(ledger, settings, "act_1001")
    assert paused.stop_reason == "automation paused by bob at 2026-11-30 09:30 UTC (meta-ads pause-automation)"
    assert paused.meta_auto_mode == "auto" and paused.meta_auto_enabled  # the environment's value is left as it is

    controls.record(ledger, ["act_1001"], "automation", "running", "bob")
    assert controls.cycle_settings(ledger, settings, "act_1001").stop_reason is None


def test_resuming_does_not_undo_the_environments_kill_switch(ledger):
    controls.record(ledger, ["act_1001"], "automation", "running", "alice")
    resolved = controls.cycle_settings(ledger, load_settings(meta_auto_enabled=False), "act_1001")
    assert resolved.stop_reason == "META_AUTO_ENABLED is false"


def test_a_stored_mode_keeps_the_accounts_overrides(ledger, tmp_path):
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text("act_1001: {MAX_AUTO_CHANGE_PCT: 0.05, MAX_DAILY_SPEND_USD: 900}\n")
    settings = load_settings(meta_ad_account_ids="act_1001,act_2002", meta_accounts_file=str(accounts_file))
    controls.record(ledger, ["act_1001", "act_2002"], "mode", "auto", "alice")
    resolved = controls.cycle_settings(ledger, settings, "act_1001")
    assert (resolved.meta_auto_mode, resolved.max_auto_change_pct, resolved.max_daily_spend_usd) == ("auto", 0.05, 900)
    other = controls.cycle_settings(ledger, settings, "act_2002")
    assert (other.meta_auto_mode, other.max_auto_change_pct, other.max_daily_spend_usd) == ("auto", 0.10, 10_000)
    assert resolved.for_account("act_1001") is resolved  # resolving again (each step does) changes nothing


@pytest.mark.parametrize("control, value, by, message", [
    ("mode", "yolo", "alice", "mode: must be one of suggest, auto, got 'yolo'"),
    ("automation", "off", "alice", "automation: must be one of paused, running, got 'off'"),
    ("speed", "fast", "alice", "control: must be one of mode, automation, got 'speed'"),
    ("mode", "auto", "   ", "by: a name is required (--by NAME)"),
    ("mode", "auto", "x" * 65, "by: a name of at most 64 printable characters on one line is required"),
    ("mode", "auto", "alice\nbob", "by: a name of at most 64 printable characters on one line is required"),
])
def test_a_bad_change_names_the_field_and_stores_nothing(ledger, control, value, by, message):
    with pytest.raises(controls.ControlError) as error:
        controls.record(ledger, ["act_1001"], control, value, by)
    assert str(error.value) == message
    assert controls.history(ledger) == []


def test_the_automation_runs_since_the_schedule_or_the_last_resume(ledger):
    nothing = controls.Controls()
    assert nothing.running_since(T0) == T0 and nothing.running_since(None) is None
    controls.record(ledger, ["act_1001"], "automation", "paused", "alice", now=T0)
    assert controls.current(ledger)["act_1001"].running_since(T0) is None
    controls.record(ledger, ["act_1001"], "automation", "running", "alice", now=T1)
    resumed = controls.current(ledger)["act_1001"]
    assert resumed.running_since(T0) == T1 and resumed.running_since(datetime(2026, 12, 1, tzinfo=timezone.utc)).day == 1
    assert resumed.running_since(None) is None  # the schedule stopped: nothing is due
