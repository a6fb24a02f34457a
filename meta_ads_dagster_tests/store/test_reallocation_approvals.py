"""A reallocation in the queue is one decision: its legs are recorded with their unit, approved or
rejected together, and re-validated together (all or none) when a cycle carries them out. An
approved resume is carried out only while the entity is still paused."""

from __future__ import annotations

import pandas as pd
import pytest

from meta_ads_dagster.cycle.steps import account_history
from meta_ads_dagster.engine import cycle as engine
from meta_ads_dagster.engine.actions import empty_actions
from meta_ads_dagster.engine.approvals import approved_candidates, revalidate
from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.reallocate import _as_actions, propose_resumes
from meta_ads_dagster.engine.routing import route_actions
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store import approvals
from meta_ads_dagster.store.ledger import Ledger

from ..engine.factories import adset_id, make_snapshot
from ..engine.test_reallocate import legs, pauses, paused_adset_document, spread_campaign

ACCOUNT = "act_1001"


@pytest.fixture
def snapshot():
    return parse_snapshot(make_snapshot([spread_campaign()]))


@pytest.fixture
def ledger(database_url, snapshot):
    store = Ledger(database_url)
    store.record_cycle(plan_cycle(snapshot, load_settings(reallocate_proposals=True))[0], "run-1", ACCOUNT, snapshot.as_of, approval_ttl_hours=24)
    yield store
    store.dispose()


def revalidated(ledger, snapshot, settings) -> pd.DataFrame:
    frames = engine.analyze(snapshot)
    approved = approvals.queue(ledger, "approved", ACCOUNT)
    history = account_history(ledger, snapshot, settings)
    candidates = approved_candidates(approved, frames["roas_metrics"], snapshot.minor_per_unit, snapshot.as_of, history)
    return revalidate(candidates, empty_actions(), engine.account_spend(snapshot, frames["roas_metrics"]), settings)


def test_the_ledger_shows_one_decision_with_its_legs(ledger):
    pending = legs(approvals.queue(ledger, "pending", ACCOUNT))
    assert len(pending) == 2 and pending["unit_id"].nunique() == 1 and pending["unit_id"].notna().all()
    assert sorted(pending["type"]) == ["scale_down", "scale_up"]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_deciding_one_leg_decides_the_whole_reallocation(ledger, decision):
    first = legs(approvals.queue(ledger, "pending", ACCOUNT))["action_id"].iloc[0]
    decided = approvals.decide(ledger, [first], decision, "alice", "not now" if decision == "reject" else None, ttl_hours=24)
    assert len(legs(decided)) == 2
    assert set(legs(decided)["status"]) == {"approved" if decision == "approve" else "rejected"}
    assert legs(approvals.queue(ledger, "pending", ACCOUNT)).empty


def test_an_approved_reallocation_is_revalidated_all_or_none(ledger, snapshot):
    first = legs(approvals.queue(ledger, "pending", ACCOUNT))["action_id"].iloc[0]
    approvals.decide(ledger, [first], "approve", "alice", None, ttl_hours=24)

    roomy = revalidated(ledger, snapshot, load_settings()).set_index("entity_id")
    assert roomy["verdict"].tolist() == ["executed", "executed"]
    assert (roomy["new_budget_minor"] - roomy["current_budget_minor"]).sum() == 0

    # No room left under the account cap: the raise leg is blocked, so the cut leg is too.
    tight = revalidated(ledger, snapshot, load_settings(max_daily_spend_usd=300)).set_index("entity_id")
    assert tight["verdict"].tolist() == ["safety_blocked", "safety_blocked"]
    assert any("all or none" in reason for reason in tight.loc[adset_id(0, 0), "reasons"])


@pytest.mark.parametrize(("status", "verdict"), [("PAUSED", "executed"), ("ACTIVE", "safety_blocked")], ids=["still-paused", "resumed-meanwhile"])
def test_an_approved_resume_is_carried_out_only_while_the_entity_is_paused(database_url, status, verdict):
    document = paused_adset_document(roas=1.8)
    snapshot = parse_snapshot(document)
    frames = engine.analyze(snapshot)
    settings = load_settings()
    proposed = _as_actions(propose_resumes(snapshot, frames["roas_metrics"], settings, pauses(adset_id(0, 0))), snapshot)
    routed = route_actions(engine.apply_guard_rails(proposed, engine.account_spend(snapshot, frames["roas_metrics"]), settings), settings)
    assert routed["verdict"].tolist() == ["queued"]
    store = Ledger(database_url)
    try:
        store.record_cycle(routed, "run-1", ACCOUNT, snapshot.as_of, approval_ttl_hours=24)
        approvals.decide(store, routed["id"].tolist(), "approve", "alice", None, ttl_hours=24)
        document["adsets"][0]["status"] = status
        now = parse_snapshot(document)
        checked = revalidated(store, now, settings)
        assert checked["verdict"].tolist() == [verdict], checked["reasons"].tolist()
    finally:
        store.dispose()


def test_meta_ads_pending_shows_a_reallocation_as_one_unit_with_its_legs_side_by_side(ledger):
    """The two legs carry their unit in `meta-ads pending` (a column of the table and a key of
    its JSON) and are listed next to each other, even beside an action with as much at stake
    whose id sorts between theirs."""
    from meta_ads_dagster.cli.review import PENDING_COLUMNS, pending_rows

    unit_legs = legs(approvals.queue(ledger, "pending", ACCOUNT)).sort_values("action_id")
    between = unit_legs.iloc[[0]].assign(action_id=unit_legs["action_id"].iloc[0] + "0", unit_id=None)
    rows = pending_rows(pd.concat([unit_legs, between], ignore_index=True))
    unit = unit_legs["unit_id"].iloc[0]
    assert [row["unit"] for row in rows].count(unit) == 2 and "unit" in PENDING_COLUMNS
    assert rows[2]["id"] == between["action_id"].iloc[0] and rows[2]["unit"] is None
    assert rows[0]["at_stake"] == rows[1]["at_stake"] == rows[2]["at_stake"] > 0
