"""meta/stub.py and meta/demo.py: the stub serves a snapshot, records every write and keeps state."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from meta_ads_dagster.engine.snapshot import SnapshotError, parse_snapshot
from meta_ads_dagster.meta.demo import DEMO_AS_OF, demo_snapshot
from meta_ads_dagster.meta.stub import StubMetaAdsClient, StubWriteError

from ..repo_files import SEED_SNAPSHOT_PATH


@pytest.fixture
def seed_path(tmp_path) -> Path:
    path = tmp_path / "seed_worked_examples.json"
    shutil.copy(SEED_SNAPSHOT_PATH, path)
    return path


@pytest.fixture
def state_dir(tmp_path) -> str:
    return str(tmp_path / "stub_state")


def _row(document: dict, collection: str, entity_id: str) -> dict:
    return next(row for row in document[collection] if row["id"] == entity_id)


def test_demo_account_parses_and_is_deterministic():
    first, second = demo_snapshot("act_1001"), demo_snapshot("act_1001")
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)

    snap = parse_snapshot(first)
    assert snap.account_id == "act_1001"
    assert snap.as_of == DEMO_AS_OF
    assert len(snap.campaigns) == 8 and len(snap.adsets) == 9 and len(snap.ads) == 11
    assert len(snap.ab_tests) == 1 and snap.recent_actions.empty
    assert set(snap.campaigns["name"]) >= {"Black Friday - ES", "Spring A/B test", "Flash sale"}

    # The seed comes from the account id: another account is a different (but still valid) document.
    other = demo_snapshot("act_2002")
    assert other != first and other["account"]["id"] == "act_2002"
    assert [i["spend"] for i in other["insights"]] != [i["spend"] for i in first["insights"]]
    parse_snapshot(other)


def test_stub_defaults_to_the_demo_account(state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, account_id="act_1001")
    assert client.fetch_snapshot() == demo_snapshot("act_1001")


def test_stub_serves_a_snapshot_file(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    document = client.fetch_snapshot()
    assert document == json.loads(seed_path.read_text())
    snap = parse_snapshot(document)
    assert snap.account_id == "act_2001" and list(snap.campaigns["id"]) == ["100001", "100005", "100009"]

    # fetch_snapshot hands out a copy: editing it does not edit the account.
    document["campaigns"][0]["daily_budget"] = "1"
    assert client.fetch_snapshot()["campaigns"][0]["daily_budget"] == "50000"


@pytest.mark.parametrize("status", ["LEARNING", "SUCCESS", "FAIL"])
def test_stub_serves_the_learning_stage_of_its_snapshot(seed_path, state_dir, status):
    document = json.loads(seed_path.read_text())
    document["adsets"][0]["learning_stage_info"] = {"status": status, "conversions": "7", "last_sig_edit_ts": 1763900000}
    seed_path.write_text(json.dumps(document))
    served = parse_snapshot(StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).fetch_snapshot()).adsets.iloc[0]
    assert (served["learning_status"], served["learning_conversions"]) == (status, 7)
    assert served["last_sig_edit_at"] == pd.Timestamp(1763900000, unit="s", tz="UTC")


def test_the_static_demo_s_young_ad_sets_are_learning(state_dir):
    snapshot = parse_snapshot(StubMetaAdsClient(state_dir=state_dir, account_id="act_1001").fetch_snapshot())
    age_days = (snapshot.as_of - snapshot.adsets["created_time"]).dt.total_seconds() / 86400
    assert snapshot.adsets["learning_status"].tolist() == ["LEARNING" if age < 7 else "SUCCESS" for age in age_days]
    assert "LEARNING" in snapshot.adsets["learning_status"].tolist()


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
def test_a_variant_joins_its_ad_set_with_the_asked_status_and_an_unreviewed_creative(seed_path, state_dir, status):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    created = client.create_new_ad_variant("100007", status)
    assert created["status"] == status
    doc = client.fetch_snapshot()
    ad = _row(doc, "ads", created["new_ad_id"])
    assert ad["status"] == status and ad["source_ad_id"] == "100007" and ad["adset_id"] == _row(doc, "ads", "100007")["adset_id"]
    assert _row(doc, "creatives", ad["creative"]["id"])["approved"] is False  # in review: it cannot deliver yet


def test_every_write_is_recorded_and_persists_for_a_new_client(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    budget = client.update_budget("campaign", "100001", 55000)
    paused = client.pause("ad", "100013")
    published = client.publish_winner_ad("100011", ["100003"])
    variant = client.create_new_ad_variant("100007")

    assert budget["previous"] == "50000" and budget["daily_budget"] == "55000"
    assert paused["previous"] == "ACTIVE"
    assert [w["method"] for w in client.writes] == [
        "sync_insights", "update_budget", "pause", "publish_winner_ad", "create_new_ad_variant",
    ]
    assert all(w["at"] == "2026-11-25T10:30:00+00:00" for w in client.writes)
    assert published["winner_ad_id"] == "100011" and published["loser_ad_ids"] == ["100003"]

    # A brand-new client over the same state_dir (next run, next process) sees every change.
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    doc = fresh.fetch_snapshot()
    assert _row(doc, "campaigns", "100001")["daily_budget"] == "55000"
    assert _row(doc, "ads", "100013")["status"] == "PAUSED"
    assert _row(doc, "ads", "100011")["status"] == "ACTIVE"
    assert _row(doc, "ads", "100003")["status"] == "PAUSED"
    new_ad = _row(doc, "ads", variant["new_ad_id"])
    assert new_ad["status"] == "PAUSED" and new_ad["adset_id"] == "100006"
    assert new_ad["creative"]["id"] == variant["creative_id"] != "100008"
    assert _row(doc, "creatives", variant["creative_id"])["approved"] is False
    assert fresh.writes == client.writes
    assert (Path(state_dir) / "stub_seed_worked_examples.json").exists()

    # The changed account is still a valid snapshot, and the stub's budget is what the parser reads.
    snap = parse_snapshot(doc)
    assert snap.campaigns.set_index("id").loc["100001", "daily_budget"] == 55000
    # The source file is never modified.
    assert json.loads(seed_path.read_text()) == json.loads(SEED_SNAPSHOT_PATH.read_text())


def test_adset_budget_and_unknown_entities(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.update_budget("adset", "100010", 9000)
    assert _row(client.fetch_snapshot(), "adsets", "100010")["daily_budget"] == "9000"
    with pytest.raises(KeyError, match="999999"):
        client.pause("campaign", "999999")
    assert [w["method"] for w in client.writes] == ["update_budget"]


def test_sync_insights_advances_the_clock_after_the_first_call(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=15)
    client.sync_insights()
    assert client.fetch_snapshot()["as_of"] == "2026-11-25T10:30:00+00:00"
    client.sync_insights()
    assert client.fetch_snapshot()["as_of"] == "2026-11-25T10:45:00+00:00"

    # The clock is part of the persisted state: the next client carries on from there.
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=15)
    fresh.sync_insights()
    as_of = fresh.fetch_snapshot()["as_of"]
    assert pd.Timestamp(as_of) == pd.Timestamp("2026-11-25T11:00:00+00:00")
    assert [w["at"] for w in fresh.writes] == [
        "2026-11-25T10:30:00+00:00", "2026-11-25T10:45:00+00:00", "2026-11-25T11:00:00+00:00",
    ]
    assert fresh.load_state()["syncs"] == 3


def test_fault_injection_refuses_the_write(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), fail_writes_for=["100001", "100013"])
    with pytest.raises(StubWriteError, match="100001"):
        client.update_budget("campaign", "100001", 60000)
    with pytest.raises(StubWriteError, match="100013"):
        client.pause("ad", "100013")
    doc = client.fetch_snapshot()
    assert _row(doc, "campaigns", "100001")["daily_budget"] == "50000"
    assert _row(doc, "ads", "100013")["status"] == "ACTIVE"
    assert client.writes == []
    # Other entities are unaffected.
    client.pause("ad", "100011")
    assert [w["entity_id"] for w in client.writes] == ["100011"]


@pytest.mark.parametrize(
    ("winner", "losers", "faulted"),
    [
        ("100011", ["100013"], "100011"),  # the winner is faulted
        ("100007", ["100011", "100013"], "100013"),  # the last loser is faulted: the first must not be paused
    ],
)
def test_publish_winner_is_one_unit(seed_path, state_dir, winner, losers, faulted):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), fail_writes_for=[faulted])
    client.pause("ad", "100003")  # some unrelated state first, so the file exists
    before = client.fetch_snapshot()
    with pytest.raises(StubWriteError, match=faulted):
        client.publish_winner_ad(winner, losers)
    assert client.fetch_snapshot() == before
    assert [w["method"] for w in client.writes] == ["pause"]
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    assert fresh.fetch_snapshot() == before


def test_publish_winner_with_a_missing_ad_changes_nothing(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    before = client.fetch_snapshot()
    with pytest.raises(KeyError):
        client.publish_winner_ad("100011", ["100013", "404404"])
    assert client.fetch_snapshot() == before and client.writes == []


def test_insights_move_forward_when_the_clock_passes_midnight(tmp_path):
    from meta_ads_dagster.engine.metrics import entity_table
    from meta_ads_dagster.engine.spikes import detect_spikes

    client = StubMetaAdsClient(state_dir=str(tmp_path), account_id="act_1001", clock_step_minutes=30)
    first = parse_snapshot(client.fetch_snapshot())
    for _ in range(29):  # 10:00 UTC + 28 × 30 min: past midnight in Madrid
        client.sync_insights()
    later = parse_snapshot(client.fetch_snapshot())
    assert later.today == first.today + pd.Timedelta(days=1)
    assert later.insights["date"].max() == later.today  # history moved with the clock
    yesterday = later.insights[later.insights["date"] == later.today - pd.Timedelta(days=1)]
    assert yesterday["spend"].sum() > 0
    assert (detect_spikes(later, entity_table(later))["direction"] != "down").all()


def test_a_snapshot_directory_serves_each_account_its_own_file(tmp_path, state_dir):
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    for account in ("act_1001", "act_2002"):
        (accounts / f"{account}.json").write_text(json.dumps(demo_snapshot(account)))
    shared = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(accounts))
    first, second = shared.for_account("act_1001"), shared.for_account("act_2002")
    assert first.fetch_snapshot()["account"]["id"] == "act_1001"
    assert second.fetch_snapshot()["account"]["id"] == "act_2002"
    # Writes land in the written account's state only.
    second.update_budget("campaign", "2002001", 61000)
    assert _row(second.fetch_snapshot(), "campaigns", "2002001")["daily_budget"] == "61000"
    assert [w["method"] for w in first.writes] == [] and [w["method"] for w in second.writes] == ["update_budget"]
    with pytest.raises(KeyError, match="2002001"):  # another account's entity is not in this account
        first.update_budget("campaign", "2002001", 1)


def test_for_account_makes_a_new_client_and_keeps_the_configuration(state_dir):
    shared = StubMetaAdsClient(state_dir=state_dir, clock_step_minutes=15, fail_writes_for=["1"])
    bound = shared.for_account("act_2002")
    assert bound is not shared and shared.account_id == ""
    assert (bound.account_id, bound.state_dir, bound.clock_step_minutes, bound.fail_writes_for) == ("act_2002", state_dir, 15, ["1"])
    assert bound.for_account("act_2002") is bound


# --- where the state starts from (issue 10: a bad snapshot must not poison the account) ------------
def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


def _negative_spend(account: str = "act_1001") -> dict:
    document = demo_snapshot(account)
    document["insights"][0]["spend"] = "-5.00"
    return document


def _stored(state_dir: str) -> list[str]:
    return sorted(str(p.relative_to(state_dir)) for p in Path(state_dir).rglob("*"))


def test_a_rejected_snapshot_is_never_stored_and_a_good_one_then_works(tmp_path, state_dir):
    bad = _write(tmp_path / "bad.json", _negative_spend())
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(bad), account_id="act_1001")
    for call in (client.sync_insights, client.fetch_snapshot):
        with pytest.raises(SnapshotError, match=r"stub snapshot .*bad\.json: snapshot rejected: insights\[0\]\.spend"):
            call()
    assert _stored(state_dir) == []  # not the state, not even its lock file

    good = _write(tmp_path / "good.json", demo_snapshot("act_1001"))
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(good), account_id="act_1001")
    client.sync_insights()
    assert client.fetch_snapshot() == demo_snapshot("act_1001")
    assert parse_snapshot(client.fetch_snapshot()).account_id == "act_1001"


def test_a_state_stored_from_a_rejected_snapshot_is_replaced_by_the_good_file(tmp_path, state_dir):
    """What the stub stored before it validated: a state file of rejected data (and no record of
    its source). Pointing META_STUB_SNAPSHOT at a good file starts over from it."""
    Path(state_dir).mkdir()
    poisoned = {"snapshot": _negative_spend(), "syncs": 1, "writes": [{"method": "sync_insights", "at": DEMO_AS_OF.isoformat()}]}
    (Path(state_dir) / "stub_act_1001.json").write_text(json.dumps(poisoned))
    good = _write(tmp_path / "good.json", demo_snapshot("act_1001"))
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(good), account_id="act_1001")
    client.sync_insights()
    parse_snapshot(client.fetch_snapshot())
    assert [w["method"] for w in client.writes] == ["sync_insights"]


def test_a_changed_snapshot_file_restarts_the_state_from_it(seed_path, state_dir, caplog):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    client.sync_insights()
    client.update_budget("campaign", "100001", 55000)

    # The same file, untouched: the next client carries on (no restart, nothing logged).
    with caplog.at_level(logging.INFO):
        StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).sync_insights()
    assert not caplog.records

    edited = json.loads(seed_path.read_text())
    _row(edited, "campaigns", "100001")["daily_budget"] = "42000"
    _write(seed_path, edited)
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    with caplog.at_level(logging.INFO):
        fresh.sync_insights()
    document = fresh.fetch_snapshot()
    assert _row(document, "campaigns", "100001")["daily_budget"] == "42000"
    assert document["as_of"] == edited["as_of"]  # the clock starts over too
    assert [w["method"] for w in fresh.writes] == ["sync_insights"]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "stub_seed_worked_examples.json" in record.getMessage() and str(seed_path) in record.getMessage()
    assert "starting over" in record.getMessage() and "changed" in record.getMessage()


def test_a_snapshot_changed_into_a_rejected_one_keeps_the_state(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    client.update_budget("campaign", "100001", 55000)
    state_file = Path(state_dir) / "stub_seed_worked_examples.json"
    kept, good = state_file.read_bytes(), seed_path.read_bytes()

    broken = json.loads(good)
    broken["insights"][0]["spend"] = "-1"
    _write(seed_path, broken)
    with pytest.raises(SnapshotError, match=r"seed_worked_examples\.json: snapshot rejected: insights\[0\]\.spend"):
        StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).sync_insights()
    assert state_file.read_bytes() == kept and _stored(state_dir) == [
        "stub_seed_worked_examples.insights.jsonl", "stub_seed_worked_examples.json", "stub_seed_worked_examples.json.lock"
    ]

    # The file put back as it was: the state it made carries on, writes and clock included.
    seed_path.write_bytes(good)
    again = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    again.sync_insights()
    assert [w["method"] for w in again.writes] == ["sync_insights", "update_budget", "sync_insights"]
    assert _row(again.fetch_snapshot(), "campaigns", "100001")["daily_budget"] == "55000"


def test_a_snapshot_of_another_account_is_never_stored(tmp_path, state_dir):
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    _write(accounts / "act_2002.json", demo_snapshot("act_1001"))  # misnamed
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(accounts), account_id="act_2002")
    with pytest.raises(SnapshotError, match=r"act_2002\.json: account\.id: the snapshot is of act_1001, not of act_2002"):
        client.sync_insights()
    assert _stored(state_dir) == []


def test_an_unreadable_snapshot_is_one_clear_error(tmp_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(tmp_path / "gone.json"), account_id="act_1001")
    with pytest.raises(SnapshotError, match=r"stub snapshot .*gone\.json: cannot read it: No such file or directory"):
        client.sync_insights()
    assert _stored(state_dir) == []


# --- the state in two files: the insights are rewritten only when they change ------------------------
def test_writes_leave_the_insights_file_alone_and_a_day_moves_it(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=60)
    client.sync_insights()
    insights_file = Path(state_dir) / "stub_seed_worked_examples.insights.jsonl"
    stored = insights_file.stat()
    rows = [json.loads(line) for line in insights_file.read_text().splitlines()]
    assert rows == json.loads(seed_path.read_text())["insights"]

    client.update_budget("campaign", "100001", 55000)
    client.pause("ad", "100003")
    client.sync_insights()  # 10:00 → 11:00, the same day
    assert insights_file.stat().st_mtime_ns == stored.st_mtime_ns and insights_file.stat().st_ino == stored.st_ino
    state = json.loads((Path(state_dir) / "stub_seed_worked_examples.json").read_text())
    assert "insights" not in state["snapshot"] and [w["method"] for w in state["writes"]][-1] == "sync_insights"

    before = client.fetch_snapshot()
    other = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=24 * 60)
    other.sync_insights()  # another client moves the clock a day: the first one sees it at its next read
    assert insights_file.stat().st_ino != stored.st_ino
    after = client.fetch_snapshot()
    assert [r["date_start"] for r in after["insights"]] == [
        (pd.Timestamp(r["date_start"]) + pd.Timedelta(days=1)).date().isoformat() for r in before["insights"]
    ]
    assert [r["date_start"] for r in before["insights"]] == [r["date_start"] for r in rows]  # what it was given stays
    assert _row(after, "campaigns", "100001")["daily_budget"] == "55000"


def test_a_state_file_holding_its_insights_is_read_and_split_at_the_next_save(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    document = client.fetch_snapshot()
    state_file, insights_file = Path(state_dir) / "stub_seed_worked_examples.json", Path(state_dir) / "stub_seed_worked_examples.insights.jsonl"
    # As a state was stored before the split: one file, the insights inside (here: one row less).
    state = json.loads(state_file.read_text())
    state["snapshot"]["insights"] = document["insights"][1:]
    state_file.write_text(json.dumps(state, indent=1))

    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    assert fresh.fetch_snapshot()["insights"] == document["insights"][1:]
    fresh.pause("ad", "100003")
    assert "insights" not in json.loads(state_file.read_text())["snapshot"]
    assert [json.loads(line) for line in insights_file.read_text().splitlines()] == document["insights"][1:]
    assert StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).fetch_snapshot()["insights"] == document["insights"][1:]


@pytest.mark.parametrize("counts_as_numbers", [False, True])
def test_the_stub_hands_its_insights_on_as_columns_with_the_documents_frames(tmp_path, state_dir, monkeypatch, counts_as_numbers):
    """``fetch_account`` reads the insights file into columns (engine/columnar.py) and gives the
    frames the parser gives the fetched document: before any save, after syncs (the second one
    past midnight moves the rows) and after a write; a file of counts as JSON numbers is parsed
    the ordinary way."""
    from meta_ads_dagster.meta import stub

    from ..engine.test_columnar import assert_same_snapshot

    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    if counts_as_numbers:
        for row in document["insights"]:
            row["impressions"] = int(row["impressions"])
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(document))
    taken = []
    read_columns = stub.parse_with_insights_file
    monkeypatch.setattr(stub, "parse_with_insights_file", lambda *args: taken.append(read_columns(*args)) or taken[-1])
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(path), clock_step_minutes=24 * 60)
    steps = [lambda: None, client.sync_insights, client.sync_insights,
             lambda: client.update_budget("campaign", document["campaigns"][0]["id"], 12345)]
    for step in steps:
        step()
        assert_same_snapshot(client.fetch_account(), parse_snapshot(client.fetch_snapshot()))
    assert len(taken) == 3  # every fetch once a state is saved
    assert all(snapshot is None for snapshot in taken) if counts_as_numbers else all(snapshot is not None for snapshot in taken)
