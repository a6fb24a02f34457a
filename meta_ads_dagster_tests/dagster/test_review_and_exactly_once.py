"""Issue 4 end to end, as Dagster runs on SQLite and PostgreSQL ledgers: the review queue and the
jobs beside the cycle, approvals re-validated by the next cycle, the always-ask rules in auto mode,
exactly-once execution across a crash (new cycle, re-execution from failure) and across two
cycles at once, rollback through the job and the CLI, and the retention purge.

Every cycle runs on the persistent instance at the conftest's DAGSTER_HOME, with the stub's state
under it; ``META_ADS_DATABASE_URL`` points the ledger at the backend under test.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import DagsterInstance, ReexecutionOptions, build_reconstructable_job, execute_job

from meta_ads_dagster.cli import main
from meta_ads_dagster.cycle import steps as cycle_steps
from meta_ads_dagster.store import approvals
from meta_ads_dagster.store.ledger import Ledger, actions_table, cycle_locks_table
from meta_ads_dagster.store.locks import account_lock

from ..engine.factories import campaign, campaign_id, make_snapshot
from .test_cycle_runs import Cycle, reconstructable_cycle_job

ACCOUNT = "act_1001"
JSON_KEYS = {"id", "type", "entity_type", "entity_id", "status", "current_budget_usd", "new_budget_usd", "reasons", "actor", "cycle_run_id"}
# The demo account in auto mode: what its first cycle writes, in this order.
DEMO_WRITES = [("pause", "1001016"), ("publish_winner_ad", "1001020"), ("update_budget", "1001010"), ("update_budget", "1001036"), ("update_budget", "1001001")]


@pytest.fixture
def ledger_url(database_url, monkeypatch) -> str:
    monkeypatch.setenv("META_ADS_DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def ledger(ledger_url):
    store = Ledger(ledger_url)
    yield store
    store.dispose()


def use_snapshot(document: dict, tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "account.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("META_STUB_SNAPSHOT", str(path))
    return path


def writes_of(cycle: Cycle, after: int = 0) -> list[tuple[str, str]]:
    return [(w["method"], w.get("entity_id") or w.get("winner_ad_id")) for w in cycle.stub_writes()[after:] if w["method"] != "sync_insights"]


def entity(document: dict, collection: str, entity_id: str) -> dict:
    return next(row for row in document[collection] if row["id"] == entity_id)


def failure_message(result) -> str:
    failures = result.get_step_failure_events()
    assert [event.step_key for event in failures] == ["optimization_cycle.execute"]
    return failures[0].step_failure_data.error.to_string()


def cli_json(capsys, *argv) -> list | dict:
    """``meta-ads ARGV`` must succeed; its stdout parsed (listing commands asked for ``--format json``)."""
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- the review queue ---------------------------------------------------------------------------


def test_approvals_are_revalidated_then_carried_out_by_the_next_cycle(ledger, tmp_path, monkeypatch, capsys):
    """Five raises queued in suggest mode. Approved: A (still holds), B (its ROAS collapsed: a newer
    hard stop), C (another run changed it: cooldown), D (the approval expired); E rejected."""
    A, B, C, D, E = (campaign_id(i) for i in range(5))
    use_snapshot(make_snapshot([campaign(roas=4.0, spend=150, budget_usd=200) for _ in range(5)]), tmp_path, monkeypatch)

    with DagsterInstance.ephemeral() as instance:
        cycle = Cycle()
        first = cycle.run(instance)
        assert first.success
        queued = ledger.pending(ACCOUNT).set_index("entity_id")
        assert sorted(queued.index) == [A, B, C, D, E] and set(queued["type"]) == {"scale_up"}
        ids = queued["action_id"].to_dict()
        assert writes_of(cycle) == []  # suggest mode: nothing written

        pending = cli_json(capsys, "pending")
        assert all(JSON_KEYS <= set(row) for row in pending) and {row["entity_id"] for row in pending} == {A, B, C, D, E}
        row = next(r for r in pending if r["entity_id"] == A)
        assert (row["id"], row["status"], row["actor"], row["cycle_run_id"]) == (ids[A], "pending", "autonomous", first.run_id)
        assert (row["current_budget_usd"], row["new_budget_usd"]) == (200.0, 240.0)
        assert "suggest mode: queued for human approval" in row["reasons"]

        # The Dagster UI's way: the review_actions job. A bad id fails the run and changes nothing.
        review = cycle.defs.resolve_job_def("review_actions")

        def review_config(action_ids, decision="approve", reviewer="alice", reason=""):
            return {"ops": {"review": {"config": {"action_ids": action_ids, "decision": decision, "reviewer": reviewer, "reason": reason}}}}

        bad = review.execute_in_process(run_config=review_config([ids[A], "no-such-id"]), instance=instance, raise_on_error=False)
        assert not bad.success
        assert "no-such-id (no such queued action)" in bad.get_step_failure_events()[0].step_failure_data.error.to_string()
        assert set(ledger.cycle_actions(first.run_id)["status"]) == {"pending"}
        assert review.execute_in_process(run_config=review_config([ids[A], ids[B], ids[C], ids[D]]), instance=instance).success

        # The CLI's way: a bad id exits 2 and changes nothing; a rejection needs --reason.
        assert main(["approve", ids[E], "nope", "--by", "carol"]) == 2
        assert "nope (no such queued action)" in capsys.readouterr().err
        with pytest.raises(SystemExit) as exit_info:
            main(["reject", ids[E], "--by", "bob"])
        assert exit_info.value.code == 2 and "--reason" in capsys.readouterr().err
        assert ledger.cycle_actions(first.run_id).set_index("entity_id").loc[E, "status"] == "pending"
        rejected = cli_json(capsys, "reject", ids[E], "--by", "bob", "--reason", "seasonal, not now")
        assert [(r["id"], r["status"], r["decided_by"]) for r in rejected] == [(ids[E], "rejected", "bob")]

        # The account moves on. B's ROAS collapses (the next cycle hard-stops it)...
        state_file = Path(cycle.resources["meta_client"].state_dir) / f"stub_{ACCOUNT}.json"
        state, document = cycle.client().load_state(), cycle.client().fetch_snapshot()
        collapsed = make_snapshot([campaign(roas=0.5 if i == 1 else 4.0, spend=150, budget_usd=200) for i in range(5)])
        document["insights"] = [r for r in document["insights"] if r["campaign_id"] != B] + [
            r for r in collapsed["insights"] if r["campaign_id"] == B
        ]
        # The state written as states were stored before the journal: one file, the insights inside.
        state_file.write_text(json.dumps({"source": state["source"], "snapshot": document, "syncs": state["syncs"], "writes": state["writes"]}))
        # ...another run raised C a moment ago...
        other = first.output_for_node("optimization_cycle").query("entity_id == @C").assign(id="other-change", verdict="executed")
        ledger.record_cycle(other, "someone-elses-run", ACCOUNT, "2026-11-25T10:30:00+00:00")
        ledger.mark_outcome("someone-elses-run", "other-change", "2026-11-25T10:30:00+00:00", None)
        cycle.client().update_budget("campaign", C, 22000)
        # ...and the approval of D passed its deadline.
        with ledger.engine.begin() as conn:
            conn.execute(
                actions_table.update().where(actions_table.c.action_id == ids[D]).values(expires_at=approvals.now_utc() - timedelta(minutes=1))
            )
        before = len(cycle.client().writes)

        second = Cycle().run(instance)
        assert second.success

    assert writes_of(cycle, before) == [("pause", B), ("update_budget", A)]  # B's hard stop, then the approval of A
    assert entity(cycle.client().fetch_snapshot(), "campaigns", A)["daily_budget"] == "24000"
    assert entity(cycle.client().fetch_snapshot(), "campaigns", C)["daily_budget"] == "22000"  # the other run's value

    proposals = ledger.cycle_actions(first.run_id).set_index("entity_id")
    assert proposals["status"].to_dict() == {A: "carried_out", B: "refused", C: "superseded", D: "expired", E: "rejected"}
    assert "hard stop" in proposals.loc[B, "reasons"][-1]
    # C's budget is not the one alice saw any more: her approval of "200 → 240" is not carried out.
    assert proposals.loc[C, "reasons"][-1] == "superseded: the budget changed since it was proposed (200.00 → 220.00)"
    assert proposals.loc[A, "reasons"][-1].startswith(f"cycle {second.run_id}: ")
    assert (proposals.loc[[A, B, C, D], "decided_by"] == "alice").all() and proposals.loc[E, "decided_by"] == "bob"

    carried = ledger.cycle_actions(second.run_id).set_index("action_id").loc[[ids[A]]]
    assert len(carried) == 1
    assert carried[["status", "actor", "new_budget_minor"]].values.tolist() == [["done", "alice", 24000]]
    assert carried["reasons"].iloc[0][0] == f"approved by alice (proposed in run {first.run_id})"
    assert set(ledger.cycle_actions(second.run_id).query("actor != 'alice'")["actor"]) == {"autonomous"}

    log = cli_json(capsys, "log", second.run_id)
    assert all(JSON_KEYS <= set(row) for row in log)
    assert [(r["entity_id"], r["status"], r["actor"]) for r in log if r["id"] == ids[A]] == [(A, "done", "alice")]


def test_big_budget_changes_and_mass_pauses_need_a_person_even_in_auto_mode(ledger, tmp_path, monkeypatch, capsys):
    for name, value in {"META_AUTO_MODE": "auto", "MASS_PAUSE_LIMIT": "2", "MAX_CAMPAIGN_BUDGET_USD": "20000", "MAX_DAILY_SPEND_USD": "50000"}.items():
        monkeypatch.setenv(name, value)
    big, small, *stopped = (campaign_id(i) for i in range(5))
    document = make_snapshot(
        [campaign(roas=4.0, spend=1000, budget_usd=8000), campaign(roas=4.0, spend=150, budget_usd=200)]
        + [campaign(roas=0.5, spend=80, budget_usd=100) for _ in range(3)]
    )
    use_snapshot(document, tmp_path, monkeypatch)

    with DagsterInstance.get() as instance:
        cycle = Cycle()
        result = cycle.run(instance)
    assert result.success
    actions = result.output_for_node("optimization_cycle").set_index("entity_id")
    # Three hard stops over MASS_PAUSE_LIMIT 2: two are paused at once (equal losses: in order), the third asks a person.
    paused, waiting = stopped[:2], stopped[2]
    assert actions["verdict"].to_dict() == {**{s: "executed" for s in paused}, waiting: "queued", big: "queued", small: "executed"}
    assert actions.loc[big, "reasons"][-1] == "budget change of 800.00 exceeds APPROVAL_MIN_BUDGET_CHANGE_USD 500: needs approval"
    assert actions.loc[waiting, "reasons"][-1] == (
        "mass pause: 3 pauses found in one cycle exceed MASS_PAUSE_LIMIT 2; those losing the most money per day are paused now, "
        "this one needs approval"
    )
    assert sorted(writes_of(cycle)) == sorted([("pause", paused[0]), ("pause", paused[1]), ("update_budget", small)])

    pending = cli_json(capsys, "pending")
    assert all(JSON_KEYS <= set(row) for row in pending)
    by_entity = {row["entity_id"]: row for row in pending}
    assert set(by_entity) == {big, waiting}
    assert (by_entity[big]["type"], by_entity[big]["current_budget_usd"], by_entity[big]["new_budget_usd"]) == ("scale_up", 8000.0, 8800.0)
    assert (by_entity[waiting]["type"], by_entity[waiting]["current_budget_usd"], by_entity[waiting]["new_budget_usd"]) == ("pause", None, None)
    assert {(r["status"], r["actor"], r["cycle_run_id"], r["entity_type"]) for r in pending} == {("pending", "autonomous", result.run_id, "campaign")}
    assert all(isinstance(r["reasons"], list) and r["reasons"] for r in pending)

    log = cli_json(capsys, "log", result.run_id)
    assert {row["entity_id"]: row["status"] for row in log} == {**{s: "done" for s in paused}, waiting: "pending", big: "pending", small: "done"}
    assert main(["pending"]) == 0  # the table for people names the same ids
    table = capsys.readouterr().out
    header, columns = table.splitlines()[:2]
    assert header.startswith("pending and approved actions · home ") and "ledger " in header
    assert columns.split()[:5] == ["account", "id", "type", "rule", "unit"]
    assert all(row["id"] in table for row in pending)
    assert main(["log", "no-such-run", "--format", "json"]) == 2
    capsys.readouterr()

    # history: Dagster's run storage (cycle runs only) plus the ledger's counts.
    history = cli_json(capsys, "history", "--limit", "5")
    assert [(row["run_id"], row["status"], row["auto_mode"]) for row in history] == [(result.run_id, "SUCCESS", "auto")]
    assert (history[0]["actions_executed"], history[0]["actions_queued"], history[0]["actions_failed"]) == (3, 2, 0)


# --- exactly once -------------------------------------------------------------------------------


def crash_in_the_middle(instance: DagsterInstance, ledger: Ledger, monkeypatch):
    """An auto cycle of the demo whose process "dies" right after the ad set's budget write
    reached Meta: the pause and the A/B decision landed before it, the two raises never went out."""
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    cycle = Cycle()
    cycle.resources["meta_client"] = cycle.client(crash_after_write_for=["1001010"])
    crashed = cycle.run(instance, raise_on_error=False)
    assert not crashed.success
    assert "StubCrash: stub crashed after update_budget ['1001010']" in failure_message(crashed)
    assert writes_of(cycle) == DEMO_WRITES[:3]
    rows = ledger.cycle_actions(crashed.run_id)
    sent = {entity_id for _, entity_id in DEMO_WRITES}
    assert set(rows.loc[rows["entity_id"].isin(sent), "status"]) == {"executing"}  # the ledger never heard back
    return cycle, crashed


def assert_each_write_landed_once(cycle: Cycle) -> None:
    assert sorted(writes_of(cycle)) == sorted(DEMO_WRITES)
    document = cycle.client().fetch_snapshot()
    assert entity(document, "ads", "1001016")["status"] == entity(document, "ads", "1001022")["status"] == "PAUSED"
    budgets = {e: entity(document, kind, e)["daily_budget"] for kind, e in (("adsets", "1001010"), ("campaigns", "1001036"), ("campaigns", "1001001"))}
    assert budgets == {"1001010": "9000", "1001036": "66000", "1001001": "55000"}


def test_a_crash_between_the_write_and_the_ledger_then_a_new_cycle(ledger, monkeypatch):
    with DagsterInstance.ephemeral() as instance:
        cycle, crashed = crash_in_the_middle(instance, ledger, monkeypatch)
        after = Cycle().run(instance)
    assert after.success
    assert_each_write_landed_once(cycle)

    dead = ledger.cycle_actions(crashed.run_id).set_index("entity_id")
    for entity_id in ("1001016", "1001020", "1001010"):  # read back from the account, never re-sent
        assert dead.loc[entity_id, ["verdict", "status"]].tolist() == ["executed", "done"]
        assert dead.loc[entity_id, "reasons"][-1].startswith("reconciled: landed")
    assert dead.loc["1001010", "reasons"][-1] == "reconciled: landed (daily budget now 9000)"
    for entity_id in ("1001036", "1001001"):
        assert dead.loc[entity_id, "status"] == "failed"
        assert dead.loc[entity_id, "reasons"][-1].startswith("reconciled: did not land")
    now = ledger.cycle_actions(after.run_id).set_index("entity_id")
    assert now.loc[["1001036", "1001001"], "status"].tolist() == ["done", "done"]  # decided again and sent now
    assert now.loc["1001010", "status"] == "blocked"  # in its cooldown
    assert not ledger.open_writes(ACCOUNT, "nobody").shape[0]


def test_the_lock_of_a_run_dagster_reports_failed_is_taken_over_at_once(ledger, monkeypatch):
    """Issue 11 #3: a run worker killed on another host leaves its lock row behind. Once Dagster
    reports the run failed, the next cycle takes the lock over at once (not after 25 minutes)
    and reconciles what the dead run sent."""
    with DagsterInstance.ephemeral() as instance:
        cycle, crashed = crash_in_the_middle(instance, ledger, monkeypatch)
        with ledger.engine.begin() as conn:  # as the killed worker left it: its process is not on this host
            conn.execute(cycle_locks_table.insert().values(
                account_id=ACCOUNT, run_id=crashed.run_id, acquired_at=datetime.now(timezone.utc), pid=1, host="another-host",
            ))
        after = Cycle().run(instance)
        assert after.success
        logs = [entry.user_message for entry in instance.all_logs(after.run_id)]
    assert f"took over the write lock of run {crashed.run_id}: Dagster reports the run ended" in logs
    assert_each_write_landed_once(cycle)
    assert ledger.open_writes(ACCOUNT, "nobody").empty


def cycle_job_for(run_id: str):
    """Module-level, so Dagster can rebuild the job for a re-execution. ``run_id`` only keys Dagster's
    per-process cache of rebuilt jobs, which would otherwise hand this test an earlier test's job
    (with that test's ledger URL and stub state)."""
    return reconstructable_cycle_job()


def test_a_crash_between_the_write_and_the_ledger_then_a_reexecution_from_failure(ledger, monkeypatch):
    with DagsterInstance.get() as instance:
        cycle, crashed = crash_in_the_middle(instance, ledger, monkeypatch)
        options = ReexecutionOptions.from_failure(crashed.run_id, instance)
        job = build_reconstructable_job(__name__, "cycle_job_for", reconstructable_kwargs={"run_id": crashed.run_id})
        tags = instance.get_run_by_id(crashed.run_id).tags  # a re-execution keeps its parent's account
        with execute_job(job, instance, tags=tags, reexecution_options=options) as again:
            assert again.success
            steps = {e.step_key for e in again.all_events if e.is_step_success}
            rerun = again.run_id
    assert "optimization_cycle.execute" in steps and "account_snapshot" not in steps  # from failure: the same decisions
    assert_each_write_landed_once(cycle)

    dead = ledger.cycle_actions(crashed.run_id).set_index("entity_id")
    assert dead.loc[["1001016", "1001020", "1001010"], "status"].tolist() == ["done"] * 3
    assert dead.loc[["1001036", "1001001"], "status"].tolist() == ["failed"] * 2
    replay = ledger.cycle_actions(rerun).set_index("entity_id")
    assert replay.loc[["1001036", "1001001"], "status"].tolist() == ["done"] * 2  # the same action ids, sent once
    assert (replay.loc[["1001036", "1001001"], "action_id"] == dead.loc[["1001036", "1001001"], "action_id"]).all()
    for entity_id in ("1001016", "1001020", "1001010"):
        assert replay.loc[entity_id, "status"] == "superseded"
        assert replay.loc[entity_id, "reasons"][-1] == f"already sent by run {crashed.run_id}; not sent again"
    assert ledger.open_writes(ACCOUNT, "nobody").empty


def test_a_cycle_is_refused_while_another_run_holds_the_account(ledger, monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    with DagsterInstance.ephemeral() as instance:
        cycle = Cycle()
        with account_lock(ledger, ACCOUNT, "scheduled-run-1234"):
            refused = cycle.run(instance, raise_on_error=False)
    assert not refused.success
    message = failure_message(refused)
    assert "account act_1001: run scheduled-run-1234 has been writing since" in message
    assert f"run {refused.run_id} refused so two cycles never write at once" in message
    assert writes_of(cycle) == [] and ledger.cycle_actions(refused.run_id).empty
    assert not [e for e in refused.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # refused, not retried


@pytest.mark.parametrize(("interval", "taken_over"), [("30", True), ("60", False)])
def test_a_lock_counts_as_abandoned_after_the_cycles_max_runtime(ledger, monkeypatch, interval, taken_over):
    """A lock row 30 minutes old: past a 30-minute interval's max runtime (25 min) the run that took
    it is dead, so the cycle takes it over; under a 60-minute interval (50 min) it may be alive."""
    monkeypatch.setenv("META_CYCLE_INTERVAL_MINUTES", interval)
    acquired = datetime.now(timezone.utc) - timedelta(minutes=30)
    with ledger.engine.begin() as conn:
        conn.execute(cycle_locks_table.insert().values(account_id=ACCOUNT, run_id="long-run", acquired_at=acquired))
    with DagsterInstance.ephemeral() as instance:
        result = Cycle().run(instance, raise_on_error=False)
    assert result.success is taken_over
    if not taken_over:
        assert "account act_1001: run long-run has been writing since" in failure_message(result)


def test_two_cycles_at_once_never_execute_an_action_twice(ledger, monkeypatch):
    """Cycle B decides first, then waits (in add_approved) while cycle A runs from start to end;
    B's writes would repeat A's. Under the account lock B sees A's changes and sends none of them."""
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    b_decided, a_done = threading.Event(), threading.Event()
    queue = approvals.queue

    def slow_queue(*args, **kwargs):
        if threading.current_thread().name == "cycle-B":
            b_decided.set()
            assert a_done.wait(60)
        return queue(*args, **kwargs)

    monkeypatch.setattr(cycle_steps.approvals, "queue", slow_queue)
    results = {}
    with DagsterInstance.ephemeral() as instance:
        cycle = Cycle()
        other = DagsterInstance.ephemeral()  # another process's instance
        thread = threading.Thread(target=lambda: results.setdefault("B", Cycle().run(other, raise_on_error=False)), name="cycle-B")
        thread.start()
        try:
            assert b_decided.wait(60)
            results["A"] = cycle.run(instance)
        finally:
            a_done.set()
            thread.join(60)
    assert results["A"].success and results["B"].success
    assert sorted(writes_of(cycle)) == sorted(DEMO_WRITES)  # each action applied once, by A

    b = ledger.cycle_actions(results["B"].run_id)
    held = b[b["reasons"].map(lambda r: r[-1].startswith("changed by another run after this cycle read the account"))]
    assert sorted(held["entity_id"]) == sorted(e for _, e in DEMO_WRITES)
    assert not (b["status"] == "done").any()
    a = ledger.cycle_actions(results["A"].run_id)
    assert sorted(a.loc[a["status"] == "done", "entity_id"]) == sorted(e for _, e in DEMO_WRITES)


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_through_the_job_and_the_cli(ledger, monkeypatch, capsys):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    with DagsterInstance.ephemeral() as instance:
        cycle = Cycle()
        original = cycle.client().fetch_snapshot()
        first = cycle.run(instance)
        assert first.success and writes_of(cycle) == DEMO_WRITES
        cycle.client().update_budget("campaign", "1001036", 70000)  # a person changes one entity since
        writes = len(cycle.client().writes)

        rollback = cycle.defs.resolve_job_def("rollback_cycle")
        unknown = rollback.execute_in_process(run_config={"ops": {"rollback": {"config": {"run_id": "no-such-run"}}}}, instance=instance, raise_on_error=False)
        assert not unknown.success and len(cycle.client().writes) == writes
        job = rollback.execute_in_process(run_config={"ops": {"rollback": {"config": {"run_id": first.run_id}}}}, instance=instance)
        assert job.success
        output = next(e for e in job.all_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata
        assert (output["restored"].value, output["skipped"].value, output["refused"].value, output["failed"].value) == (3, 1, 1, 0)

    restored = cycle.client().fetch_snapshot()
    for kind, entity_id in (("ads", "1001022"), ("adsets", "1001010"), ("campaigns", "1001001")):
        assert entity(restored, kind, entity_id) == entity(original, kind, entity_id), entity_id
    assert entity(restored, "campaigns", "1001036")["daily_budget"] == "70000"  # skipped: changed since
    assert entity(restored, "ads", "1001016")["status"] == "PAUSED"  # refused: the hard stop still holds on it
    assert sorted(writes_of(cycle, writes)) == sorted([("resume", "1001022"), ("update_budget", "1001010"), ("update_budget", "1001001")])
    rows = ledger.cycle_actions(job.run_id)
    assert len(rows) == 3 and set(rows["status"]) == {"done"} and set(rows["actor"]) == {"dagster"}
    assert set(rows["rollback_of_run"]) == {first.run_id}

    # The CLI: the same run again sends nothing; --force restores the skipped and the refused entity, once.
    writes = len(cycle.client().writes)
    report = cli_json(capsys, "rollback", first.run_id)
    assert report["restored"] == [] and report["failed"] == []
    assert sum(f"already restored by run {job.run_id}" in line for line in report["skipped"]) == 3
    assert ["campaign 1001036: changed since the cycle (66000 → 70000); use --force to restore anyway"] == [
        line for line in report["skipped"] if "1001036" in line
    ]
    assert [line.split(":")[0] for line in report["refused"]] == ["ad 1001016 'Variant B - Low Performer'"]
    assert "the hard stop holds" in report["refused"][0]
    assert len(cycle.client().writes) == writes
    forced = cli_json(capsys, "rollback", first.run_id, "--force", "--by", "carol")
    assert sorted(forced["restored"]) == ["resume ad 1001016", "scale_down campaign 1001036"]
    assert [line.split(":")[0] for line in forced["forced"]] == ["resume ad 1001016"]
    assert entity(cycle.client().fetch_snapshot(), "campaigns", "1001036")["daily_budget"] == "60000"
    assert sorted(writes_of(cycle, writes)) == [("resume", "1001016"), ("update_budget", "1001036")]
    assert ledger.cycle_actions(forced["rollback_run_id"])["actor"].tolist() == ["carol", "carol"]
    assert cli_json(capsys, "rollback", first.run_id, "--force")["restored"] == []
    assert main(["rollback", "no-such-run"]) == 2 and capsys.readouterr().err == "meta-ads: run_id: no actions recorded for run no-such-run\n"
    assert len(cycle.client().writes) == writes + 2


# --- retention ----------------------------------------------------------------------------------


def test_the_daily_purge_job_drops_old_closed_rows(ledger, monkeypatch):
    from meta_ads_dagster.engine.cycle import plan_cycle
    from meta_ads_dagster.engine.snapshot import parse_snapshot
    from meta_ads_dagster.meta.demo import demo_snapshot
    from meta_ads_dagster.settings import load_settings

    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "30")
    snapshot = parse_snapshot(demo_snapshot(ACCOUNT))
    actions, _ = plan_cycle(snapshot, load_settings())  # 1 executing, 5 pending, 1 blocked
    ledger.record_cycle(actions, "old-run", ACCOUNT, snapshot.as_of)
    ledger.record_cycle(actions.assign(id=actions["id"] + "-new", verdict="policy_blocked"), "new-run", ACCOUNT, snapshot.as_of)
    with ledger.engine.begin() as conn:
        conn.execute(
            actions_table.update().where(actions_table.c.cycle_run_id == "old-run").values(recorded_at=approvals.now_utc() - timedelta(days=31))
        )

    with DagsterInstance.ephemeral() as instance:
        defs = Cycle().defs
        schedule = defs.resolve_schedule_def("purge_audit_ledger_daily")
        assert (schedule.job_name, schedule.cron_schedule, schedule.default_status.value) == ("purge_audit_ledger", "15 3 * * *", "RUNNING")
        result = defs.resolve_job_def("purge_audit_ledger").execute_in_process(instance=instance)
    assert result.success
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert outputs[0].event_specific_data.metadata["rows_deleted"].value == 1
    old = ledger.cycle_actions("old-run")
    assert sorted(old["status"]) == ["executing"] + ["pending"] * 5  # open rows are kept whatever their age
    assert len(ledger.cycle_actions("new-run")) == 7  # recent rows are kept whatever their status
