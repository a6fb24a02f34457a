"""meta/execution.py: executed actions go through the client; a failed write fails that action only."""

from __future__ import annotations

import pandas as pd
import pytest

from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.meta.execution import execute_actions
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings

LOG_KEYS = {"step", "action", "input_snapshot", "output_snapshot", "success", "error_message", "entity_type", "entity_id"}


@pytest.fixture(scope="module")
def auto_actions() -> pd.DataFrame:
    actions, _ = plan_cycle(parse_snapshot(demo_snapshot()), load_settings(meta_auto_mode="auto"))
    return actions


def _by_entity(actions: pd.DataFrame) -> pd.DataFrame:
    return actions.set_index("entity_id")


def test_plan_has_the_expected_executable_actions(auto_actions):
    # The demo account in auto mode: hard stop, A/B winner and three small budget changes execute.
    executed = auto_actions[auto_actions["verdict"] == "executed"]
    assert sorted(zip(executed["type"], executed["entity_id"])) == [
        ("pause", "1001016"), ("publish_winner", "1001020"),
        ("scale_down", "1001010"), ("scale_up", "1001001"), ("scale_up", "1001036"),
    ]


def test_a_failing_write_fails_only_that_action(tmp_path, auto_actions):
    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001", fail_writes_for=["1001010"])
    calls: list[tuple[str, str | None]] = []
    result, records = execute_actions(auto_actions, client, lambda outcome: calls.append((outcome.action_id, outcome.error)))

    verdicts = _by_entity(result)["verdict"]
    assert verdicts["1001010"] == "failed"
    assert verdicts[["1001016", "1001020", "1001001", "1001036"]].eq("executed").all()
    # Rows that were not executable keep their verdict.
    before = _by_entity(auto_actions)["verdict"]
    for entity in ("1001034", "1001024"):
        assert verdicts[entity] == before[entity]
    assert "write failed: StubWriteError" in _by_entity(result).loc["1001010", "reasons"][-1]
    assert auto_actions.set_index("entity_id").loc["1001010", "verdict"] == "executed"  # input not mutated

    # mark_outcome: once per executed action, with the error only for the failed one.
    executed_ids = list(auto_actions.loc[auto_actions["verdict"] == "executed", "id"])
    assert [action_id for action_id, _ in calls] == executed_ids
    errors = dict(calls)
    failed_id = _by_entity(auto_actions).loc["1001010", "id"]
    assert errors[failed_id].startswith("StubWriteError: ") and "1001010" in errors[failed_id]
    assert all(error is None for action_id, error in calls if action_id != failed_id)

    # One log record per action, executed or not, with the seed's fields.
    assert len(records) == len(auto_actions)
    assert all(LOG_KEYS <= set(record) for record in records)
    record = {r["entity_id"]: r for r in records}
    assert record["1001010"]["success"] is False and record["1001010"]["step"] == "execute"
    assert record["1001010"]["error_message"] == errors[failed_id] and record["1001010"]["output_snapshot"] is None
    assert record["1001001"]["success"] is True and record["1001001"]["output_snapshot"]["daily_budget"] == "55000"
    assert record["1001001"]["input_snapshot"] == {
        "rule": "roas_high", "current_budget_minor": 50000, "new_budget_minor": 55000,
        "confidence": round(float(_by_entity(auto_actions).loc["1001001", "confidence"]), 4),
    }
    assert record["1001034"]["step"] == "route" and record["1001034"]["success"] is None

    # The client saw exactly the successful writes.
    writes = [(w["method"], w.get("entity_id") or w.get("winner_ad_id")) for w in client.writes]
    assert sorted(writes) == sorted([
        ("pause", "1001016"), ("publish_winner_ad", "1001020"),
        ("update_budget", "1001001"), ("update_budget", "1001036"),
    ])
    budgets = {w["entity_id"]: w["daily_budget"] for w in client.writes if w["method"] == "update_budget"}
    assert budgets == {"1001001": "55000", "1001036": "66000"}
    publish = next(w for w in client.writes if w["method"] == "publish_winner_ad")
    assert publish["loser_ad_ids"] == ["1001022"]


def test_nothing_is_written_in_suggest_mode_but_the_hard_stop(tmp_path):
    actions, _ = plan_cycle(parse_snapshot(demo_snapshot()), load_settings())
    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001")
    calls = []
    result, records = execute_actions(actions, client, lambda outcome: calls.append((outcome.action_id, outcome.error)))
    assert [(w["method"], w["entity_id"]) for w in client.writes] == [("pause", "1001016")]
    assert len(calls) == 1 and calls[0][1] is None
    assert result["verdict"].tolist() == actions["verdict"].tolist()


def test_an_action_type_that_cannot_execute_fails_cleanly(tmp_path, auto_actions):
    weird = auto_actions[auto_actions["entity_id"] == "1001001"].copy()
    weird["type"] = "reallocate"
    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001")
    calls = []
    result, records = execute_actions(weird, client, lambda outcome: calls.append(outcome.error))
    assert result["verdict"].tolist() == ["failed"]
    assert calls and calls[0].startswith("ValueError:") and "reallocate" in calls[0]
    assert client.writes == []


def test_failed_writes_are_listed_in_the_stats_errors(tmp_path, auto_actions):
    from meta_ads_dagster.engine.cycle import summarize

    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001", fail_writes_for=["1001010"])
    result, _ = execute_actions(auto_actions, client, lambda outcome: None)
    stats = summarize(result, 7, "2026-11-20T10:00:00+00:00", "2026-11-20T10:00:05+00:00")
    assert stats["actions_failed"] == 1 and stats["success"] is False
    (error,) = stats["errors"]
    assert error.startswith("scale_down adset 1001010: write failed: StubWriteError")


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
def test_an_approved_variant_is_created_with_the_configured_status(tmp_path, auto_actions, status):
    """CREATIVE_VARIANT_STATUS reaches the client: the queued variant, once a person let it
    through, becomes an ad of that status (ACTIVE: it runs once Meta's review approves it)."""
    approved = auto_actions[auto_actions["type"].eq("create_variant")].assign(verdict="executed")
    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001")
    result, records = execute_actions(approved, client, lambda outcome: None, status)
    assert result["verdict"].tolist() == ["executed"]
    (record,) = records
    assert record["output_snapshot"]["status"] == status
    new_ad = next(ad for ad in client.fetch_snapshot()["ads"] if ad["id"] == record["output_snapshot"]["new_ad_id"])
    assert new_ad["status"] == status and new_ad["source_ad_id"] == "1001034"
