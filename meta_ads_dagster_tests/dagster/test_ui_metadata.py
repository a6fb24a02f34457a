"""The UI's tables and plotted numbers (meta_ads_dagster/ui_metadata.py), built from frames."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from dagster import TableMetadataValue

from meta_ads_dagster.engine.cycle import analyze, plan_cycle
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.ui_metadata import (
    ACTION_SCHEMA,
    PENDING_SCHEMA,
    REASON_SEPARATOR,
    ab_test_table,
    action_table,
    campaign_ranking,
    change_text,
    cycle_numbers,
    entity_names,
    pending_table,
)

MISSING_TEXTS = {"nan", "NaN", "None", "null", "<NA>", "NaT"}


@pytest.fixture(scope="module")
def demo():
    snapshot = parse_snapshot(demo_snapshot())
    actions, _ = plan_cycle(snapshot, load_settings())
    return snapshot, actions, analyze(snapshot)


def rows(table: TableMetadataValue) -> list[dict]:
    return [record.data for record in table.records]


def assert_no_missing_markers(table: TableMetadataValue) -> None:
    """Every record has every schema column, and no cell spells a missing value."""
    names = [column.name for column in table.schema.columns]
    for row in rows(table):
        assert list(row) == names
        assert not MISSING_TEXTS & {str(value) for value in row.values() if value is not None}, row


def test_the_action_table_names_every_level_and_says_the_change(demo):
    snapshot, actions, _ = demo
    table = action_table(actions, snapshot)
    assert table.schema == ACTION_SCHEMA
    assert_no_missing_markers(table)
    by_id = {row["id"]: row for row in rows(table)}
    assert list(by_id) == list(actions["id"])  # decision order, one row per action
    by_entity = {(a.type, a.entity_id): by_id[a.id] for a in actions.itertuples()}

    paused_ad = by_entity[("pause", "1001016")]
    assert (paused_ad["campaign"], paused_ad["ad_set"], paused_ad["ad"]) == ("Retargeting Q4", "retargeting 30d", "Variant B - Low Performer")
    assert (paused_ad["verdict"], paused_ad["change"]) == ("executed", "ACTIVE → PAUSED")

    adset_cut = by_entity[("scale_down", "1001010")]
    assert (adset_cut["campaign"], adset_cut["ad_set"], adset_cut["ad"]) == ("Retargeting Q4", "cart abandoners", "")
    assert adset_cut["change"] == "USD 100.00 → 80.00 (−20%)"

    campaign_raise = by_entity[("scale_up", "1001001")]
    assert (campaign_raise["campaign"], campaign_raise["ad_set"], campaign_raise["ad"]) == ("Black Friday - ES", "", "")
    assert campaign_raise["change"] == "USD 500.00 → 600.00 (+20%)"
    assert by_entity[("publish_winner", "1001020")]["change"] == "keeps this ad; pauses ad 1001022"

    # Every reason in full, in order; confidence a number, not text.
    for action in actions.itertuples():
        assert by_id[action.id]["reasons"] == REASON_SEPARATOR.join(action.reasons)
        assert by_id[action.id]["confidence"] == pytest.approx(action.confidence, abs=5e-4)


def test_an_empty_cycle_is_an_empty_table(demo):
    snapshot, actions, _ = demo
    table = action_table(actions.iloc[0:0], snapshot)
    assert table.records == [] and table.schema == ACTION_SCHEMA


@pytest.mark.parametrize("action_type, before, after, per_unit, currency, losers, expected", [
    ("scale_up", 50000, 60000, 100, "USD", None, "USD 500.00 → 600.00 (+20%)"),
    ("scale_down", 123456, 98765, 100, "EUR", None, "EUR 1,234.56 → 987.65 (−20%)"),
    ("scale_down", 500000, 400000, 1, "JPY", None, "JPY 500,000 → 400,000 (−20%)"),  # zero-decimal currency
    ("pause", np.nan, np.nan, 100, "USD", None, "ACTIVE → PAUSED"),
    ("pause", None, pd.NA, 100, "USD", None, "ACTIVE → PAUSED"),
    ("publish_winner", None, None, 100, "USD", ("11", "12"), "keeps this ad; pauses ad 11, 12"),
    ("publish_winner", None, None, 100, "USD", None, "keeps this ad; pauses the other arms"),
    ("create_variant", None, None, 100, "USD", None, "adds a PAUSED copy of the ad to vary"),
    ("resume", None, None, 100, "USD", None, ""),
])
def test_change_text(action_type, before, after, per_unit, currency, losers, expected):
    assert change_text(action_type, before, after, per_unit, currency, losers) == expected


def campaign_metrics(roas: list[float], spend: list[float] | None = None) -> pd.DataFrame:
    count = len(roas)
    spend = spend or [100.0] * count
    return pd.DataFrame({
        "entity_type": ["campaign"] * count + ["adset"],
        "entity_id": [f"c{i}" for i in range(count)] + ["s0"],
        "name": [f"Campaign {i}" for i in range(count)] + ["an ad set"],
        "status": ["ACTIVE"] * (count + 1),
        "roas_7d": [*roas, 99.0],
        "confidence": [0.9] * (count + 1),
        "spend_7d": [*spend, 100.0],
        "revenue_7d": [r * s for r, s in zip(roas, spend)] + [9900.0],
        "spend_today": [10.0] * (count + 1),
    })


def test_campaigns_by_roas_lists_the_best_and_the_worst_with_their_ranks():
    metrics = campaign_metrics([float(i) for i in range(12)])  # c11 best ... c0 worst
    table = campaign_ranking(metrics, "EUR", each_end=5)
    assert_no_missing_markers(table)
    listed = rows(table)
    assert [row["rank"] for row in listed] == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
    assert [row["id"] for row in listed] == ["c11", "c10", "c9", "c8", "c7", "c4", "c3", "c2", "c1", "c0"]
    assert listed[0] == {
        "rank": 1, "campaign": "Campaign 11", "id": "c11", "status": "ACTIVE", "roas_7d": 11.0, "confidence": 0.9,
        "spend_7d": 100.0, "revenue_7d": 1100.0, "spend_today": 10.0,
    }
    assert "EUR" in {column.name: column for column in table.schema.columns}["spend_7d"].description


def test_campaigns_by_roas_lists_every_campaign_that_spent_when_few():
    metrics = campaign_metrics([2.0, np.nan, 3.0], spend=[100.0, 0.0, 50.0])  # c1 spent nothing: no ROAS to rank
    assert [(row["rank"], row["id"]) for row in rows(campaign_ranking(metrics, "USD"))] == [(1, "c2"), (2, "c0")]


def test_ab_test_arms_show_each_probability_as_a_percentage(demo):
    snapshot, _, frames = demo
    tests = frames["ab_tests"]
    table = ab_test_table(tests, entity_names(snapshot)["ad"])
    assert_no_missing_markers(table)
    arms = rows(table)
    test = tests.iloc[0]
    assert [row["ad"] for row in arms] == ["Spring A (1001020)", "Spring B (1001022)"]
    assert [row["best"] for row in arms] == [True, False] and {row["status"] for row in arms} == {"winner"}
    shares = [float(row["p_best"].removesuffix("%")) for row in arms]
    assert shares == [round(100 * p, 1) for p in test["arm_prob_best"]] and sum(shares) == pytest.approx(100, abs=0.2)
    assert all(row["p_best"].endswith("%") and "(" not in row["p_best"] for row in arms)  # no Python tuples


def test_pending_table_lists_what_waits():
    queued = pd.DataFrame({
        "action_id": ["a1", "a2"],
        "status": ["pending", "approved"],
        "type": ["scale_down", "pause"],
        "entity_type": ["adset", "ad"],
        "entity_id": ["11", "22"],
        "entity_name": ["cart abandoners", None],
        "current_budget_minor": [10000, None],
        "new_budget_minor": [8000, None],
        "minor_per_unit": [100, 100],
        "currency": ["EUR", "EUR"],
        "loser_ad_ids": [None, None],
        "confidence": [0.8123, np.nan],
        "reasons": [["7-day ROAS 1.26 < 1.5", "suggest mode: queued for human approval"], ["hard stop"]],
        "expires_at": [datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc), None],
    })
    table = pending_table(queued)
    assert table.schema == PENDING_SCHEMA
    assert_no_missing_markers(table)
    assert rows(table) == [
        {"id": "a1", "status": "pending", "type": "scale_down", "entity": "ad set 11 'cart abandoners'", "change": "EUR 100.00 → 80.00 (−20%)",
         "confidence": 0.812, "reasons": "7-day ROAS 1.26 < 1.5 | suggest mode: queued for human approval", "expires": "2026-12-01 09:30 UTC"},
        {"id": "a2", "status": "approved", "type": "pause", "entity": "ad 22", "change": "ACTIVE → PAUSED",
         "confidence": None, "reasons": "hard stop", "expires": ""},
    ]


@pytest.mark.parametrize("spend, cap, expected", [(250.0, 1000.0, 25.0), (0.0, 500.0, 0.0), (1234.5, 1000.0, 123.45)])
def test_spend_vs_cap_and_cycle_duration(spend, cap, expected):
    numbers = cycle_numbers(spend, cap, "2026-11-30T10:00:00+00:00", "2026-11-30T10:00:07.250000+00:00")
    assert numbers == {"spend_vs_cap_pct": expected, "cycle_duration_seconds": 7.25}


MISSING = st.sampled_from([None, np.nan, pd.NA])
BUDGET = st.one_of(MISSING, st.integers(min_value=1, max_value=10**12))


@given(
    action_type=st.sampled_from(["scale_up", "scale_down", "pause", "publish_winner", "create_variant"]),
    before=BUDGET, after=BUDGET, per_unit=st.sampled_from([1, 100]), currency=st.sampled_from(["USD", "JPY", ""]),
    losers=st.one_of(st.none(), st.lists(st.text("0123456789", min_size=1, max_size=6), max_size=3).map(tuple)),
)
def test_a_change_never_spells_a_missing_value(action_type, before, after, per_unit, currency, losers):
    text = change_text(action_type, before, after, per_unit, currency, losers)
    assert not any(marker in text for marker in MISSING_TEXTS), text
    has_budgets = not pd.isna(before) and not pd.isna(after)
    assert ("→" in text) == (has_budgets or action_type == "pause")
