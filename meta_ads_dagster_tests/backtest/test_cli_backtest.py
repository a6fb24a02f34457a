"""``meta-ads backtest``: the documented JSON, the table, the examples, and one line per error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import meta_ads_dagster.engine
from meta_ads_dagster.cli import main

from ..engine.factories import campaign, make_snapshot, steady_days
from ..repo_files import ACTION_TYPES, DEMO_SNAPSHOT_PATH, RULES, SEED_SNAPSHOT_PATH, VERDICTS, documented_names


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def written(tmp_path, content: str | bytes, name: str = "snapshot.json") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize("approve_all", [[], ["--approve-all"]])
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_the_json_document_has_the_documented_fields(capsys, mode, approve_all):
    code, out, err = run(capsys, "backtest", "--snapshot", str(DEMO_SNAPSHOT_PATH), "--mode", mode, "--format", "json", *approve_all)
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert list(document) == documented_names("backtest")
    assert (document["mode"], document["approve_all"]) == (mode, bool(approve_all))
    assert [list(day) for day in document["days"]] == [documented_names("backtest_day")] * 2
    assert list(document["totals"]) == documented_names("backtest_totals")
    assert document["actions"] and all(list(row) == documented_names("backtest_action") for row in document["actions"])
    assert {row["type"] for row in document["actions"]} <= ACTION_TYPES
    assert {row["rule"] for row in document["actions"]} <= RULES
    assert {row["verdict"] for row in document["actions"]} <= VERDICTS
    assert sum(row["applied"] for row in document["actions"]) == document["totals"]["applied"]


@pytest.mark.parametrize("path, days", [(DEMO_SNAPSHOT_PATH, "2026-11-19 to 2026-11-20"), (SEED_SNAPSHOT_PATH, "2026-11-25 to 2026-11-25")])
def test_the_examples_replay_as_a_table(capsys, path, days):
    code, out, err = run(capsys, "backtest", "--snapshot", str(path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert days in lines[0] and "in suggest mode (queued = would have waited for a person, not applied)" in lines[0]
    assert lines[1].startswith("note: the insights are what happened under the real budgets")
    assert lines[2].split() == ["day", "type", "entity_type", "entity_id", "entity_name", "rule", "budget_before",
                                "budget_after", "spend_moved_per_day", "confidence", "verdict", "applied"]
    assert any(line.startswith("totals: ") for line in lines)


def test_days_replays_the_last_days_only(capsys):
    code, out, _ = run(capsys, "backtest", "--snapshot", str(DEMO_SNAPSHOT_PATH), "--days", "1", "--format", "json")
    assert code == 0 and [day["day"] for day in json.loads(out)["days"]] == ["2026-11-20"]


def test_more_days_than_the_history_holds_is_one_line_naming_the_maximum(capsys):
    assert run(capsys, "backtest", "--snapshot", str(DEMO_SNAPSHOT_PATH), "--days", "3") == (
        2, "", "meta-ads: --days: 3 is more than this snapshot's history allows: at most 2 "
        "(each replayed day needs 7 full days of insights before it)\n",
    )


def test_a_snapshot_without_a_day_to_replay_is_one_line(capsys, tmp_path):
    path = written(tmp_path, json.dumps(make_snapshot([campaign(days=steady_days(5))])))
    assert run(capsys, "backtest", "--snapshot", path) == (
        2, "", f"meta-ads: --snapshot: a backtest needs 7 full days of insights before its first day; {path} has none to replay\n",
    )


@pytest.mark.parametrize("content", [None, "{", b"\xff{}", json.dumps({"as_of": "2026-11-25T10:30:00+00:00"})],
                         ids=["missing", "not JSON", "not UTF-8", "rejected"])
def test_a_file_plan_refuses_is_refused_with_the_same_line(capsys, tmp_path, content):
    path = str(tmp_path / "missing.json") if content is None else written(tmp_path, content)
    code, out, err = run(capsys, "backtest", "--snapshot", path)
    assert (code, out, err.count("\n")) == (2, "", 1)
    assert (code, out, err) == run(capsys, "plan", "--snapshot", path)


@pytest.mark.parametrize("days, message", [
    ("0", "argument --days: '0' must be 1 or more"),
    ("-2", "argument --days: '-2' must be 1 or more"),
    ("all", "argument --days: 'all' is not a whole number"),
])
def test_days_below_one_is_a_usage_error(capsys, days, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", "--snapshot", str(SEED_SNAPSHOT_PATH), "--days", days])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]


def test_backtest_needs_no_dagster_and_the_engine_never_imports_it(tmp_path):
    script = f"""
import sys
from meta_ads_dagster.cli import main
assert main(["backtest", "--snapshot", {str(DEMO_SNAPSHOT_PATH)!r}]) == 0
loaded = sorted(name for name in sys.modules if name == "dagster" or name.startswith("dagster."))
print("LOADED", loaded, file=sys.stderr)
sys.exit(1 if loaded else 0)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    engine = Path(meta_ads_dagster.engine.__file__).parent
    assert not [path.name for path in engine.glob("*.py") if "backtest" in path.read_text()]
