"""cli.py: ``meta-ads plan`` prints the plan document of docs/snapshot-format.md; ``meta-ads cycle`` runs and records one cycle."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from meta_ads_dagster.cli import main

from ..repo_files import ACTION_KEYS, ACTION_TYPES, PLAN_KEYS, SEED_SNAPSHOT_PATH, STATS_KEYS

VERDICTS = {"executed", "queued", "policy_blocked", "safety_blocked", "failed"}


@pytest.fixture
def seed_path(tmp_path) -> Path:
    path = tmp_path / "seed.json"
    shutil.copy(SEED_SNAPSHOT_PATH, path)
    return path


def _plan(capsys, *args) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_plan_json_follows_the_contract(capsys, seed_path, mode):
    code, out, err = _plan(capsys, "--snapshot", str(seed_path), "--mode", mode, "--format", "json")
    assert code == 0 and err == ""
    document = json.loads(out)
    assert set(document) == PLAN_KEYS
    assert document["as_of"] == "2026-11-25T10:30:00+00:00" and document["mode"] == mode
    assert set(document["stats"]) == STATS_KEYS and document["stats"]["errors"] == []
    actions = document["actions"]
    assert actions and all(set(action) == ACTION_KEYS for action in actions)
    assert all(action["type"] in ACTION_TYPES and action["verdict"] in VERDICTS for action in actions)
    assert all(isinstance(action["reasons"], list) and action["reasons"] for action in actions)
    assert len({action["id"] for action in actions}) == len(actions)

    stats = document["stats"]
    assert stats["actions_generated"] == len(actions)
    for verdict in ("policy_blocked", "safety_blocked", "queued", "executed", "failed"):
        assert stats[f"actions_{verdict}"] == sum(a["verdict"] == verdict for a in actions)
    assert stats["campaigns_evaluated"] == 3

    # The seed's worked example: Black Friday - ES is scaled up within the mode's limit.
    black_friday = next(a for a in actions if a["entity_id"] == "100001")
    limit = 0.20 if mode == "suggest" else 0.10
    assert black_friday["type"] == "scale_up" and black_friday["entity_type"] == "campaign"
    assert black_friday["current_budget_usd"] == 500.0
    assert black_friday["amount_pct"] <= limit + 1e-9 and black_friday["new_budget_usd"] <= 500.0 * (1 + limit) + 1e-6
    if mode == "suggest":
        assert black_friday["verdict"] == "queued"
    assert not any(a["entity_id"] in ("100005", "100006") and a["type"] in ("scale_up", "scale_down") for a in actions)


def test_plan_is_deterministic(capsys, seed_path):
    args = ("--snapshot", str(seed_path), "--mode", "auto", "--format", "json")
    first, second = _plan(capsys, *args), _plan(capsys, *args)
    assert first == second and first[0] == 0


def test_plan_writes_nothing(capsys, seed_path, tmp_path):
    home = tmp_path / "dagster_home"
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    assert _plan(capsys, "--snapshot", str(seed_path), "--mode", "auto")[0] == 0
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before
    assert json.loads(seed_path.read_text()) == json.loads(SEED_SNAPSHOT_PATH.read_text())


def test_plan_table(capsys, seed_path):
    code, out, err = _plan(capsys, "--snapshot", str(seed_path), "--mode", "suggest", "--format", "table")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "plan as of 2026-11-25T10:30:00+00:00 in suggest mode"
    assert lines[1].split() == ["id", "type", "entity_type", "entity_id", "rule", "amount_pct",
                                "current_budget_usd", "new_budget_usd", "confidence", "verdict"]
    document = json.loads(_plan(capsys, "--snapshot", str(seed_path), "--mode", "suggest", "--format", "json")[1])
    for action in document["actions"]:
        assert any(line.startswith(action["id"]) and action["verdict"] in line for line in lines)
        for reason in action["reasons"]:
            assert f"    - {reason}" in lines
    assert lines[-1].startswith("stats: success=True, tick_started_at=2026-11-25T10:30:00+00:00, tick_completed_at=2026-11-25T10:30:00+00:00, campaigns_evaluated=3, actions_generated=")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["insights"][0].update(clicks=str(int(d["insights"][0]["impressions"]) + 1)), r"insights\[0\].*clicks"),
        (lambda d: d["campaigns"][1].update(status="RUNNING"), r"campaigns\[1\] \(id 100005\)\.status"),
        (lambda d: d["ads"][2].update(adset_id="999"), r"ads\[2\] \(id 100011\)\.adset_id"),
        (lambda d: d["campaigns"][0].update(daily_budget="500.50"), r"campaigns\[0\] \(id 100001\)\.daily_budget"),
    ],
)
def test_plan_rejects_a_broken_snapshot(capsys, tmp_path, mutate, expected):
    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    mutate(document)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    code, out, err = _plan(capsys, "--snapshot", str(path), "--mode", "suggest")
    assert code == 2 and out == ""
    assert err.startswith("meta-ads: snapshot rejected") and re.search(expected, err), err


def test_plan_missing_file_and_invalid_json(capsys, tmp_path):
    code, out, err = _plan(capsys, "--snapshot", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read snapshot" in err and out == ""
    (tmp_path / "bad.json").write_text("{not json")
    code, out, err = _plan(capsys, "--snapshot", str(tmp_path / "bad.json"))
    assert (code, out) == (2, "")
    assert err == "meta-ads: snapshot rejected: not valid JSON at line 1 column 2: Expecting property name enclosed in double quotes\n"


@pytest.mark.parametrize(("data", "message"), [
    # Issue 10: these were tracebacks (UnicodeDecodeError, RecursionError).
    (SEED_SNAPSHOT_PATH.read_bytes().replace(b"Black Friday", "Black Fr\u00eeday".encode("latin-1")),
     r"not UTF-8 text: byte 0xee at line \d+ column \d+"),
    (b"\xff\xfe{}", r"not UTF-8 text: byte 0xff at line 1 column 1"),
    (b'{"as_of": ' + b"[" * 5000 + b"]" * 5000 + b"}", r"not valid JSON: nested too deep to read"),
])
def test_plan_answers_a_file_that_is_not_json_in_one_line(capsys, tmp_path, data, message):
    path = tmp_path / "snapshot.json"
    path.write_bytes(data)
    code, out, err = _plan(capsys, "--snapshot", str(path))
    assert (code, out) == (2, "")
    assert re.fullmatch(f"meta-ads: snapshot rejected: {message}\n", err), err


def test_plan_and_cycle_refuse_the_same_account_id(capsys, tmp_path, monkeypatch):
    """Input checks match everywhere: what `cycle` cannot run, `plan` does not plan (issue 10)."""
    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    document["account"]["id"] = "act_abc"
    path = tmp_path / "act_abc.json"
    path.write_text(json.dumps(document))
    expected = "snapshot rejected: account.id: must be an ad account id (act_<digits>) (got 'act_abc')\n"
    code, out, err = _plan(capsys, "--snapshot", str(path))
    assert (code, out, err) == (2, "", f"meta-ads: {expected}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))
    assert main(["cycle"]) == 2
    out, err = capsys.readouterr()
    assert err == f"meta-ads: META_STUB_SNAPSHOT: {path}: {expected}" and "cycle run" not in out


@pytest.mark.parametrize("account", ["act_１２", "١٢", "act_12ab", ""])
def test_an_account_argument_must_be_ascii_digits(capsys, account):
    with pytest.raises(SystemExit) as refused:  # argparse: usage error, exit 2, before anything runs
        main(["pending", "--account", account])
    assert refused.value.code == 2 and "is not an ad account id (act_<digits>)" in capsys.readouterr().err


def test_cycle_creates_a_dagster_home_and_records_the_run(capsys, tmp_path, monkeypatch):
    cwd = tmp_path / "project"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DAGSTER_HOME")

    assert main(["cycle"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"cycle run ([0-9a-f-]{36}) of act_1001: SUCCESS \(stub mode, suggest\)", out)
    assert match, out
    run_id = match.group(1)

    home = cwd / ".dagster_home"
    assert "telemetry:\n  enabled: false" in (home / "dagster.yaml").read_text()
    assert (home / "history" / "runs.db").is_file()  # SQLite run storage
    assert (home / "meta_ads.sqlite").is_file() and (home / "stub_state" / "stub_act_1001.json").is_file()
    assert f"DAGSTER_HOME={home}" in out and run_id[:8] in out
    assert "9c5d9e706e9580c8" in out  # the demo's hard stop, in the printed action table

    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_success
        assert run.tags["meta/triggered_by"] == "manual"


@pytest.mark.parametrize(("variable", "value"), [("MAX_AUTO_CHANGE_PCT", "2"), ("META_CYCLE_INTERVAL_MINUTES", "7")])
def test_cycle_refuses_settings_it_cannot_run(capsys, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert main(["cycle"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("meta-ads: ") and variable in err
    assert "cycle run" not in out


def test_live_cycle_without_a_token_fails_naming_the_variable(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("META_API_MODE", "live")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_2001")
    for name in ("META_ACCESS_TOKEN", "META_APP_ID", "META_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["cycle"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("meta-ads: the cycle could not start: ") and "META_ACCESS_TOKEN" in err and err.count("\n") == 1


# --- several ad accounts ---------------------------------------------------------------------------
def _cycle_runs(out: str) -> dict[str, str]:
    """account → run id of every 'cycle run … of … : SUCCESS' line."""
    return {account: run_id for run_id, account in re.findall(r"cycle run ([0-9a-f-]{36}) of (act_\d+): SUCCESS", out)}


def test_cycle_history_and_rollback_per_account(capsys, monkeypatch):
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,act_2002")
    monkeypatch.setenv("META_AUTO_MODE", "auto")  # so the cycles write, and there is something to roll back

    assert main(["cycle"]) == 0  # one cycle per configured account
    first = _cycle_runs(capsys.readouterr().out)
    assert sorted(first) == ["act_1001", "act_2002"]
    assert main(["cycle", "--account", "2002"]) == 0  # the act_ prefix is optional, as in META_AD_ACCOUNT_IDS
    second = _cycle_runs(capsys.readouterr().out)
    assert list(second) == ["act_2002"]

    assert main(["cycle", "--account", "act_9"]) == 2
    out, err = capsys.readouterr()
    assert "--account: act_9 is not one of the configured accounts (act_1001, act_2002)" in err and "cycle run" not in out
    with pytest.raises(SystemExit) as refused:  # argparse: usage error, exit 2
        main(["cycle", "--account", "shop-9"])
    assert refused.value.code == 2 and "'shop-9' is not an ad account id" in capsys.readouterr().err

    # Each account's own cycle history (newest first).
    assert main(["history", "--account", "act_2002", "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [row["run_id"] for row in history] == [second["act_2002"], first["act_2002"]]
    assert {row["account"] for row in history} == {"act_2002"}
    assert main(["history", "--format", "json"]) == 0
    assert {row["account"] for row in json.loads(capsys.readouterr().out)} == {"act_1001", "act_2002"}

    # Rolling back act_2002's first cycle restores act_2002's entities (the ledger knows the run's
    # account), whatever account the CLI's settings name first.
    assert main(["rollback", first["act_2002"], "--by", "alice", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["restored"] and all(label.split()[-1].startswith("2002") for label in report["restored"])
