"""The engine on real public ad data (KAG conversion data, meta_ads_dagster_tests/data/).

Assumption stated once: an approved conversion is worth $60 (the data has no revenue column).
"""

import pandas as pd
import pytest

from meta_ads_dagster.engine.cycle import plan_document
from meta_ads_dagster.engine.metrics import entity_table, roas_metrics
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.importing import import_csv
from meta_ads_dagster.settings import load_settings

from .repo_files import KAG_CSV

VALUE_PER_PURCHASE = 60.0


@pytest.fixture(scope="module")
def snapshot():
    return parse_snapshot(import_csv(KAG_CSV.read_bytes(), value_per_conversion=VALUE_PER_PURCHASE).document)


def test_campaign_roas_matches_an_independent_computation(snapshot):
    raw = pd.read_csv(KAG_CSV)
    raw["date"] = pd.to_datetime(raw["Date"], format="%d-%m-%Y")
    last_full_day = raw["date"].max()
    week = raw[raw["date"] > last_full_day - pd.Timedelta(days=7)]
    expected = (week.groupby("xyz_campaign_id")["Approved_Conversion"].sum() * VALUE_PER_PURCHASE) / week.groupby("xyz_campaign_id")["Spent"].sum()

    metrics = roas_metrics(snapshot, entity_table(snapshot))
    campaigns = metrics[metrics["entity_type"] == "campaign"].set_index("entity_id")["roas_7d"]
    for campaign_id, roas in expected.items():
        assert campaigns[str(campaign_id)] == pytest.approx(roas, rel=1e-6)


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_plan_on_real_data_keeps_every_guard_rail(snapshot, mode):
    settings = load_settings(meta_auto_mode=mode)
    plan = plan_document(snapshot, settings)
    stats, actions = plan["stats"], plan["actions"]

    assert stats["campaigns_evaluated"] == 3
    verdict_total = sum(stats[k] for k in ("actions_policy_blocked", "actions_safety_blocked", "actions_queued", "actions_executed", "actions_failed"))
    assert verdict_total == stats["actions_generated"] == len(actions) > 0
    for action in actions:
        if action["type"] in ("scale_up", "scale_down") and action["verdict"] in ("queued", "executed"):
            change = abs(action["new_budget_usd"] - action["current_budget_usd"]) / action["current_budget_usd"]
            assert change <= settings.budget_change_limit + 1e-6
            assert action["new_budget_usd"] <= settings.max_campaign_budget_usd
        if action["verdict"] == "executed" and mode == "suggest":
            assert action["rule"] == "hard_stop"
    assert plan_document(snapshot, settings) == plan  # deterministic, ids included
