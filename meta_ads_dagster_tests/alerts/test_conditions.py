"""The alert conditions as plain functions: each holds on its condition and not otherwise, and
``advance`` sends an item once until an evaluation finds it clear."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meta_ads_dagster.alerts import conditions
from meta_ads_dagster.alerts.conditions import CheckOutcome, CycleOutcome, Finding, advance

DEFAULTS = {
    "action_id": "a1", "type": "scale_up", "entity_type": "campaign", "entity_id": "100", "entity_name": "Summer",
    "rule": "roas_high", "step": "execute", "status": "done", "current_budget_minor": 100_000, "new_budget_minor": 120_000,
    "minor_per_unit": 100, "currency": "EUR", "reasons": ["ROAS 3.4 > 3.0"], "error_message": None,
}


def rows(*overrides: dict) -> pd.DataFrame:
    """Ledger rows (``Ledger.select``'s columns the conditions read)."""
    return pd.DataFrame([{**DEFAULTS, "action_id": f"a{i}", "entity_id": str(100 + i), **o} for i, o in enumerate(overrides)], columns=list(DEFAULTS))


NONE = rows()


# --- advance: once until cleared ---------------------------------------------------------------

def test_an_item_alerts_once_while_it_holds_and_again_only_after_it_cleared():
    holds = Finding("spend_near_cap", "t", {"spend_near_cap|": "spent"})
    clear = Finding("spend_near_cap", "t")
    state, fired = advance(set(), [holds])
    assert [f.items for f in fired] == [{"spend_near_cap|": "spent"}]
    state, fired = advance(state, [holds])
    assert fired == [] and state == {"spend_near_cap|"}
    state, fired = advance(state, [clear])
    assert fired == [] and state == set()
    assert advance(state, [holds])[1][0].items == {"spend_near_cap|": "spent"}


def test_only_new_items_of_a_finding_are_sent_and_unevaluated_kinds_keep_their_state():
    first = Finding("queued", "q", {"queued|a": "A", "queued|b": "B"})
    state, _ = advance({"cycle_failed|"}, [first])
    assert state == {"cycle_failed|", "queued|a", "queued|b"}  # cycle_failed not evaluated: kept
    state, fired = advance(state, [Finding("queued", "q", {"queued|b": "B", "queued|c": "C"})])
    assert [f.items for f in fired] == [{"queued|c": "C"}]
    assert state == {"cycle_failed|", "queued|b", "queued|c"}  # a left the queue: cleared


@given(st.lists(st.sets(st.sampled_from(["x|1", "x|2", "x|3"])), max_size=8))
def test_each_item_alerts_exactly_at_the_evaluations_where_it_starts_to_hold(history):
    state: set[str] = set()
    for i, holding in enumerate(history):
        state, fired = advance(state, [Finding("x", "t", {k: k for k in holding})])
        previous = history[i - 1] if i else set()
        assert {k for f in fired for k in f.items} == holding - previous
        assert state == holding


# --- each condition ---------------------------------------------------------------------------

def test_cycle_failed_holds_for_a_failed_or_canceled_run_only():
    assert conditions.cycle_failed("success", None).items == {}
    assert list(conditions.cycle_failed("failure", "step execute failed: boom").items.values()) == ["step execute failed: boom"]
    assert conditions.cycle_failed("canceled", None).items


@pytest.mark.parametrize(
    ("statuses", "fires"),
    [
        ([], False),
        (["done"] * 10, False),
        (["done"] * 9 + ["failed"], False),  # exactly 10 %: not above
        (["done"] * 8 + ["failed", "unknown"], True),  # 20 %: a write without an answer counts
        (["failed"], True),
    ],
)
def test_api_error_rate_above_ten_percent_of_the_cycles_writes(statuses, fires):
    actions = rows(*({"status": s, "error_message": "Meta error 100: bad" if s != "done" else None} for s in statuses))
    finding = conditions.api_error_rate(actions)
    assert bool(finding.items) is fires
    if fires:
        assert "Meta error 100" in next(iter(finding.items.values()))


def test_api_error_rate_counts_only_writes_that_were_sent():
    queued = rows(*[{"step": "route", "status": "pending"}] * 5, {"status": "failed"}, *[{"status": "done"}] * 9)
    assert conditions.api_error_rate(queued).items == {}  # 1 of 10 sent


@pytest.mark.parametrize(
    ("change", "currency_per_unit", "fires"),
    [(1000.00, 100, False), (1000.01, 100, True), (-1500, 100, True), (999, 1, False), (1001, 1, True)],
)
def test_a_budget_change_above_1000_in_the_account_currency(change, currency_per_unit, fires):
    current = 5000 * currency_per_unit
    actions = rows({"current_budget_minor": current, "new_budget_minor": round(current + change * currency_per_unit), "minor_per_unit": currency_per_unit,
                    "type": "scale_up" if change > 0 else "scale_down"})
    finding = conditions.large_budget_changes(actions)
    assert bool(finding.items) is fires
    if fires:
        assert "campaign 'Summer' (100)" in next(iter(finding.items.values()))


def test_a_large_budget_change_that_was_only_queued_or_failed_is_not_an_executed_one():
    big = {"current_budget_minor": 100_000, "new_budget_minor": 300_000}
    actions = rows({**big, "step": "route", "status": "pending"}, {**big, "status": "failed"})
    assert conditions.large_budget_changes(actions).items == {}


def test_hard_stops_sent_by_the_cycle_whether_or_not_the_pause_landed():
    actions = rows(
        {"rule": "hard_stop", "type": "pause", "entity_type": "ad", "reasons": ["HARD STOP: ROAS 0.4"]},
        {"rule": "hard_stop", "type": "pause", "status": "failed", "error_message": "Meta error 100"},
        {"rule": "roas_low", "type": "scale_down"},
    )
    items = list(conditions.hard_stops(actions).items.values())
    assert len(items) == 2
    assert "paused (HARD STOP: ROAS 0.4)" in items[0] and "pause failed: Meta error 100" in items[1]
    assert conditions.hard_stops(rows({"rule": "hard_stop", "type": "pause", "step": "route", "status": "pending"})).items == {}


@pytest.mark.parametrize(("spend", "fires"), [(8999.99, False), (9000, False), (9000.01, True), (12000, True)])
def test_spend_above_90_percent_of_the_daily_cap(spend, fires):
    assert bool(conditions.spend_near_cap(spend, 10_000).items) is fires


@pytest.mark.parametrize(
    ("generated", "policy", "safety", "fires"), [(0, 0, 0, False), (10, 5, 0, False), (10, 3, 3, True), (1, 0, 1, True)]
)
def test_more_than_half_of_the_cycles_proposals_blocked(generated, policy, safety, fires):
    assert bool(conditions.mostly_blocked(generated, policy, safety).items) is fires


def test_queued_proposals_are_keyed_by_entity_and_type_not_by_row():
    first = rows({"step": "route", "status": "pending", "action_id": "x1"})
    again = rows({"step": "route", "status": "pending", "action_id": "x2"})  # the next cycle's re-proposal
    assert conditions.queued_for_review(first).items.keys() == conditions.queued_for_review(again).items.keys()
    line = next(iter(conditions.queued_for_review(again).items.values()))
    assert line.startswith("scale_up campaign 'Summer' (100): 1,000.00 → 1,200.00 EUR") and "[x2]" in line


def test_a_failed_check_holds_under_its_own_kind_and_a_passed_one_clears_it():
    failed, passed = (CheckOutcome("executed_actions_within_guard_rails", "optimization_cycle", ok, "ERROR", {"over_tick_limit": 2, "live_actions": 0})
                      for ok in (False, True))
    [finding] = conditions.failed_checks([failed])
    assert finding.kind == "check:executed_actions_within_guard_rails" and "(ERROR)" in finding.title
    assert list(finding.items.values()) == ["over_tick_limit=2"]
    assert conditions.failed_checks([passed])[0].items == {}


def test_a_failed_run_is_judged_only_on_what_it_recorded():
    outcome = CycleOutcome("failure", "boom", stats=None, actions=None, pending=NONE.iloc[:0])
    kinds = {f.kind for f in conditions.cycle_findings(outcome, 10_000)}
    assert kinds == {"cycle_failed", "queued"}
    stats = {"total_spend_today": 1.0, "actions_generated": 1, "actions_policy_blocked": 0, "actions_safety_blocked": 0}
    done = CycleOutcome("success", None, stats=stats, actions=NONE.iloc[:0], pending=NONE.iloc[:0])
    assert {f.kind for f in conditions.cycle_findings(done, 10_000)} == {
        "cycle_failed", "queued", "api_error_rate", "big_budget_change", "hard_stop", "spend_near_cap", "mostly_blocked"
    }
    assert not any(f.items for f in conditions.cycle_findings(done, 10_000))


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("last_success", "watching_since", "fires"),
    [
        (NOW - timedelta(minutes=59), NOW - timedelta(hours=5), False),
        (NOW - timedelta(minutes=61), NOW - timedelta(hours=5), True),
        (None, NOW - timedelta(minutes=30), False),  # the schedule was started half an hour ago
        (None, NOW - timedelta(minutes=61), True),
        (NOW - timedelta(hours=3), NOW - timedelta(minutes=10), False),  # restarted 10 minutes ago
        (NOW - timedelta(hours=3), None, False),  # the schedule is stopped
    ],
)
def test_no_successful_cycle_in_an_hour_only_while_the_schedule_runs(last_success, watching_since, fires):
    assert bool(conditions.no_recent_success(NOW, last_success, watching_since).items) is fires


@pytest.mark.parametrize(
    ("running_for", "last_took", "fires"),
    [
        (None, None, False),
        (timedelta(minutes=9), None, False),
        (timedelta(minutes=11), None, True),
        (None, timedelta(minutes=10, seconds=1), True),
        (timedelta(minutes=2), timedelta(minutes=12), True),  # still the slow one until a cycle finishes in time
        (None, timedelta(minutes=3), False),
    ],
)
def test_a_cycle_longer_than_ten_minutes(running_for, last_took, fires):
    running_since = NOW - running_for if running_for is not None else None
    assert bool(conditions.slow_cycle(NOW, running_since, last_took).items) is fires
