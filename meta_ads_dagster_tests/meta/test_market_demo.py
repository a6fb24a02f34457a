"""Stub mode's living demo (issue 12): the demo account on the simulated market, kept between
processes, one interval further at each cycle, and changed by what the cycles write."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.market import MarketRefused
from meta_ads_dagster.meta.market import MarketDemoMetaAdsClient
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.resources import meta_client
from meta_ads_dagster.settings import load_settings, dagster_home

from ..repo_files import SEED_SNAPSHOT_PATH

# Small: these tests are about the client, not the market's size.
CAMPAIGNS = 4


def demo(folder, account="act_1001") -> MarketDemoMetaAdsClient:
    return MarketDemoMetaAdsClient(account_id=account, state_dir=str(folder), campaigns=CAMPAIGNS)


def budgets(document: dict) -> dict[str, str | None]:
    return {row["id"]: row.get("daily_budget") for row in [*document["campaigns"], *document["adsets"]]}


def test_the_same_account_is_the_same_market_and_another_account_another(tmp_path):
    first, again, other = demo(tmp_path / "a").fetch_snapshot(), demo(tmp_path / "b").fetch_snapshot(), demo(tmp_path / "c", "act_1002").fetch_snapshot()
    assert first == again
    assert first["account"]["id"] == "act_1001" and other["account"]["id"] == "act_1002"
    assert budgets(first) != budgets(other)
    parse_snapshot(first)


def test_each_sync_after_the_first_moves_the_account_one_interval_for_every_client(tmp_path):
    cycle, reviewer = demo(tmp_path), demo(tmp_path)  # two processes sharing the state file
    cycle.sync_insights()
    start = cycle.fetch_snapshot()
    cycle.sync_insights()
    later = reviewer.fetch_snapshot()
    assert pd.Timestamp(later["as_of"]) - pd.Timestamp(start["as_of"]) == pd.Timedelta(minutes=30)
    spent = lambda doc: sum(float(r["spend"]) for r in doc["insights"])  # noqa: E731
    assert spent(later) > spent(start)  # the ads delivered in between


def test_a_write_lands_in_the_market_that_later_reads_see(tmp_path):
    cycle = demo(tmp_path)
    document = cycle.fetch_snapshot()
    holder = next(row for row in document["adsets"] if row.get("daily_budget"))
    cycle.update_budget("adset", holder["id"], int(holder["daily_budget"]) + 500)
    cycle.sync_insights()
    cycle.sync_insights()
    assert budgets(demo(tmp_path).fetch_snapshot())[holder["id"]] == str(int(holder["daily_budget"]) + 500)
    assert [(w["method"], w["entity_id"]) for w in demo(tmp_path).writes] == [("update_budget", holder["id"])]


def test_a_refused_write_fails_and_changes_nothing(tmp_path):
    cycle = demo(tmp_path)
    cycle.fetch_snapshot()
    state = (tmp_path / "market_act_1001.json").read_bytes()
    with pytest.raises(MarketRefused):
        cycle.pause("campaign", "999")
    assert (tmp_path / "market_act_1001.json").read_bytes() == state
    assert cycle.writes == []


@pytest.mark.parametrize("demo_setting, snapshot, expected", [
    (None, None, MarketDemoMetaAdsClient),  # the default for people
    ("static", None, StubMetaAdsClient),
    ("market", SEED_SNAPSHOT_PATH, StubMetaAdsClient),  # a snapshot file is served as before
])
def test_stub_mode_chooses_the_demo_from_the_settings(monkeypatch, demo_setting, snapshot, expected):
    monkeypatch.delenv("META_STUB_DEMO")
    if demo_setting:
        monkeypatch.setenv("META_STUB_DEMO", demo_setting)
    if snapshot:
        monkeypatch.setenv("META_STUB_SNAPSHOT", str(snapshot))
    assert type(meta_client(load_settings())) is expected


def test_cycles_move_the_living_demo_and_an_approved_cut_lands_in_it(capsys, monkeypatch):
    monkeypatch.setenv("META_STUB_DEMO", "market")
    assert main(["cycle"]) == 0
    capsys.readouterr()
    assert main(["pending", "--format", "json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    cut = next(row for row in pending if row["type"] == "scale_down")
    assert main(["approve", cut["id"], "--by", "alice"]) == 0
    assert main(["cycle"]) == 0
    account = MarketDemoMetaAdsClient(account_id="act_1001", state_dir=str(dagster_home() / "stub_state"))
    document = account.fetch_snapshot()
    assert pd.Timestamp(document["as_of"]) == pd.Timestamp("2026-11-01T23:30:00+00:00")  # one interval after the start
    assert budgets(document)[cut["entity_id"]] == str(round(float(cut["new_budget_usd"]) * 100))
    # The second cycle wrote the approved cut (the first may have paused a hard stop by itself).
    assert [w["entity_id"] for w in account.writes if w["method"] == "update_budget"] == [cut["entity_id"]]


def test_a_demo_saved_by_an_older_market_model_starts_over(tmp_path, caplog):
    cycle = demo(tmp_path)
    fresh = cycle.fetch_snapshot()
    path = tmp_path / "market_act_1001.json"
    state = json.loads(path.read_text())
    state["market"]["version"] = 1
    path.write_text(json.dumps(state))
    assert demo(tmp_path).fetch_snapshot() == fresh
    assert "holds a market saved by an older model (state version 1): starting the demo account over" in caplog.text


def test_the_demo_moves_by_the_cycle_interval_and_starts_over_when_it_changes(tmp_path, caplog):
    every_minute = MarketDemoMetaAdsClient(account_id="act_1001", state_dir=str(tmp_path), campaigns=CAMPAIGNS, clock_step_minutes=1)
    every_minute.sync_insights()
    start = pd.Timestamp(every_minute.fetch_snapshot()["as_of"])
    every_minute.sync_insights()
    assert pd.Timestamp(every_minute.fetch_snapshot()["as_of"]) - start == pd.Timedelta(minutes=1)
    assert pd.Timestamp(demo(tmp_path).fetch_snapshot()["as_of"]) == start  # 30-minute cycles: a new account
    assert "holds a market of 1-minute intervals, the cycle's are 30: starting the demo account over" in caplog.text


def test_a_read_writes_nothing_back(tmp_path):
    cycle = demo(tmp_path)
    cycle.fetch_snapshot()  # a new account is stored at its first read
    path = tmp_path / "market_act_1001.json"
    stamp = path.stat().st_mtime_ns
    cycle.fetch_snapshot()
    assert path.stat().st_mtime_ns == stamp


def test_the_market_serves_each_ad_set_s_learning_stage_and_a_significant_edit_restarts_it(tmp_path):
    """What the engine reads from the market: every ad set's learning stage; a budget edit above
    the market's significant-edit threshold puts the holder's ad sets back into LEARNING, dated now."""
    from meta_ads_dagster.engine.metrics import entity_table

    client = demo(tmp_path)
    before = parse_snapshot(client.fetch_snapshot())
    assert set(before.adsets["learning_status"]) <= {"LEARNING", "SUCCESS", "FAIL"} and before.adsets["learning_status"].notna().all()
    table = entity_table(before)
    holder = table[table["is_budget_holder"] & table["effective_active"] & table["learning_adsets"].map(len).eq(0)].iloc[0]
    client.update_budget(holder["entity_type"], holder["entity_id"], int(holder["daily_budget"] * 1.5))

    after = parse_snapshot(client.fetch_snapshot())
    reached = after.adsets[after.adsets["campaign_id"].eq(holder["campaign_id"]) if holder["entity_type"] == "campaign"
                           else after.adsets["id"].eq(holder["entity_id"])]
    assert reached["learning_status"].eq("LEARNING").all() and reached["learning_conversions"].eq(0).all()
    assert reached["last_sig_edit_at"].eq(after.as_of).all()
    table = entity_table(after).set_index(["entity_type", "entity_id"])
    assert set(table.loc[(holder["entity_type"], holder["entity_id"]), "learning_adsets"]) == set(reached["id"][reached["status"].eq("ACTIVE")])
