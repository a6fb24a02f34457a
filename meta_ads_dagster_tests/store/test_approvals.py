"""store/approvals.py on SQLite and PostgreSQL: approve, reject, expire, re-validate, close, purge.

The end-to-end path (a later Dagster cycle carrying approvals out or refusing them) is in
``dagster/test_review_and_exactly_once.py``; here the queue itself and the guard rails an
approval meets again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from meta_ads_dagster.cycle.steps import account_history
from meta_ads_dagster.engine import cycle as engine
from meta_ads_dagster.engine.approvals import approved_candidates, revalidate
from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store import approvals
from meta_ads_dagster.store.ledger import Ledger, actions_table

ACCOUNT = "act_1001"
c = actions_table.c


@pytest.fixture(scope="module")
def snapshot():
    return parse_snapshot(demo_snapshot(ACCOUNT))


@pytest.fixture(scope="module")
def planned(snapshot) -> pd.DataFrame:
    """The demo's suggest-mode cycle: the hard stop executes, five actions are queued."""
    return plan_cycle(snapshot, load_settings())[0]


@pytest.fixture
def ledger(database_url, planned, snapshot):
    store = Ledger(database_url)
    store.record_cycle(planned, "run-1", ACCOUNT, snapshot.as_of, approval_ttl_hours=24)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def ids(planned) -> dict[str, str]:
    """entity id → action id of the demo's actions."""
    return dict(zip(planned["entity_id"], planned["id"]))


def _utc(value) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _status(ledger: Ledger, run: str = "run-1") -> dict[str, str]:
    rows = ledger.cycle_actions(run)
    return dict(zip(rows["entity_id"], rows["status"]))


def _set(ledger: Ledger, action_id: str, **values) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(actions_table.update().where(c.action_id == action_id).values(**values))


QUEUED = {"1001020", "1001010", "1001034", "1001036", "1001001"}


def test_queued_rows_get_a_deadline_ttl_after_recording(ledger):
    rows = ledger.cycle_actions("run-1").set_index("entity_id")
    assert set(rows.index[rows["status"] == "pending"]) == QUEUED
    for entity_id, row in rows.iterrows():
        if entity_id in QUEUED:
            assert _utc(row["expires_at"]) - _utc(row["recorded_at"]) == timedelta(hours=24)
        else:  # executing / blocked rows have no deadline
            assert pd.isna(row["expires_at"]), entity_id


def test_approve_records_the_reviewer_and_gives_the_approval_its_own_deadline(ledger, ids):
    before = approvals.now_utc()
    decided = approvals.decide(ledger, [ids["1001001"], ids["1001036"], ids["1001001"]], "approve", "  alice ", None, ttl_hours=6)
    assert sorted(decided["entity_id"]) == ["1001001", "1001036"]  # a repeated id counts once
    assert set(decided["status"]) == {"approved"} and set(decided["decided_by"]) == {"alice"}
    assert set(decided["step"]) == {"review"} and decided["decision_reason"].isna().all()
    for row in decided.itertuples():
        assert before <= _utc(row.decided_at) <= approvals.now_utc()
        assert _utc(row.expires_at) - _utc(row.decided_at) == timedelta(hours=6)
        assert row.actor == "autonomous"  # who proposed it; the reviewer is decided_by
    assert {k: v for k, v in _status(ledger).items() if k in QUEUED} == {
        "1001001": "approved", "1001036": "approved", "1001020": "pending", "1001010": "pending", "1001034": "pending",
    }
    assert list(approvals.queue(ledger, "approved", ACCOUNT)["entity_id"]) == ["1001036", "1001001"]
    assert set(approvals.queue(ledger, "pending")["entity_id"]) == {"1001020", "1001010", "1001034"}
    assert approvals.queue(ledger, "approved", "act_0000").empty


def test_reject_needs_a_reason_and_keeps_it(ledger, ids):
    with pytest.raises(approvals.ReviewError, match="reason"):
        approvals.decide(ledger, [ids["1001034"]], "reject", "bob", "   ", ttl_hours=24)
    assert _status(ledger)["1001034"] == "pending"

    decided = approvals.decide(ledger, [ids["1001034"]], "reject", "bob", " creative not ready ", ttl_hours=24)
    assert decided[["status", "decided_by", "decision_reason"]].values.tolist() == [["rejected", "bob", "creative not ready"]]
    # Decided is final: neither approving nor rejecting it again is possible.
    with pytest.raises(approvals.ReviewError, match=rf"{ids['1001034']} \(rejected\)"):
        approvals.decide(ledger, [ids["1001034"]], "approve", "carol", None, ttl_hours=24)
    assert _status(ledger)["1001034"] == "rejected"
    assert approvals.queue(ledger, "rejected")["decided_by"].tolist() == ["bob"]


@pytest.mark.parametrize(
    "action_ids, decision, reviewer, message",
    [
        (["1001001", "no-such-id"], "approve", "alice", r"no-such-id \(no such queued action\)"),
        (["1001001", "1001024"], "approve", "alice", r"\(no such queued action\)"),  # policy-blocked: never queued
        (["1001001", "1001016"], "approve", "alice", r"\(no such queued action\)"),  # executed hard stop
        (["1001001"], "approve", "  ", "reviewer"),
        (["1001001"], "maybe", "alice", "decision"),
        ([], "approve", "alice", "at least one"),
    ],
)
def test_a_bad_review_changes_nothing(ledger, ids, action_ids, decision, reviewer, message):
    before = ledger.cycle_actions("run-1")
    wanted = [ids.get(i, i) for i in action_ids]
    with pytest.raises(approvals.ReviewError, match=message):
        approvals.decide(ledger, wanted, decision, reviewer, "why not", ttl_hours=24)
    after = ledger.cycle_actions("run-1")
    pd.testing.assert_frame_equal(before, after)


def test_pending_and_approved_rows_expire_after_their_deadline(ledger, ids):
    approvals.decide(ledger, [ids["1001001"]], "approve", "alice", None, ttl_hours=24)
    now = approvals.now_utc()
    assert approvals.expire(ledger, now=now + timedelta(hours=23)) == 0
    assert set(approvals.queue(ledger, "pending")["entity_id"]) == QUEUED - {"1001001"}

    # A pending row recorded 25 h ago and the approval whose deadline passed expire; nothing else does.
    _set(ledger, ids["1001020"], expires_at=now - timedelta(hours=1), recorded_at=now - timedelta(hours=25))
    _set(ledger, ids["1001001"], expires_at=now - timedelta(seconds=1))
    assert approvals.queue(ledger, "approved").empty  # queue() expires what is due first
    status = _status(ledger)
    assert (status["1001020"], status["1001001"]) == ("expired", "expired")
    assert {status[e] for e in QUEUED - {"1001020", "1001001"}} == {"pending"}
    assert status["1001016"] == "executing"  # rows without a deadline never expire

    # An expired row cannot be approved any more, and a review naming it changes nothing.
    with pytest.raises(approvals.ReviewError, match=rf"{ids['1001020']} \(expired\)"):
        approvals.decide(ledger, [ids["1001010"], ids["1001020"]], "approve", "alice", None, ttl_hours=24)
    assert _status(ledger)["1001010"] == "pending"

    # The default TTL is 24 h: a day and a bit later every open row has expired.
    assert load_settings().approval_ttl_hours == 24
    assert approvals.expire(ledger, now=now + timedelta(hours=24, minutes=1)) == 3
    assert set(_status(ledger).values()) == {"expired", "executing", "blocked"}


def test_a_newer_proposal_supersedes_a_pending_row_but_never_an_approval(ledger, ids, planned, snapshot):
    approvals.decide(ledger, [ids["1001001"]], "approve", "alice", None, ttl_hours=24)
    later = snapshot.as_of + pd.Timedelta(minutes=30)
    ledger.record_cycle(planned.assign(id=planned["id"] + "-2"), "run-2", ACCOUNT, later, approval_ttl_hours=24)
    status = _status(ledger)
    assert status["1001001"] == "approved"
    assert {status[e] for e in QUEUED - {"1001001"}} == {"superseded"}
    assert set(approvals.queue(ledger, "pending")["cycle_run_id"]) == {"run-2"}


def _revalidated(ledger, snapshot, planned, settings) -> pd.DataFrame:
    """What the cycle's add_approved step does with the approved rows (engine + ledger)."""
    frames = engine.analyze(snapshot)
    approved = approvals.queue(ledger, "approved", ACCOUNT)
    history = account_history(ledger, snapshot, settings)
    candidates = approved_candidates(approved, frames["roas_metrics"], snapshot.minor_per_unit, snapshot.as_of, history)
    return revalidate(candidates, planned, engine.account_spend(snapshot, frames["roas_metrics"]), settings)


def test_an_approval_meets_the_spend_cap_again(ledger, ids, planned, snapshot):
    approvals.decide(ledger, [ids["1001001"], ids["1001036"]], "approve", "alice", None, ttl_hours=24)
    spend = engine.account_spend(snapshot, engine.analyze(snapshot)["roas_metrics"])
    assert spend.total_active_daily_budget == pytest.approx(4250.0)

    roomy = _revalidated(ledger, snapshot, planned, load_settings()).set_index("entity_id")
    assert roomy["verdict"].to_dict() == {"1001036": "executed", "1001001": "executed"}
    assert roomy.loc["1001001", "new_budget_minor"] == 60000  # the human limit (20 %) applies again
    assert roomy.loc["1001001", "reasons"][0] == "approved by alice (proposed in run run-1)"

    # The cap was lowered since (or the account spent its room): $10 left, less than a 5 % raise.
    tight = _revalidated(ledger, snapshot, planned, load_settings(max_daily_spend_usd=4260)).set_index("entity_id")
    assert tight["verdict"].to_dict() == {"1001036": "safety_blocked", "1001001": "safety_blocked"}
    assert all("spend cap" in reasons[-1] for reasons in tight["reasons"])

    # The cycle closes the approvals with what became of them.
    approvals.close_approvals(ledger, {ids["1001001"]: ("refused", "cycle run-2: spend cap"), ids["1001036"]: ("carried_out", "cycle run-2: done")})
    rows = ledger.cycle_actions("run-1").set_index("entity_id")
    assert rows.loc["1001001", "status"] == "refused" and rows.loc["1001001", "reasons"][-1] == "cycle run-2: spend cap"
    assert rows.loc["1001036", "status"] == "carried_out"
    assert approvals.queue(ledger, "approved").empty
    # Closing again is a no-op: only approved rows are closed.
    approvals.close_approvals(ledger, {ids["1001001"]: ("carried_out", "again")})
    assert _status(ledger)["1001001"] == "refused"


def test_an_approval_meets_the_cooldown_and_a_newer_hard_stop_again(ledger, ids, planned, snapshot):
    approvals.decide(ledger, [ids["1001001"], ids["1001036"], ids["1001010"]], "approve", "alice", None, ttl_hours=24)
    # Another run changed 1001036 two hours ago.
    other = planned[planned["entity_id"] == "1001036"].assign(verdict="executed", id="other-change")
    ledger.record_cycle(other, "run-other", ACCOUNT, snapshot.as_of - pd.Timedelta(hours=2))
    ledger.mark_outcome("run-other", "other-change", snapshot.as_of - pd.Timedelta(hours=2), None)
    # This cycle has (newer) hard stops on 1001010's campaign, Retargeting Q4, and on Black Friday 1001001.
    stops = pd.concat([
        planned[planned["entity_id"] == "1001016"].assign(entity_type="campaign", entity_id=campaign, campaign_id=campaign, adset_id=None)
        for campaign in ("1001009", "1001001")
    ], ignore_index=True)
    cycle_actions = pd.concat([planned[planned["entity_id"] != "1001016"], stops], ignore_index=True)

    checked = _revalidated(ledger, snapshot, cycle_actions, load_settings()).set_index("entity_id")
    # A raise under a hard stop is refused; a cut agrees with it (it only lowers spend) and goes ahead.
    assert checked.loc["1001001", "verdict"] == "safety_blocked" and "hard stop" in checked.loc["1001001", "reasons"][-1]
    assert checked.loc["1001010", "verdict"] == "executed"
    # Changed 2 h ago: its day's change is used up (the rolling 24 h limit speaks first; the cooldown agrees).
    assert checked.loc["1001036", "verdict"] == "policy_blocked"
    assert "rolling 24 h change limit reached: 20% already changed of the 20% daily limit" in checked.loc["1001036", "reasons"][-1]


def test_purge_drops_old_closed_rows_and_keeps_open_ones(ledger, ids, planned, snapshot):
    ledger.record_cycle(planned, "run-new", ACCOUNT, snapshot.as_of)  # recent: kept whatever its status
    statuses = {
        "1001016": "done", "1001020": "pending", "1001010": "approved", "1001034": "unknown",
        "1001024": "rejected", "1001036": "blocked", "1001001": "carried_out",
    }
    old = approvals.now_utc() - timedelta(days=91)
    with ledger.engine.begin() as conn:
        for entity_id, status in statuses.items():
            conn.execute(
                actions_table.update().where(c.cycle_run_id == "run-1", c.entity_id == entity_id).values(status=status, recorded_at=old)
            )
    new_rows = len(ledger.cycle_actions("run-new"))

    assert approvals.purge(ledger, retention_days=92) == 0  # not old enough yet
    assert approvals.purge(ledger, retention_days=90) == 4
    assert _status(ledger) == {e: s for e, s in statuses.items() if s in ("pending", "approved", "executing", "unknown")}
    assert len(ledger.cycle_actions("run-new")) == new_rows == len(planned)
    assert approvals.purge(ledger, retention_days=90) == 0
    # A year on, the closed rows of run-new go too; the open ones of both runs stay.
    closed = ledger.cycle_actions("run-new")["status"].eq("blocked").sum()
    assert closed == 1
    assert approvals.purge(ledger, retention_days=90, now=approvals.now_utc() + timedelta(days=365)) == closed
    with ledger.engine.connect() as conn:
        left = conn.execute(sa.select(c.status)).scalars().all()
    assert set(left) <= {"pending", "approved", "executing", "unknown"}


def test_the_rules_see_a_budget_change_made_days_ago(database_url, planned, snapshot):
    """The hysteresis and the raise rule look back HYSTERESIS_DAYS: a cut written five days ago
    (past the cooldown and the creative embargo) still stands between campaign 1001036's 7-day
    ROAS of 3.34 and a raise (after a cut it needs > 3.6)."""
    store = Ledger(database_url)
    try:
        five_days_ago = snapshot.as_of - pd.Timedelta(days=5)
        cut = planned[planned["entity_id"] == "1001036"].assign(id="cut-1001036", type="scale_down", verdict="executed")
        store.record_cycle(cut, "run-0", ACCOUNT, five_days_ago)
        store.mark_outcome("run-0", "cut-1001036", five_days_ago)
        history = account_history(store, snapshot, load_settings())
        assert history[["entity_id", "type"]].values.tolist() == [["1001036", "scale_down"]]

        actions = plan_cycle(snapshot, load_settings(), history)[0]
        assert "1001036" not in set(actions["entity_id"])
        assert "1001001" in set(actions.loc[actions["type"] == "scale_up", "entity_id"])  # no cut behind it: raised as before
    finally:
        store.dispose()
