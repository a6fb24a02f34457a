"""Issue 13's operator controls as Dagster runs them and people use them: a cycle run works under the
stored mode and kill switch, the schedule skips a paused account, and ``meta-ads status``,
``policies``, ``mode``, ``pause-automation``, ``resume-automation`` (table and JSON; errors in one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, build_schedule_context, instance_for_test

from meta_ads_dagster.cli import main
from meta_ads_dagster.cli.control import POLICIES
from meta_ads_dagster.schedules import SCHEDULE_NAME
from meta_ads_dagster.settings import dagster_home
from meta_ads_dagster.store import controls
from meta_ads_dagster.store.ledger import Ledger

from .test_cycle_runs import Cycle

TICK = pd.Timestamp("2026-11-20T10:30:00Z").to_pydatetime()


@pytest.fixture
def database_file(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("META_ADS_DATABASE_URL", url)
    return url


def store(url: str, accounts: list[str], control: str, value: str, by: str = "alice") -> None:
    ledger = Ledger(url)
    try:
        controls.record(ledger, accounts, control, value, by)
    finally:
        ledger.dispose()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- a cycle run and the schedule ---------------------------------------------------------------------
def test_a_cycle_run_works_under_the_stored_mode_and_kill_switch(database_file):
    cycle = Cycle()  # META_AUTO_MODE unset: suggest, where the static demo's first cycle executes only its hard stop
    store(database_file, [cycle.account], "mode", "auto")
    store(database_file, [cycle.account], "automation", "paused", "bob")
    with instance_for_test() as instance:
        paused = cycle.run(instance)
        assert paused.success
        assert instance.get_run_by_id(paused.run_id).tags["meta/auto_mode"] == "auto"  # the run's tag says the mode it ran in
        warnings = [e.user_message for e in instance.all_logs(paused.run_id) if e.level >= 30]
        assert [w["method"] for w in cycle.stub_writes()] == ["sync_insights"]  # read, evaluated, nothing written
        actions = paused.output_for_node("optimization_cycle")
        assert not actions["verdict"].eq("executed").any() and actions["verdict"].eq("deferred").sum() == 5  # what auto mode writes
        assert any(m.startswith("automation paused by bob at ") and m.endswith("this cycle evaluates and records, and writes nothing") for m in warnings)

        store(database_file, [cycle.account], "automation", "running", "bob")
        resumed = cycle.run(instance)
        assert resumed.success
        metadata = instance.get_latest_materialization_event(AssetKey("optimization_cycle")).asset_materialization.metadata
    assert metadata["mode"].value == "auto" and metadata["actions_executed"].value == 5
    assert len([w for w in cycle.stub_writes() if w["method"] != "sync_insights"]) == 5


def test_the_schedule_skips_a_paused_account_and_tags_each_run_with_its_mode(database_file, monkeypatch):
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,2002")
    cycle = Cycle()  # before instance_for_test, which points DAGSTER_HOME at a temp dir it deletes
    schedule = cycle.defs.resolve_schedule_def(SCHEDULE_NAME)

    def tick(instance):
        with build_schedule_context(instance=instance, scheduled_execution_time=TICK, repository_def=cycle.defs.get_repository_def()) as context:
            return schedule.evaluate_tick(context)

    with instance_for_test() as instance:
        store(database_file, ["act_1001"], "mode", "auto")
        store(database_file, ["act_2002"], "automation", "paused", "bob")
        requests = tick(instance).run_requests
        assert [(r.partition_key, r.tags["meta/auto_mode"]) for r in requests] == [("act_1001", "auto")]

        store(database_file, ["act_1001"], "automation", "paused", "bob")
        result = tick(instance)
        assert not result.run_requests
        assert result.skip_message == "automation paused for every account (act_1001, act_2002): no cycle launched"

        store(database_file, ["act_2002"], "automation", "running", "bob")
        assert [(r.partition_key, r.tags["meta/auto_mode"]) for r in tick(instance).run_requests] == [("act_2002", "suggest")]


# --- the command line --------------------------------------------------------------------------------
def test_status_on_a_home_without_a_ledger_says_so_and_creates_nothing(capsys):
    home = dagster_home()
    before = sorted(home.rglob("*"))
    assert run(capsys, "status") == (0, f"nothing recorded yet in {home} (no ledger at {home / 'meta_ads.sqlite'}); run `meta-ads cycle` first\n", "")
    assert sorted(home.rglob("*")) == before


def test_status_shows_what_the_switches_and_the_cycles_did(capsys):
    assert run(capsys, "mode", "auto", "--by", "alice")[0] == 0
    assert main(["cycle"]) == 0
    capsys.readouterr()

    code, out, err = run(capsys, "status", "--format", "json")
    assert code == 0 and err == ""
    [status] = json.loads(out)
    assert status["account"] == "act_1001" and status["mode"] == "auto" and status["mode_set_by"] == "alice"
    assert status["automation"] == "running" and status["stopped_because"] is None and status["schedule_on"] is True
    assert status["last_cycle"]["status"] == "SUCCESS"
    next_cycle = datetime.fromisoformat(status["next_cycle"])
    assert next_cycle > datetime.now(timezone.utc) and next_cycle.minute in (0, 30) and next_cycle.second == 0

    ledger = Ledger(f"sqlite:///{dagster_home() / 'meta_ads.sqlite'}")
    rows = ledger.cycle_actions(status["last_cycle"]["run_id"])
    ledger.dispose()
    verdicts = rows["verdict"].value_counts()
    today = status["today"]
    assert today["generated"] == len(rows) == 7 and today["evaluated"] == 7
    assert {v: today[v] for v in ("executed", "queued", "policy_blocked", "safety_blocked", "deferred", "failed")} == {
        v: int(verdicts.get(v, 0)) for v in ("executed", "queued", "policy_blocked", "safety_blocked", "deferred", "failed")
    }
    assert today["executed"] == 5  # auto mode's
    assert status["open_approvals"] == {"pending": int((rows["status"] == "pending").sum()), "approved": 0}
    assert status["spend_today"] > 0 and status["max_daily_spend_usd"] == 10_000
    assert status["spend_pct"] == round(100 * status["spend_today"] / 10_000, 1)

    assert run(capsys, "pause-automation", "--by", "bob")[0] == 0
    code, out, err = run(capsys, "status")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("status · home ") and lines[2] == "act_1001"
    assert lines[3].startswith("  mode            auto (set by alice at ")
    assert lines[4].startswith("  automation      stopped: automation paused by bob at ") and lines[4].endswith("(meta-ads pause-automation)")
    assert lines[6].startswith("  last cycle      ") and lines[6].endswith(f"SUCCESS (run {status['last_cycle']['run_id'][:8]})")
    assert lines[7] == "  next cycle      — (no scheduled cycle for this account)"
    assert lines[8].startswith("  today (UTC)     evaluated 7 · generated 7 · executed 5 · ")
    assert lines[9].startswith("  spend today     ") and "/ 10,000.00 MAX_DAILY_SPEND_USD (" in lines[9]

    # The switches are in the cycle list, between the cycles they steered.
    history = json.loads(run(capsys, "history", "--format", "json")[1])
    assert [(r["kind"], r["status"], r["actor"]) for r in history] == [("automation", "paused", "bob"), ("cycle", "SUCCESS", "manual"), ("mode", "auto", "alice")]


def test_status_says_when_the_schedule_is_off(capsys, monkeypatch):
    monkeypatch.setenv("META_CYCLE_ENABLED", "false")
    assert run(capsys, "resume-automation", "--by", "alice")[0] == 0
    [status] = json.loads(run(capsys, "status", "--format", "json")[1])
    assert status["schedule_on"] is False and status["next_cycle"] is None and status["last_cycle"] is None


def test_the_switches_print_before_and_after_for_every_account(capsys, monkeypatch):
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,act_2002")
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    code, out, err = run(capsys, "mode", "suggest", "--by", "alice", "--format", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [(r["account"], r["control"], r["before"], r["after"], r["changed_by"]) for r in rows] == [
        ("act_1001", "mode", "auto", "suggest", "alice"), ("act_2002", "mode", "auto", "suggest", "alice"),
    ]
    code, out, err = run(capsys, "pause-automation", "--by", "bob", "--account", "2002")
    assert code == 0 and err == ""
    header, columns, row = out.splitlines()
    assert header == "automation changed · takes effect on each account's next cycle"
    assert columns.split() == ["account", "control", "before", "after", "changed_by", "changed_at"]
    assert row.split()[:5] == ["act_2002", "automation", "running", "paused", "bob"]

    monkeypatch.setenv("META_AUTO_ENABLED", "false")
    out = run(capsys, "resume-automation", "--by", "bob", "--account", "act_2002")[1]
    assert out.splitlines()[0].endswith("; META_AUTO_ENABLED is false, so nothing is written until it is true as well")


def test_policies_mark_the_accounts_overrides(capsys, monkeypatch, tmp_path):
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text("act_1001: {MAX_DAILY_SPEND_USD: 5000, HARD_STOP_ROAS: 0.8}\n")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,act_2002")
    monkeypatch.setenv("META_ACCOUNTS_FILE", str(accounts_file))
    monkeypatch.setenv("MIN_AGE_HOURS", "24")

    code, out, err = run(capsys, "policies", "--format", "json")
    assert code == 0 and err == ""
    first, second = json.loads(out)
    assert list(first["policies"]) == list(POLICIES) and POLICIES[0] == "max_daily_change_pct"
    assert first["account"] == "act_1001" and first["overridden"] == ["hard_stop_roas", "max_daily_spend_usd"]
    assert (first["policies"]["max_daily_spend_usd"], first["policies"]["hard_stop_roas"], first["policies"]["min_age_hours"]) == (5000, 0.8, 24)
    assert second["overridden"] == [] and (second["policies"]["max_daily_spend_usd"], second["policies"]["hard_stop_roas"]) == (10_000, 0.9)

    code, out, err = run(capsys, "policies")
    lines = out.splitlines()
    assert lines[0].split() == ["variable", "act_1001", "act_2002"]
    assert next(line for line in lines if line.startswith("MAX_DAILY_SPEND_USD")).split() == ["MAX_DAILY_SPEND_USD", "5000.0", "*", "10000.0"]
    assert next(line for line in lines if line.startswith("MIN_AGE_HOURS")).split() == ["MIN_AGE_HOURS", "24.0", "24.0"]
    assert lines[-1] == f"* overridden for that account in META_ACCOUNTS_FILE ({accounts_file})"
    assert run(capsys, "policies", "--account", "2002")[1].splitlines()[0].split() == ["variable", "act_2002"]


@pytest.mark.parametrize("argv", [
    ["status"], ["policies"], ["mode", "auto", "--by", "alice"], ["pause-automation", "--by", "alice"], ["resume-automation", "--by", "alice"],
], ids=lambda a: a[0])
def test_an_unknown_account_is_one_line_and_stores_nothing(capsys, argv):
    assert run(capsys, *argv, "--account", "act_9999") == (2, "", "meta-ads: --account: act_9999 is not one of the configured accounts (act_1001)\n")
    assert not (dagster_home() / "meta_ads.sqlite").exists()


@pytest.mark.parametrize("argv, message", [
    (["mode", "auto"], "meta-ads mode: the following arguments are required: --by (see meta-ads mode --help)"),
    (["pause-automation"], "meta-ads pause-automation: the following arguments are required: --by (see meta-ads pause-automation --help)"),
    (["resume-automation"], "meta-ads resume-automation: the following arguments are required: --by (see meta-ads resume-automation --help)"),
    (["mode", "yolo", "--by", "alice"], "meta-ads mode: argument mode: invalid choice: 'yolo' (choose from 'suggest', 'auto') (see meta-ads mode --help)"),
    (["status", "--format", "xml"], "meta-ads status: argument --format: invalid choice: 'xml' (choose from 'table', 'json') (see meta-ads status --help)"),
])
def test_a_usage_error_is_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == "" and err == message + "\n"


def test_a_blank_name_is_refused_in_one_line_and_stores_nothing(capsys, database_file):
    assert run(capsys, "pause-automation", "--by", "  ") == (2, "", "meta-ads: by: a name is required (--by NAME)\n")
    ledger = Ledger(database_file)
    assert controls.history(ledger) == []
    ledger.dispose()


def test_status_follows_dagster_schedule_stop(capsys):
    """The Dagster-level switch the README documents: `dagster schedule stop` as a person types it,
    seen by `meta-ads status` in the same DAGSTER_HOME."""
    assert run(capsys, "pause-automation", "--by", "alice")[0] == 0  # a ledger, so status has something to read
    assert run(capsys, "resume-automation", "--by", "alice")[0] == 0
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "schedule", "stop", SCHEDULE_NAME, "-m", "meta_ads_dagster"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DAGSTER_HOME": str(dagster_home())},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    capsys.readouterr()
    out = run(capsys, "status")[1]
    assert "  schedule        off (switched in the instance)" in out.splitlines()
    assert "  next cycle      — (no scheduled cycle for this account)" in out.splitlines()
