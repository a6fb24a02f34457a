"""Live mode and Meta's learning phase (issue 15), against the fake Graph server: the ad sets'
``learning_stage_info`` comes with the paged ad set read (no extra call), and each budget write's
ledger row says, from a read before and after it, which of our edits restarted learning."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime

import pandas as pd
import pytest

from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.client import Write
from meta_ads_dagster.store.ledger import Ledger

from ..engine.factories import make_action
from .fake_graph import FakeGraphServer
from .test_live import ACCOUNT, SECRET, SEED, TOKEN, FakeClock, make_client

# The seed account's ad sets: 100002 under the CBO campaign 100001; 100006 under CBO 100005;
# 100010 holds its own budget ($100) under campaign 100009.
T0 = 1763000000
AS_OF = int(datetime.fromisoformat(SEED["as_of"]).timestamp())
STAGES = {"100002": "SUCCESS", "100006": "FAIL", "100010": "SUCCESS"}
ADSETS_READ = re.compile(rf"/{ACCOUNT}/adsets")


def learning_document() -> dict:
    document = copy.deepcopy(SEED)
    for adset in document["adsets"]:
        adset["learning_stage_info"] = {"status": STAGES[adset["id"]], "conversions": 60, "last_sig_edit_ts": T0,
                                        "attribution_windows": ["7d_click", "1d_view"]}
    return document


@pytest.fixture
def server():
    with FakeGraphServer(learning_document(), page_size=2, hang_seconds=5, access_token=TOKEN, app_secret=SECRET) as srv:
        yield srv
        assert srv.internal_errors == []


@pytest.fixture
def clock():
    return FakeClock(SEED["as_of"])


def test_the_paged_ad_set_read_carries_learning_stage_info_with_no_extra_call(server, clock):
    snapshot = parse_snapshot(make_client(server, clock).fetch_snapshot())
    assert dict(zip(snapshot.adsets["id"], snapshot.adsets["learning_status"])) == STAGES
    assert (snapshot.adsets["last_sig_edit_at"] == pd.Timestamp(T0, unit="s", tz="UTC")).all()
    reads = server.find("GET", f"/{ACCOUNT}/adsets")
    assert all("learning_stage_info" in read["params"]["fields"] for read in reads)
    # The same account without the field served: exactly as many requests.
    with FakeGraphServer(SEED, page_size=2, access_token=TOKEN, app_secret=SECRET) as plain:
        make_client(plain, FakeClock(SEED["as_of"])).fetch_snapshot()
        assert len(plain.requests) == len(server.requests)


@pytest.mark.parametrize(
    ("write", "reached", "reset"),
    [
        (Write("a1", "scale_up", "adset", "100010", new_budget_minor=13_000), ["100010"], True),  # +30 %: a significant edit
        (Write("a1", "scale_up", "adset", "100010", new_budget_minor=12_000), ["100010"], False),  # +20 %: not more than 20 %
        (Write("a1", "scale_down", "adset", "100010", new_budget_minor=9_000), ["100010"], False),
        (Write("a1", "scale_up", "campaign", "100001", new_budget_minor=70_000), ["100002"], True),  # CBO: its ad sets
    ],
    ids=["adset-significant", "adset-within-threshold", "adset-cut", "cbo-campaign-significant"],
)
def test_each_budget_write_logs_last_sig_edit_ts_before_and_after(server, clock, write, reached, reset):
    (outcome,) = make_client(server, clock).apply_writes([write])
    assert outcome.status == "executed"
    log = outcome.result["learning_stage"]
    assert [row["adset_id"] for row in log] == reached
    for row in log:
        assert row["before"] == {"status": STAGES[row["adset_id"]], "last_sig_edit_ts": T0}
        assert row["reset"] is reset
        assert row["after"] == ({"status": "LEARNING", "last_sig_edit_ts": AS_OF} if reset else row["before"])


def test_the_learning_reads_are_one_before_and_one_after_and_only_around_budget_writes(server, clock):
    client = make_client(server, clock)
    client.apply_writes([Write("p1", "pause", "ad", "100013")])
    assert server.find("GET", f"/{ACCOUNT}/adsets") == []
    server.reset_requests()
    client.apply_writes([Write("a1", "scale_up", "adset", "100010", new_budget_minor=11_000),
                         Write("a2", "scale_up", "campaign", "100001", new_budget_minor=55_000)])
    pages = -(-len(SEED["adsets"]) // 2)  # the read is paged (page size 2)
    assert len(server.find("GET", f"/{ACCOUNT}/adsets")) == 2 * pages
    reads_and_writes = [r["method"] for r in server.requests if r["batch_index"] is None]
    assert reads_and_writes == ["GET"] * pages + ["POST"] + ["GET"] * pages  # the writes go out in one batch between them


def test_a_failed_learning_read_never_fails_the_write(server, clock):
    server.inject("permanent", match=ADSETS_READ)
    (outcome,) = make_client(server, clock).apply_writes([Write("a1", "scale_up", "adset", "100010", new_budget_minor=13_000)])
    assert outcome.status == "executed"
    assert "error" in outcome.result["learning_stage"] and TOKEN not in json.dumps(outcome.result)
    assert server.document["adsets"][2]["daily_budget"] == "13000"


def test_the_ledger_row_of_a_budget_write_shows_whether_it_restarted_learning(server, clock, tmp_path):
    client = make_client(server, clock)
    snapshot = parse_snapshot(client.fetch_snapshot())
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    from meta_ads_dagster.meta.execution import execute_actions

    actions = pd.DataFrame([make_action(id="raise", entity_type="adset", entity_id="100010", campaign_id="100009",
                                        current_budget_minor=10_000.0, new_budget_minor=13_000.0, verdict="executed", reasons=["test"])])
    ledger.record_cycle(actions, "run-1", ACCOUNT, snapshot.as_of)
    execute_actions(actions, client, lambda o: ledger.mark_outcome("run-1", o.action_id, snapshot.as_of, o.error, o.status, o.result))
    row = ledger.cycle_actions("run-1").iloc[0]
    logged = json.loads(row["output_snapshot"])["learning_stage"]
    assert logged == [{"adset_id": "100010", "before": {"status": "SUCCESS", "last_sig_edit_ts": T0},
                       "after": {"status": "LEARNING", "last_sig_edit_ts": AS_OF}, "reset": True}]
    ledger.dispose()
