"""store/ledger.py on SQLite and PostgreSQL: one transaction per cycle, outcomes, cooldown history, queue."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.history import HISTORY_COLUMNS, history_frame
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import Ledger, actions_table

ACCOUNT = "act_1001"
AS_OF = pd.Timestamp("2026-11-20T10:00:00+00:00")


@pytest.fixture(scope="module")
def snapshot():
    return parse_snapshot(demo_snapshot(ACCOUNT))


@pytest.fixture(scope="module")
def suggest_actions(snapshot) -> pd.DataFrame:
    return plan_cycle(snapshot, load_settings())[0]


@pytest.fixture(scope="module")
def auto_actions(snapshot) -> pd.DataFrame:
    return plan_cycle(snapshot, load_settings(meta_auto_mode="auto"))[0]


@pytest.fixture
def ledger(database_url):
    store = Ledger(database_url)
    yield store
    store.dispose()


def _utc(value) -> pd.Timestamp:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones in the session's zone."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _count(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(actions_table)).scalar_one()


def test_record_cycle_writes_every_row(ledger, suggest_actions, snapshot):
    ledger.record_cycle(suggest_actions, "run-1", ACCOUNT, snapshot.as_of)
    rows = ledger.cycle_actions("run-1")
    assert len(rows) == len(suggest_actions) == 7  # the demo's "New launch" is inside its embargo: not evaluated
    assert list(rows["action_id"]) == list(suggest_actions["id"])
    assert (rows["cycle_run_id"] == "run-1").all() and (rows["account_id"] == ACCOUNT).all()
    assert list(rows["verdict"]) == list(suggest_actions["verdict"])
    status = dict(zip(rows["verdict"], rows["status"]))
    assert status == {"executed": "executing", "queued": "pending", "policy_blocked": "blocked"}
    assert [list(r) for r in rows["reasons"]] == [list(r) for r in suggest_actions["reasons"]]
    assert _utc(rows["as_of"].iloc[0]) == AS_OF

    by_entity = rows.set_index("entity_id")
    assert by_entity.loc["1001001", "current_budget_minor"] == 50000 and by_entity.loc["1001001", "new_budget_minor"] == 60000
    assert pd.isna(by_entity.loc["1001016", "new_budget_minor"])
    assert json.loads(by_entity.loc["1001020", "details"]) == {"loser_ad_ids": ["1001022"], "entity_name": "Spring A"}
    assert json.loads(by_entity.loc["1001001", "details"]) == {"entity_name": "Black Friday - ES"}
    assert (by_entity.loc["1001020", "entity_name"], by_entity.loc["1001020", "loser_ad_ids"]) == ("Spring A", ["1001022"])
    assert (rows["actor"] == "autonomous").all()


def test_a_bad_row_writes_nothing(ledger, suggest_actions, snapshot):
    bad = suggest_actions.copy()
    bad.loc[bad.index[-1], "verdict"] = "approved-by-magic"
    with pytest.raises(KeyError):
        ledger.record_cycle(bad, "run-bad", ACCOUNT, snapshot.as_of)
    assert _count(ledger) == 0


def test_a_row_the_database_rejects_rolls_back_the_whole_cycle(ledger, suggest_actions, snapshot):
    # The last row repeats the first action id: the unique constraint fails on the last insert,
    # after the others were sent, and the transaction takes them back.
    duplicated = pd.concat([suggest_actions, suggest_actions.iloc[[0]]], ignore_index=True)
    with pytest.raises(sa.exc.IntegrityError):
        ledger.record_cycle(duplicated, "run-dup", ACCOUNT, snapshot.as_of)
    assert _count(ledger) == 0


def test_unique_cycle_and_action(ledger, suggest_actions, snapshot):
    ledger.record_cycle(suggest_actions, "run-1", ACCOUNT, snapshot.as_of)
    with pytest.raises(sa.exc.IntegrityError):
        ledger.record_cycle(suggest_actions.iloc[[2]], "run-1", ACCOUNT, snapshot.as_of)
    # The same actions in another cycle are fine.
    ledger.record_cycle(suggest_actions, "run-2", ACCOUNT, snapshot.as_of)
    assert _count(ledger) == 2 * len(suggest_actions)


def test_mark_outcome(ledger, auto_actions, snapshot):
    ledger.record_cycle(auto_actions, "run-1", ACCOUNT, snapshot.as_of)
    ids = auto_actions.set_index("entity_id")["id"]
    done_at = AS_OF + pd.Timedelta(minutes=5)
    ledger.mark_outcome("run-1", ids["1001001"], done_at, None)
    ledger.mark_outcome("run-1", ids["1001010"], done_at, "StubWriteError: refused")

    rows = ledger.cycle_actions("run-1").set_index("entity_id")
    assert rows.loc["1001001", ["verdict", "status"]].tolist() == ["executed", "done"]
    assert _utc(rows.loc["1001001", "executed_at"]) == done_at
    assert rows.loc["1001010", ["verdict", "status", "error_message"]].tolist() == ["failed", "failed", "StubWriteError: refused"]
    assert pd.isna(rows.loc["1001010", "executed_at"])
    assert rows.loc["1001036", ["verdict", "status"]].tolist() == ["executed", "executing"]  # not marked yet
    # Only the named cycle's row changes.
    ledger.record_cycle(auto_actions, "run-2", ACCOUNT, snapshot.as_of)
    ledger.mark_outcome("run-1", ids["1001036"], done_at, None)
    assert ledger.cycle_actions("run-2").set_index("entity_id").loc["1001036", "status"] == "executing"


def test_settle_closes_only_a_row_still_open(ledger, auto_actions, snapshot):
    """Issue 11 #2: settling is a compare-and-set on the status. An outcome recorded meanwhile
    (its own run got the answer; another run settled it) is never overwritten."""
    ledger.record_cycle(auto_actions, "run-1", ACCOUNT, snapshot.as_of)
    ids = auto_actions.set_index("entity_id")["id"]
    ledger.mark_outcome("run-1", ids["1001001"], AS_OF, None)  # done
    ledger.mark_outcome("run-1", ids["1001010"], AS_OF, "ReadTimeout", "unknown")

    assert ledger.settle("run-1", ids["1001001"], False, "did not land (daily budget now 50000)") is False
    assert ledger.settle("run-1", ids["1001010"], True, "landed (daily budget now 9000)") is True
    assert ledger.settle("run-1", ids["1001010"], False, "did not land (daily budget now 10000)") is False
    assert ledger.settle("run-1", ids["1001036"], False, "did not land (daily budget now 60000)") is True  # executing

    rows = ledger.cycle_actions("run-1").set_index("entity_id")
    assert rows.loc["1001001", ["status", "verdict"]].tolist() == ["done", "executed"]
    assert not any(r.startswith("reconciled") for r in rows.loc["1001001", "reasons"])
    assert rows.loc["1001010", "status"] == "done" and rows.loc["1001010", "reasons"][-1] == "reconciled: landed (daily budget now 9000)"
    assert rows.loc["1001036", "status"] == "failed"


def test_history_lists_every_write_since_with_its_size_and_executing_counts(ledger, auto_actions, snapshot):
    ids = auto_actions.set_index("entity_id")["id"]
    ledger.record_cycle(auto_actions, "run-1", ACCOUNT, AS_OF)
    ledger.mark_outcome("run-1", ids["1001001"], AS_OF + pd.Timedelta(minutes=1), None)
    ledger.mark_outcome("run-1", ids["1001010"], AS_OF, "StubWriteError: refused")  # failed: never counts
    later = AS_OF + pd.Timedelta(hours=3)
    ledger.record_cycle(auto_actions[auto_actions["entity_id"] == "1001036"], "run-2", ACCOUNT, later)
    ledger.mark_outcome("run-2", ids["1001036"], later + pd.Timedelta(minutes=2), None)
    ledger.record_cycle(auto_actions, "run-other", "act_9999", later)  # another account

    history = ledger.history(ACCOUNT, AS_OF - pd.Timedelta(hours=48))
    assert list(history.columns) == HISTORY_COLUMNS and str(history["executed_at"].dt.tz) == "UTC"
    when = history.groupby(["entity_type", "entity_id"])["executed_at"].max().to_dict()
    executed = auto_actions[auto_actions["verdict"] == "executed"]
    assert set(when) == {(t, e) for t, e in zip(executed["entity_type"], executed["entity_id"]) if e != "1001010"}
    assert when[("campaign", "1001001")] == AS_OF + pd.Timedelta(minutes=1)  # done: executed_at
    assert when[("campaign", "1001036")] == later + pd.Timedelta(minutes=2)  # the latest of two cycles
    assert when[("ad", "1001016")] == AS_OF  # still executing: counts from the cycle's as_of
    assert ("ad", "1001034") not in when and ("campaign", "1001024") not in when  # queued / blocked never count
    # Each row keeps what the rolling 24 h change limit and the creative embargo read.
    raise_row = history[history["entity_id"] == "1001001"].iloc[0]
    assert (raise_row["type"], raise_row["rule"]) == ("scale_up", "roas_high")
    assert raise_row["amount_pct"] == pytest.approx(executed.set_index("entity_id").loc["1001001", "amount_pct"])
    winner = history[history["type"] == "publish_winner"].iloc[0]
    assert list(winner["loser_ad_ids"]) == list(executed.set_index("entity_id").loc[winner["entity_id"], "loser_ad_ids"])

    # Only writes since the given moment; the snapshot's recent_actions join with unknown sizes.
    assert set(ledger.history(ACCOUNT, later)["entity_id"]) == {"1001036"}
    merged = history_frame([history, snapshot.recent_actions])
    assert len(merged) == len(history) + len(snapshot.recent_actions)
    assert ledger.history("act_0000", AS_OF - pd.Timedelta(hours=48)).empty


def test_campaign_evaluations_remember_the_latest_tick(ledger):
    assert ledger.last_evaluated(ACCOUNT).empty
    ledger.record_evaluated(ACCOUNT, ["1", "2"], AS_OF)
    ledger.record_evaluated(ACCOUNT, ["2", "3"], AS_OF + pd.Timedelta(minutes=30))
    ledger.record_evaluated("act_9999", ["1"], AS_OF + pd.Timedelta(hours=5))
    assert ledger.last_evaluated(ACCOUNT).to_dict() == {
        "1": AS_OF, "2": AS_OF + pd.Timedelta(minutes=30), "3": AS_OF + pd.Timedelta(minutes=30),
    }


def test_pending_lists_queued_rows(ledger, suggest_actions, snapshot):
    ledger.record_cycle(suggest_actions, "run-1", ACCOUNT, snapshot.as_of)
    pending = ledger.pending()
    queued = suggest_actions[suggest_actions["verdict"] == "queued"]
    assert len(queued) == 5
    assert list(pending["action_id"]) == list(queued["id"])
    assert (pending["status"] == "pending").all() and (pending["verdict"] == "queued").all()
    assert list(ledger.pending(ACCOUNT)["action_id"]) == list(queued["id"])
    assert ledger.pending("act_0000").empty


def test_a_newer_proposal_supersedes_the_queued_one(ledger, suggest_actions, snapshot):
    ledger.record_cycle(suggest_actions, "run-1", ACCOUNT, snapshot.as_of)
    ledger.record_cycle(suggest_actions.assign(id=suggest_actions["id"] + "-2"), "run-2", ACCOUNT, snapshot.as_of)
    pending = ledger.pending(ACCOUNT)
    assert len(pending) == 5 and set(pending["cycle_run_id"]) == {"run-2"}  # one per entity and type
    first = ledger.cycle_actions("run-1")
    assert set(first.loc[first["verdict"] == "queued", "status"]) == {"superseded"}


def test_already_sent_finds_writes_of_any_run(ledger, auto_actions, snapshot):
    ledger.record_cycle(auto_actions, "run-1", ACCOUNT, snapshot.as_of)
    executed = list(auto_actions.loc[auto_actions["verdict"] == "executed", "id"])
    ledger.mark_outcome("run-1", executed[0], AS_OF, None)
    ledger.mark_outcome("run-1", executed[1], AS_OF, "boom")
    ledger.mark_outcome("run-1", executed[2], AS_OF, "timeout", status="unknown")
    sent = ledger.already_sent(ACCOUNT, list(auto_actions["id"]))
    # done, unknown and still-executing rows were (or may have been) sent; failed and blocked were not.
    assert set(sent) == {executed[0], executed[2], *executed[3:]} and set(sent.values()) == {"run-1"}
    assert ledger.already_sent("act_0000", executed) == {}
