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
    kept, good, stored = state_file.read_bytes(), seed_path.read_bytes(), _stored(state_dir)
    base = json.loads(kept)["base"]
    assert stored == sorted([
        "stub_seed_worked_examples.json", "stub_seed_worked_examples.json.lock", "stub_seed_worked_examples",
        *(f"stub_seed_worked_examples/{base}.{kind}" for kind in BASE_FILES),
    ])

    broken = json.loads(good)
    broken["insights"][0]["spend"] = "-1"
    _write(seed_path, broken)
    with pytest.raises(SnapshotError, match=r"seed_worked_examples\.json: snapshot rejected: insights\[0\]\.spend"):
        StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).sync_insights()
    assert state_file.read_bytes() == kept and _stored(state_dir) == stored

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


# --- the state: a base written once, a journal appended (issue 14) -----------------------------------
BASE_FILES = ("document.json", "insights.parquet", "journal.jsonl", "structure.json")


def _base_files(state_dir: str, name: str = "stub_seed_worked_examples") -> dict[str, Path]:
    base = json.loads((Path(state_dir) / f"{name}.json").read_text())["base"]
    return {kind: Path(state_dir) / name / f"{base}.{kind}" for kind in BASE_FILES}


def _journal(files: dict[str, Path]) -> list[dict]:
    return [json.loads(line) for line in files["journal.jsonl"].read_text().splitlines()]


def _moved(rows: list[dict], days: int) -> list[str]:
    return [(pd.Timestamp(row["date_start"]) + pd.Timedelta(days=days)).date().isoformat() for row in rows]


def test_a_write_appends_one_line_and_touches_nothing_else(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=24 * 60)
    client.sync_insights()
    files = _base_files(state_dir)
    assert files["document.json"].read_bytes() == seed_path.read_bytes()  # the source's bytes, as validated
    written = [Path(state_dir) / "stub_seed_worked_examples.json", *(files[kind] for kind in BASE_FILES if kind != "journal.jsonl")]
    stamps = [(path.stat().st_mtime_ns, path.stat().st_ino) for path in written]

    budget = client.update_budget("campaign", "100001", 55000)
    assert _journal(files)[-1] == budget  # the whole change: one appended line
    client.pause("ad", "100003")
    client.sync_insights()  # a day later: the insights move, and are not written again
    variant = client.create_new_ad_variant("100007")
    assert [entry["method"] for entry in _journal(files)] == [
        "sync_insights", "update_budget", "pause", "sync_insights", "create_new_ad_variant",
    ]
    assert _journal(files) == client.writes
    assert [(path.stat().st_mtime_ns, path.stat().st_ino) for path in written] == stamps

    # The journal replayed is the account the changes made: a new client (process) reads the same.
    document = client.fetch_snapshot()
    assert StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).fetch_snapshot() == document
    assert _row(document, "campaigns", "100001")["daily_budget"] == "55000" and _row(document, "ads", "100003")["status"] == "PAUSED"
    assert _row(document, "ads", variant["new_ad_id"])["created_time"] == document["as_of"] == "2026-11-26T10:30:00+00:00"
    assert [row["date_start"] for row in document["insights"]] == _moved(json.loads(seed_path.read_text())["insights"], 1)


def test_two_clients_share_the_state_and_each_reads_what_the_other_appended(seed_path, state_dir):
    first, second = (StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path), clock_step_minutes=24 * 60) for _ in range(2))
    first.sync_insights()
    before = second.fetch_snapshot()  # the second client holds the state as it was
    first.update_budget("campaign", "100001", 55000)
    second.pause("ad", "100003")  # made on the state as it is now: the first client's budget stays
    first.sync_insights()  # the next day
    for client in (first, second):
        document = client.fetch_snapshot()
        assert _row(document, "campaigns", "100001")["daily_budget"] == "55000"
        assert _row(document, "ads", "100003")["status"] == "PAUSED"
        assert document["as_of"] == "2026-11-26T10:30:00+00:00"
        assert [row["date_start"] for row in document["insights"]] == _moved(before["insights"], 1)
        assert [w["method"] for w in client.writes] == ["sync_insights", "update_budget", "pause", "sync_insights"]
    # What a client was given is never changed under it.
    assert before["as_of"] == "2026-11-25T10:30:00+00:00"
    assert [row["date_start"] for row in before["insights"]] == [row["date_start"] for row in json.loads(seed_path.read_text())["insights"]]


def test_clients_writing_at_once_never_lose_each_others_writes(seed_path, state_dir):
    import threading

    StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).sync_insights()
    start = threading.Barrier(2)

    def write(campaign: str, first: int) -> None:
        client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
        client.load_state()
        start.wait()
        for budget in range(first, first + 15):
            client.update_budget("campaign", campaign, budget)

    threads = [threading.Thread(target=write, args=args) for args in (("100001", 60000), ("100005", 70000))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    assert len(fresh.writes) == 31
    for campaign, first in (("100001", 60000), ("100005", 70000)):
        written = [w for w in fresh.writes if w.get("entity_id") == campaign]
        assert [w["daily_budget"] for w in written] == [str(b) for b in range(first, first + 15)]
        # Each write read the state its predecessor left: no write was made on a stale copy.
        assert [w["previous"] for w in written[1:]] == [w["daily_budget"] for w in written[:-1]]
        assert _row(fresh.fetch_snapshot(), "campaigns", campaign)["daily_budget"] == str(first + 14)


def test_a_journal_line_a_crash_cut_short_is_not_part_of_the_state(seed_path, state_dir):
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    client.pause("ad", "100003")
    files = _base_files(state_dir)
    with files["journal.jsonl"].open("ab") as journal:
        journal.write(b'{"method":"pause","entity_type":"ad","entity_id":"1000')  # the process died mid-line
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    assert [w["method"] for w in fresh.writes] == ["sync_insights", "pause"]
    fresh.pause("ad", "100011")  # written over the cut line
    assert [entry["method"] for entry in _journal(files)] == ["sync_insights", "pause", "pause"]
    assert client.writes == fresh.writes


@pytest.mark.parametrize("insights_inside", [True, False], ids=["one file", "insights file beside it"])
def test_a_state_stored_before_the_journal_is_read_and_carries_on(seed_path, state_dir, insights_inside):
    """Format 1: ``stub_<account>.json`` holds the account (clock moved, a budget changed), its
    syncs and recorded calls; the insights inside it (before they had a file of their own) or in
    ``stub_<account>.insights.jsonl`` beside it."""
    import hashlib

    from ..engine.test_columnar import assert_same_snapshot

    document = json.loads(seed_path.read_text())
    rows = document.pop("insights")[1:]  # not the source's rows: the state's are served
    document["as_of"] = "2026-11-25T11:00:00+00:00"
    _row(document, "campaigns", "100001")["daily_budget"] = "55000"
    writes = [
        {"method": "sync_insights", "at": "2026-11-25T10:30:00+00:00"},
        {"method": "update_budget", "at": "2026-11-25T10:30:00+00:00", "entity_type": "campaign", "entity_id": "100001",
         "previous": "50000", "daily_budget": "55000"},
        {"method": "sync_insights", "at": "2026-11-25T11:00:00+00:00"},
    ]
    source = {"path": str(seed_path.resolve()), "sha256": hashlib.sha256(seed_path.read_bytes()).hexdigest()}
    stored = {"source": source, "snapshot": document | {"insights": rows}, "syncs": 2, "writes": writes}
    folder = Path(state_dir)
    folder.mkdir()
    if not insights_inside:
        stored["snapshot"].pop("insights")
        stored["insights_version"] = "0123abcd"
        (folder / "stub_seed_worked_examples.insights.jsonl").write_text("\n".join(json.dumps(row, separators=(",", ":")) for row in rows))
    (folder / "stub_seed_worked_examples.json").write_text(json.dumps(stored, indent=1))

    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    served = client.fetch_snapshot()
    assert served == document | {"insights": rows}
    assert client.writes == writes and client.load_state()["syncs"] == 2
    assert_same_snapshot(client.fetch_account(), parse_snapshot(served))
    # Now a base and its journal (its source is the same file: no restart), carrying on from there.
    assert not (folder / "stub_seed_worked_examples.insights.jsonl").exists()
    assert json.loads((folder / "stub_seed_worked_examples.json").read_text())["format"] == 2
    client.sync_insights()
    fresh = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    assert fresh.fetch_snapshot() == document | {"as_of": "2026-11-25T11:30:00+00:00", "insights": rows}
    assert [w["method"] for w in fresh.writes] == ["sync_insights", "update_budget", "sync_insights", "sync_insights"]


@pytest.mark.parametrize("counts_as_numbers", [False, True])
def test_fetch_account_reads_the_parsed_insights_and_gives_the_documents_frames(tmp_path, state_dir, counts_as_numbers):
    """``fetch_account`` parses the structure as it is now with the insights as the parser read
    them when the base was made (moved by the days passed): the frames the fetched document's
    parse gives, in a new client (a new process) too, before and after syncs (the second one past
    midnight) and writes, without decoding the insights rows. A file the fast path cannot read
    (counts as JSON numbers) is parsed whole once, when its base is made."""
    from meta_ads_dagster.meta import stub

    from ..engine.test_columnar import assert_same_snapshot

    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    if counts_as_numbers:
        for row in document["insights"]:
            row["impressions"] = int(row["impressions"])
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(document))
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(path), clock_step_minutes=24 * 60)
    campaign, ad = document["campaigns"][0]["id"], document["ads"][0]["id"]
    steps = [lambda: None, client.sync_insights, client.sync_insights, lambda: client.update_budget("campaign", campaign, 12345),
             lambda: client.create_new_ad_variant(ad, "ACTIVE")]

    def no_rows(*_):
        raise AssertionError("the insights rows were decoded")

    for step in steps:
        step()
        whole = parse_snapshot(client.fetch_snapshot())
        for reader in (client, StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(path))):
            original, stub.decode_snapshot = stub.decode_snapshot, no_rows
            try:
                account = reader.fetch_account()
            finally:
                stub.decode_snapshot = original
            assert_same_snapshot(account, whole)
            # A caller changing what it was given changes nothing the client keeps.
            account.insights.loc[:, "spend"] = -1.0
            account.insights["mine"] = 1
        assert_same_snapshot(client.fetch_account(), whole)


def test_an_unchanged_source_is_not_hashed_again_and_one_written_again_does_not_restart(seed_path, state_dir, monkeypatch, caplog):
    import os

    from meta_ads_dagster.meta import stub

    hashed = []
    sha256 = stub._sha256
    monkeypatch.setattr(stub, "_sha256", lambda path: hashed.append(path) or sha256(path))
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path))
    client.sync_insights()
    StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(seed_path)).sync_insights()
    client.sync_insights()
    assert len(hashed) == 1  # its size, time and inode are the recorded ones

    stat = seed_path.stat()
    os.utime(seed_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # written again, the same bytes
    with caplog.at_level(logging.INFO):
        client.sync_insights()
    assert len(hashed) == 2 and not caplog.records  # hashed again: the same content, no restart
    client.sync_insights()
    assert len(hashed) == 2  # the new stamp was recorded
    assert [w["method"] for w in client.writes] == ["sync_insights"] * 5


def test_the_insights_move_a_day_past_a_23_hour_night(tmp_path, state_dir):
    """The night summer time starts (Europe/Madrid, 2027-03-28 to 29) has 23 hours: its midnight
    moves the insights a day like any other."""
    document = demo_snapshot("act_1001")
    document["as_of"] = "2027-03-28T10:00:00+00:00"
    path = _write(tmp_path / "spring.json", document)
    client = StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(path), account_id="act_1001", clock_step_minutes=24 * 60)
    client.sync_insights()
    client.sync_insights()
    moved = parse_snapshot(client.fetch_snapshot())
    assert moved.today == pd.Timestamp("2027-03-29")
    assert moved.insights["date"].max() == parse_snapshot(document).insights["date"].max() + pd.Timedelta(days=1)


def test_a_structure_object_that_looks_like_an_insights_row_is_kept(tmp_path, state_dir):
    """A new state's structure is decoded with the insights rows left out (objects with an
    ``ad_id`` and a ``date_start``); an ad carrying such fields of its own makes it decode the
    document whole, so nothing of the structure is lost."""
    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    document["ads"][0] |= {"ad_id": document["ads"][0]["id"], "date_start": "2026-11-01"}  # fields the parser ignores
    path = _write(tmp_path / "snapshot.json", document)
    assert StubMetaAdsClient(state_dir=state_dir, snapshot_path=str(path)).fetch_snapshot() == document
