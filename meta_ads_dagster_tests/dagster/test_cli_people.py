"""Issue 10's CLI as a new user meets it: one clean line for every error from every subcommand,
where the data lives, and the review commands (pending, history, log, rollback) people can check
money with. Each test asserts the exit code and the exact line."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from meta_ads_dagster.cli import build_parser, main

from ..repo_files import SEED_SNAPSHOT_PATH

EVERY_COMMAND = [
    ["plan", "--snapshot", "x.json"], ["backtest", "--snapshot", "x.json"], ["cycle"], ["pending"], ["approve", "a1", "--by", "alice"],
    ["reject", "a1", "--by", "bob", "--reason", "no"], ["history"], ["log", "abc"], ["rollback", "abc"],
    ["status"], ["policies"], ["mode", "auto", "--by", "alice"], ["pause-automation", "--by", "alice"], ["resume-automation", "--by", "alice"],
]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    """A folder with nothing in it, DAGSTER_HOME unset: the documented default ./.dagster_home."""
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("DAGSTER_HOME")
    return folder


# --- one clean line for every error, from any folder ---------------------------------------------------
@pytest.mark.parametrize("variable, value, message", [
    ("META_AUTO_MODE", "yolo", "meta-ads: invalid setting(s): META_AUTO_MODE: Input should be 'suggest' or 'auto' (got 'yolo')"),
    ("MAX_DAILY_CHANGE_PCT", "abc", "meta-ads: invalid setting(s): MAX_DAILY_CHANGE_PCT: Input should be a valid number, "
     "unable to parse string as a number (got 'abc')"),
    ("META_CYCLE_INTERVAL_MINUTES", "7", "meta-ads: invalid setting(s): META_CYCLE_INTERVAL_MINUTES: must divide 60 "
     "(e.g. 5, 10, 15, 20, 30, 60) so cycles are evenly spaced (got '7')"),
])
@pytest.mark.parametrize("argv", EVERY_COMMAND, ids=lambda a: a[0])
def test_a_bad_setting_is_one_line_and_exit_2_for_every_subcommand(capsys, empty_folder, monkeypatch, argv, variable, value, message):
    (empty_folder / "x.json").write_text("{}")
    monkeypatch.setenv(variable, value)
    assert run(capsys, *argv) == (2, "", message + "\n")
    assert list(empty_folder.iterdir()) == [empty_folder / "x.json"]  # nothing created


@pytest.mark.parametrize("argv", [["pending"], ["history"]], ids=lambda a: a[0])
def test_a_listing_on_an_empty_home_says_so_and_creates_nothing(capsys, empty_folder, argv):
    home = empty_folder / ".dagster_home"
    assert run(capsys, *argv) == (0, f"nothing recorded yet: {home} does not exist (set DAGSTER_HOME, or run `meta-ads cycle` first)\n", "")
    assert list(empty_folder.iterdir()) == []


@pytest.mark.parametrize("argv", [["log", "abc"], ["approve", "a1", "--by", "alice"], ["rollback", "abc"]], ids=lambda a: a[0])
def test_a_command_naming_something_on_an_empty_home_is_refused_in_one_line(capsys, empty_folder, argv):
    home = empty_folder / ".dagster_home"
    expected = f"meta-ads: nothing recorded yet: {home} does not exist (set DAGSTER_HOME, or run `meta-ads cycle` first)\n"
    assert run(capsys, *argv) == (2, "", expected)
    assert list(empty_folder.iterdir()) == []


def test_an_unreachable_database_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("META_ADS_DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/nowhere")
    code, out, err = run(capsys, "pending")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("meta-ads: the database could not be used: ") and "127.0.0.1" in err


@pytest.mark.parametrize("argv, message", [
    (["history", "--limit", "-5"], "argument --limit: '-5' must be 1 or more"),
    (["history", "--limit", "many"], "argument --limit: 'many' is not a whole number"),
])
def test_bad_arguments_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["pending", "history"])
def test_an_account_that_is_not_configured_is_refused_like_cycle_does(capsys, command):
    assert run(capsys, command, "--account", "act_9999") == (
        2, "", "meta-ads: --account: act_9999 is not one of the configured accounts (act_1001)\n",
    )


def test_every_option_has_help_and_the_help_ends_with_examples():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them here
    for name, sub in commands.items():
        for action in sub._actions:  # noqa: SLF001
            assert action.help, f"meta-ads {name} {action.option_strings or action.dest} has no help"
    text = parser.format_help()
    assert text.rstrip().endswith("Data lives under DAGSTER_HOME (./.dagster_home when unset).")
    assert "examples:\n  meta-ads plan --snapshot" in text and "settings table in README.md" in text


def test_plan_uses_meta_auto_mode_and_defaults_to_a_table(capsys, monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    code, out, err = run(capsys, "plan", "--snapshot", str(SEED_SNAPSHOT_PATH))
    assert code == 0 and err == "" and out.splitlines()[0] == "plan as of 2026-11-25T10:30:00+00:00 in auto mode"
    code, out, _ = run(capsys, "plan", "--snapshot", str(SEED_SNAPSHOT_PATH), "--mode", "suggest", "--format", "json")
    assert json.loads(out)["mode"] == "suggest"


# --- the review commands after real cycles --------------------------------------------------------------
@pytest.fixture
def two_cycles(capsys, monkeypatch):
    """Two auto cycles of the demo account; returns the run ids (first, second)."""
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    runs = []
    for _ in range(2):
        code, out, err = run(capsys, "cycle")
        assert code == 0, err
        runs += re.findall(r"cycle run ([0-9a-f-]{36}) of act_1001: SUCCESS", out)
    return runs


def test_a_cycle_is_quiet_by_default_and_verbose_on_request(capsys, monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    code, out, err = run(capsys, "cycle")
    assert code == 0 and "DEBUG" not in out + err and "Traceback" not in out + err and "UserWarning" not in err
    assert len(out.splitlines()) < 40 and out.lstrip().startswith("cycle run ")
    code, out, err = run(capsys, "cycle", "--verbose")
    assert code == 0 and "DEBUG" in out + err  # Dagster's event stream, on request


def test_a_rejected_snapshot_in_a_cycle_is_one_line_not_a_stack_trace(capsys, monkeypatch, tmp_path):
    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    document["insights"][0]["spend"] = "-5"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))
    code, out, err = run(capsys, "cycle")
    assert code == 1 and "Traceback" not in out + err and "dagster._core" not in out
    failure = [line for line in out.splitlines() if line.startswith("  account_snapshot: ")]
    assert failure == [f"  account_snapshot: stub snapshot {path}: snapshot rejected: insights[0].spend: must be a finite "
                       f"number from 0 to 1,000,000,000,000 (got '-5')"]


def test_pending_shows_account_rule_confidence_money_and_names_sorted_by_money_at_stake(capsys, monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "suggest")
    assert run(capsys, "cycle")[0] == 0
    code, out, err = run(capsys, "pending")
    header, columns, *lines = out.splitlines()
    assert code == 0 and header.startswith("pending and approved actions · home ")
    assert columns.split() == ["account", "id", "type", "rule", "unit", "entity", "confidence", "budget", "at_stake", "status", "approved_by"]
    assert "campaign 1001001 'Black Friday - ES'" in out and "USD 500.00 → 600.00" in out
    rows = json.loads(run(capsys, "pending", "--format", "json")[1])
    stakes = [row["at_stake"] for row in rows]
    assert stakes == sorted(stakes, reverse=True) and stakes[0] > 0
    assert {row["account"] for row in rows} == {"act_1001"} and all(row["entity_name"] for row in rows)
    # Approved rows stay listed, with who approved them, until a cycle carries them out.
    assert run(capsys, "approve", rows[0]["id"], "--by", "alice")[0] == 0
    approved = [r for r in json.loads(run(capsys, "pending", "--format", "json")[1]) if r["id"] == rows[0]["id"]]
    assert [(r["status"], r["approved_by"]) for r in approved] == [("approved", "alice")]


def test_run_id_prefixes_rollback_table_history_rows_and_log(capsys, two_cycles):
    first, second = two_cycles
    # The 8 characters `meta-ads cycle` prints work in log and rollback.
    code, out, _ = run(capsys, "log", first[:8])
    assert code == 0 and out.splitlines()[0].startswith(f"run {first} · home ")
    code, out, err = run(capsys, "log", "")  # a prefix of every run: ambiguous
    assert code == 2 and err.startswith("meta-ads: run_id:  matches ") and "give more of it" in err and err.count("\n") == 1

    code, out, err = run(capsys, "rollback", first[:8])
    assert code == 0 and err == ""
    title, columns, *rows = out.splitlines()
    assert re.fullmatch(rf"rollback cli-rollback-[0-9a-f]{{12}} of run {first}: 4 restored, 0 skipped, 1 refused, 0 forced, 0 failed", title)
    assert columns.split() == ["action", "entity", "before", "after", "outcome", "reason"]
    assert any("campaign 1001001 'Black Friday - ES'" in row and "550.00" in row and "500.00" in row and "restored" in row for row in rows)
    assert any("ad 1001022 'Spring B'" in row and "PAUSED" in row and "ACTIVE" in row for row in rows)
    assert any("ad 1001016" in row and "refused" in row and "the hard stop holds" in row for row in rows)
    rollback_id = title.split()[1]

    history = json.loads(run(capsys, "history", "--format", "json")[1])
    assert [(row["kind"], row["run_id"]) for row in history] == [("rollback", rollback_id), ("cycle", second), ("cycle", first)]
    assert history[0]["undoes"] == first and history[0]["actions_executed"] == 4
    log = json.loads(run(capsys, "log", first, "--format", "json")[1])
    undone = {row["entity_id"]: row["rolled_back_by"] for row in log}
    assert undone["1001001"] == [rollback_id] and undone["1001016"] == []  # the refused restore left it paused
    assert f"run {first}; rolled back by {rollback_id} · home " in run(capsys, "log", first)[1]


def test_the_home_is_resolved_one_way_and_shown(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("META_AUTO_MODE", "suggest")
    assert run(capsys, "cycle")[0] == 0
    home = tmp_path / "dagster_home"  # the conftest's DAGSTER_HOME
    for command in ("pending", "history"):
        header = run(capsys, command)[1].splitlines()[0]
        assert f"home {home} (DAGSTER_HOME); ledger {home / 'meta_ads.sqlite'}" in header
    # The same home from another folder: the variable decides, not the working directory.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert "(no pending actions)" not in run(capsys, "pending")[1]
    assert not (elsewhere / ".dagster_home").exists()
    shutil.rmtree(elsewhere)
